using DiffusionPeft.Diffusion.Models;

namespace DiffusionPeft.ToyModel;

/// <summary>What the toy UNet's top level (32×32 latents) has besides its convolutions.</summary>
public enum TopLevelAttention
{
    /// <summary>Convolutions only (the shipped model's): the caption is read at 16×16 and 8×8.</summary>
    None,
    /// <summary>A transformer block: self-attention over the 1,024 positions, then cross-attention to the caption.</summary>
    Full,
    /// <summary>A transformer block whose two attentions both read the caption (diffusers' only_cross_attention): no
    /// attention between positions, so it costs the caption's 32 tokens, not 1,024².</summary>
    CrossOnly,
}

public static class TopLevelAttentions
{
    public static string Name(this TopLevelAttention a) => a switch
    {
        TopLevelAttention.Full => "full",
        TopLevelAttention.CrossOnly => "cross-only",
        _ => "none",
    };

    public static TopLevelAttention? Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "none" => TopLevelAttention.None,
        "full" => TopLevelAttention.Full,
        "cross-only" => TopLevelAttention.CrossOnly,
        _ => null,
    };

    /// <summary>The top-level attention of a toy UNet built by <see cref="ToyModelConfigs.Unet"/> on 32×32 latents.</summary>
    public static TopLevelAttention Of(UNet2DConditionConfig unet) =>
        unet.DownBlockTypes[0] != "CrossAttnDownBlock2D" ? TopLevelAttention.None
        : unet.OnlyCrossAttentionAt(0) ? TopLevelAttention.CrossOnly : TopLevelAttention.Full;
}
