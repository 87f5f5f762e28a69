using System.Runtime.Serialization;

namespace DiffusionPeft.Adapters;

/// <summary>
/// The adapter methods, with the names `dpeft train --method` and config.yaml use. rsLoRA and LoRA+ are LoRA layers:
/// rsLoRA scales by alpha/√r, LoRA+ trains B at a higher learning rate (<see cref="LoraPlus"/>).
/// </summary>
public enum AdapterMethod
{
    [EnumMember(Value = "lora")] Lora,
    [EnumMember(Value = "rslora")] RsLora,
    [EnumMember(Value = "dora")] Dora,
    [EnumMember(Value = "loraplus")] LoraPlus,
    [EnumMember(Value = "singlora")] SingLora,
    [EnumMember(Value = "sdslora")] SdsLora,
}

public static class AdapterMethodExtensions
{
    /// <summary>Whether the method's layer is the plain two-matrix LoRA (LoRA, rsLoRA, LoRA+).</summary>
    public static bool IsLoraLayer(this AdapterMethod method) => method is AdapterMethod.Lora or AdapterMethod.RsLora or AdapterMethod.LoraPlus;
}
