using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Models;

/// <summary>
/// Reentrant activation checkpointing (as torch.utils.checkpoint with use_reentrant=True): the forward runs without
/// keeping the block's intermediates; the backward runs the block again with grad and backpropagates through it, which
/// also accumulates the gradients of every trainable parameter inside (adapters). Trades one extra forward of the block
/// for its activation memory. The block must be deterministic (no dropout), as SD's transformer blocks are.
/// </summary>
public sealed class ActivationCheckpoint : torch.autograd.SingleTensorFunction<ActivationCheckpoint>
{
    public override string Name => nameof(ActivationCheckpoint);

    /// <summary>block(hidden, context) with checkpointing; falls back to a plain call when no gradient is needed.</summary>
    public static Tensor Run(nn.Module<Tensor, Tensor?, Tensor> block, Tensor hidden, Tensor? context)
    {
        if (!is_grad_enabled()) return block.call(hidden, context);
        // The function's tensor input must require grad for its backward to run at all (platform notes).
        var input = hidden.requires_grad ? hidden : hidden.detach().requires_grad_(true);
        return apply(input, context ?? empty(0, device: input.device), context is not null, block);
    }

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var (hidden, context, hasContext, block) = ((Tensor)vars[0], (Tensor)vars[1], (bool)vars[2], (nn.Module<Tensor, Tensor?, Tensor>)vars[3]);
        ctx.save_for_backward([hidden, context]);
        ctx.save_data("has_context", hasContext);
        ctx.save_data("block", block);
        using var _ = no_grad();
        return block.call(hidden, hasContext ? context : null);
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad)
    {
        var saved = ctx.get_saved_variables();
        bool hasContext = (bool)ctx.get_data("has_context");
        var block = (nn.Module<Tensor, Tensor?, Tensor>)ctx.get_data("block");
        using var enable = enable_grad();
        var hidden = saved[0].detach().requires_grad_(true);
        var context = hasContext && saved[1].requires_grad ? saved[1].detach().requires_grad_(true) : saved[1].detach();
        var output = block.call(hidden, hasContext ? context : null);
        torch.autograd.backward([output], [grad]);
        return [hidden.grad!, hasContext && context.requires_grad ? context.grad! : null!, null!, null!];
    }
}
