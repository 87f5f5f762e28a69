using System.Text.Json.Nodes;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Diffusion.Schedulers;
using DiffusionPeft.Tests.Golden;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Pipelines;

/// <summary>Runs a recorded diffusers pipeline call through our pipeline and compares every recorded tensor.</summary>
public sealed class GoldenPipelineRun : IDisposable
{
    public required Tensor PromptEmbeds { get; init; }
    public required Tensor NegativeEmbeds { get; init; }
    public required Tensor UnetInput { get; init; }   // [steps, 2B, C, h, w]
    public required Tensor UnetOutput { get; init; }
    public required Tensor StepLatents { get; init; } // [steps, B, C, h, w]
    public required Tensor Timesteps { get; init; }
    public required PipelineResult Result { get; init; }
    public required long[,] PromptIds { get; init; }
    public required long[,] NegativeIds { get; init; }

    /// <summary>The call arguments these runs honour; any other fails the test rather than being ignored.</summary>
    private static readonly HashSet<string> KnownCallArguments =
    [
        "prompt", "negative_prompt", "num_inference_steps", "guidance_scale", "eta", "height", "width", "clip_skip",
        "output_type", "latents", "vae_scale_factor", "vae_scaling_factor",
    ];

    /// <summary>Runs diffusers' call arguments (prompt, negative_prompt, steps, guidance, size, eta, clip_skip) with the given latents.</summary>
    public static GoldenPipelineRun Execute(StableDiffusionModel model, IScheduler scheduler, JsonObject call, Tensor latents)
    {
        if (call.Select(kv => kv.Key).FirstOrDefault(k => !KnownCallArguments.Contains(k)) is { } unknown)
            throw new Xunit.Sdk.XunitException($"pipeline call argument '{unknown}' ({call[unknown]?.ToJsonString()}) is not supported by these tests");
        if (call["output_type"] is JsonValue outputType && (string?)outputType != "np")
            throw new Xunit.Sdk.XunitException($"output_type '{outputType}' is not supported by these tests (they compare NHWC float images, 'np')");
        // Recorded for information: what the pipeline derived from the VAE config, which the model must derive alike.
        if (call["vae_scale_factor"] is JsonValue factor) Assert.Equal((int)factor, model.VaeScaleFactor);
        if (call["vae_scaling_factor"] is JsonValue scaling) Assert.Equal((double)scaling, model.Vae.Config.ScalingFactor);
        var prompts = ((JsonArray)call["prompt"]!).Select(p => (string)p!).ToList();
        var negatives = call["negative_prompt"] is JsonArray n ? n.Select(p => (string?)p ?? "").ToList() : null;
        var pipeline = new StableDiffusionPipeline(model, scheduler);
        Tensor? cond = null, uncond = null;
        var ins = new List<Tensor>(); var outs = new List<Tensor>(); var steps = new List<Tensor>(); var ts = new List<double>();
        var observer = new PipelineObserver
        {
            PromptEmbeds = (c, u) => { cond = c.clone().DetachFromDisposeScope(); uncond = u.clone().DetachFromDisposeScope(); },
            Step = (i, t, input, output, next) =>
            {
                ins.Add(input.clone().DetachFromDisposeScope()); outs.Add(output.clone().DetachFromDisposeScope());
                steps.Add(next.clone().DetachFromDisposeScope()); ts.Add(t);
            },
        };
        var result = pipeline.Run(new PipelineCall
        {
            Prompts = prompts,
            NegativePrompts = negatives,
            Steps = (int)call["num_inference_steps"]!,
            GuidanceScale = (double)call["guidance_scale"]!,
            Width = (int)call["width"]!,
            Height = (int)call["height"]!,
            Eta = call["eta"] is JsonValue e && e.TryGetValue<double>(out var eta) ? eta : 0, // "not passed" for schedulers without eta
            ClipSkip = call["clip_skip"] is JsonValue c && c.TryGetValue<int>(out var skip) ? skip : 0,
            Latents = latents,
        }, observer);
        return new GoldenPipelineRun
        {
            PromptEmbeds = cond!, NegativeEmbeds = uncond!,
            UnetInput = stack(ins), UnetOutput = stack(outs), StepLatents = stack(steps),
            Timesteps = tensor(ts.ToArray()), Result = result,
            PromptIds = Ids(model, prompts), NegativeIds = Ids(model, negatives ?? prompts.Select(_ => "").ToList()),
        };
    }

    private static long[,] Ids(StableDiffusionModel model, IReadOnlyList<string> texts)
    {
        var ids = new long[texts.Count, model.Tokenizer.MaxLength];
        for (int b = 0; b < texts.Count; b++)
        {
            var row = model.Tokenizer.EncodeForModel(texts[b]).InputIds;
            for (int j = 0; j < row.Length; j++) ids[b, j] = row[j];
        }
        return ids;
    }

    /// <summary>
    /// Compares whichever of these the io file holds under the given names: input ids (exact), prompt embeddings,
    /// timesteps (exact), UNet inputs/outputs, step latents, final latents and the image.
    /// </summary>
    /// <param name="embedsPrefix">Where the prompt embeddings are: by default under the run's prefix if the io holds them there, else "intermediate.".</param>
    public void CompareWith(SafetensorsFile io, Tolerance tol, string intermediatePrefix, string outputPrefix, string? embedsPrefix = null)
    {
        embedsPrefix ??= io.Contains($"{intermediatePrefix}prompt_embeds") ? intermediatePrefix : "intermediate.";
        void Close(string name, Tensor actual)
        {
            if (!io.Contains(name)) return;
            var (atol, rtol) = tol.For(name);
            using var expected = io.Read(name);
            TensorAssert.Close(actual, expected, atol, rtol, name);
        }
        void Exact(string name, Tensor actual)
        {
            if (!io.Contains(name)) return;
            using var expected = io.Read(name);
            TensorAssert.Equal(actual.to_type(expected.dtype), expected, name);
        }
        Exact("input.prompt_input_ids", tensor(PromptIds));
        Exact("input.negative_prompt_input_ids", tensor(NegativeIds));
        Close($"{embedsPrefix}prompt_embeds", PromptEmbeds);
        Close($"{embedsPrefix}negative_prompt_embeds", NegativeEmbeds);
        Exact($"{intermediatePrefix}timesteps", Timesteps);
        Close($"{intermediatePrefix}unet_input", UnetInput);
        Close($"{intermediatePrefix}unet_output", UnetOutput);
        Close($"{intermediatePrefix}step_latents", StepLatents);
        Close($"{outputPrefix}latents", Result.Latents);
        Close($"{outputPrefix}image", Result.Images);
        Assert.True(io.Contains($"{outputPrefix}image"), $"{io.Path}: no {outputPrefix}image to compare with");
    }

    public void Dispose()
    {
        foreach (var t in new[] { PromptEmbeds, NegativeEmbeds, UnetInput, UnetOutput, StepLatents, Timesteps }) t.Dispose();
        Result.Dispose();
    }
}
