using System.Runtime.Serialization;
using DiffusionPeft.Diffusion.Models;

namespace DiffusionPeft.ToyModel;

/// <summary>What the toy UNet's top level (32×32 latents) has besides its convolutions.</summary>
public enum TopLevelAttention
{
    /// <summary>Convolutions only (the shipped model's): the caption is read at 16×16 and 8×8.</summary>
    [EnumMember(Value = "none")] None,
    /// <summary>A transformer block: self-attention over the 1,024 positions, then cross-attention to the caption.</summary>
    [EnumMember(Value = "full")] Full,
    /// <summary>A transformer block whose two attentions both read the caption (diffusers' only_cross_attention): no
    /// attention between positions, so it costs the caption's 32 tokens, not 1,024².</summary>
    [EnumMember(Value = "cross_only")] CrossOnly,
}

/// <summary>Reading a toy UNet's top level back from its config (names: TrainConfigYaml.EnumName / ParseEnum, which also
/// takes "cross-only").</summary>
public static class TopLevelAttentions
{
    /// <summary>The top-level attention of a toy UNet built by <see cref="ToyModelConfigs.Unet"/> on 32×32 latents.</summary>
    public static TopLevelAttention Of(UNet2DConditionConfig unet) =>
        unet.DownBlockTypes[0] != "CrossAttnDownBlock2D" ? TopLevelAttention.None
        : unet.OnlyCrossAttentionAt(0) ? TopLevelAttention.CrossOnly : TopLevelAttention.Full;
}
