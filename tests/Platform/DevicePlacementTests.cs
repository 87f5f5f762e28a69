using DiffusionPeft.Adapters;
using DiffusionPeft.Cli;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.Tests.DreamBooth;
using DiffusionPeft.Tests.Golden;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Tests.Platform;

/// <summary>
/// Placement bugs (a tensor made on the CPU meeting the model's tensors on the GPU) caught on a CPU-only machine:
/// the pipeline, a training step of every method, a CLI run with every training feature and its resume, exports,
/// generation with every sampler and stacked adapters, and merge, all under <see cref="PlacementCanary"/>; and a
/// check that moving a model moves every tensor its modules hold.
/// </summary>
public sealed class DevicePlacementTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-placement-").FullName;
    public void Dispose() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private static readonly AdapterOptions[] EveryMethod =
    [
        new() { Method = AdapterMethod.Lora, Rank = 2 },
        new() { Method = AdapterMethod.RsLora, Rank = 2 },
        new() { Method = AdapterMethod.Dora, Rank = 2 },
        new() { Method = AdapterMethod.SingLora, Rank = 2, RampSteps = 4 },
        new() { Method = AdapterMethod.SdsLora, Rank = 2 },
        new() { Method = AdapterMethod.SdsLora, Rank = 2, SdsBasis = SdsBasis.Polar },
    ];

    [Fact]
    public void TheCanaryFailsOnATensorMadeWithoutADevice()
    {
        using var weight = ones(2, 2, device: CPU);
        using var cond = weight.gt(0);
        using (PlacementCanary.Arm())
        {
            Assert.ThrowsAny<Exception>(() => (weight + tensor(new float[] { 1, 2 })).sum().item<float>());
            // SDS-LoRA's sign fix before it was placed: scalar arguments of where() become tensors on the default device.
            Assert.ThrowsAny<Exception>(() => where(cond, -1.0, 1.0).sum().item<float>());
            Assert.Equal(8f, (weight + tensor(new float[] { 1, 1 }, device: weight.device)).sum().item<float>());
        }
        Assert.Equal(DeviceType.CPU, tensor(1f).device_type);
    }

    [Fact]
    public void EveryMethodTrainsStepsMergesAndStacksWithEveryTensorPlaced()
    {
        using var canary = PlacementCanary.Arm();
        using var model = EmbeddedDefaultModel.CreateUntrained();
        var unet = model.Unet;
        var sample = randn([1, 4, 8, 8], device: CPU, generator: new Generator(1, CPU));
        var context = randn([1, 77, 64], device: CPU, generator: new Generator(2, CPU));
        var t = tensor(new long[] { 500 }, device: CPU);
        foreach (var options in EveryMethod)
        {
            var report = AdapterInjector.Inject(unet, options with { ParameterDType = ScalarType.Float32 }, InjectionTargets.UNetAttention, "unet");
            var layers = report.Layers.Select(l => l.Layer).ToList();
            AdapterLayer.OnOptimizerStep(layers, 0);
            using (var optimizer = LoraPlus.CreateAdamW(layers, new AdamWSettings(1e-2)))
                // SDS-LoRA twice: its bases come from Householder QR while B = 0, then from the Gram route.
                for (long step = 0; step < (options.Method == AdapterMethod.SdsLora ? 2 : 1); step++)
                {
                    using var scope = NewDisposeScope();
                    optimizer.zero_grad();
                    unet.forward(sample, t, context).square().mean().backward();
                    optimizer.step();
                    AdapterLayer.OnOptimizerStep(layers, step + 1);
                }
            using (no_grad())
            {
                var stacked = AdapterInjector.Create(new AdapterOptions { Method = AdapterMethod.Lora, Rank = 1 }, layers[0].weight, null, "extra", ownsBase: false);
                layers[0].Stack(stacked);
                foreach (var l in layers) l.MergeAll();
                Assert.True(float.IsFinite(unet.forward(sample, t, context).sum().item<float>()));
                foreach (var l in layers) l.UnmergeAll();
            }
            foreach (var l in report.Layers) AdapterInjector.Remove(unet, l.Path);
        }
    }

    [Fact]
    public void ModulesHoldNoTensorThatAMoveLeavesBehind()
    {
        using var model = EmbeddedDefaultModel.CreateUntrained();
        var unet = model.Unet;
        var paths = AdapterInjector.LinearPaths(unet).Where(InjectionTargets.UNetAttention.Selects).ToList();
        var layers = paths.Select((p, i) => AdapterInjector.Attach(unet, p, EveryMethod[i % EveryMethod.Length])).ToList();
        using (no_grad())
            foreach (var p in layers.SelectMany(l => l.AdapterParameters())) p.Tensor.normal_(0, 0.1);
        AdapterLayer.OnOptimizerStep(layers, 1);
        foreach (var l in layers.OfType<SdsLoraLinear>()) l.Bases();
        foreach (var l in layers.OfType<DoraLinear>()) l.Merge();   // keeps the row norms for Unmerge

        var meta = new Device(DeviceType.META);
        foreach (var m in new nn.Module[] { model.TextEncoder, unet, model.Vae }) m.to(meta);
        var misplaced = new nn.Module[] { model.TextEncoder, unet, model.Vae }.SelectMany(m => ModulePlacementAudit.Misplaced(m, meta)).ToList();
        Assert.True(misplaced.Count == 0, "left behind: " + string.Join(", ", misplaced.Take(10)));
    }

    [Fact]
    public void ACommandLineRunWithEveryTrainingFeatureResumesAndItsAdaptersGenerateAndMerge()
    {
        var folder = Path.Combine(GoldenData.Dir, "tiny_sd15_diffusers", "model");
        var images = AdapterSessionTests.SubjectImages(_dir);
        var classes = Path.Combine(_dir, "class");
        Directory.CreateDirectory(classes);
        File.Copy(Directory.GetFiles(images)[0], Path.Combine(classes, "000.png"));   // present: prior preservation generates none
        var half = new byte[64 * 64 * 3];
        for (int i = 0; i < half.Length; i++) half[i] = (byte)(i / 3 % 64 < 28 ? 255 : 0);
        PngWriter.Write(Path.Combine(images, "img0" + InstanceDataset.MaskSuffix), new RgbImage(64, 64, half));   // img1 has none
        var run = Path.Combine(_dir, "run");
        string[] train = ["train", "--model", folder, "--images", images, "--prompt", "a photo of sks ball", "--out", run, "--method", "sdslora",
            "--rank", "2", "--resolution", "64", "--checkpoint-every", "1", "--class-prompt", "a photo of a ball", "--class-images", classes,
            "--num-class-images", "1", "--cache-latents", "disk", "--train-text-encoder", "--gradient-checkpointing", "--noise-offset", "0.1",
            "--snr-gamma", "5", "--masked-loss", "true", "--unmasked-weight", "0.1", "--quiet"];
        Dpeft([.. train, "--steps", "2"]);
        Assert.Contains("resumed from", Dpeft([.. train, "--steps", "3", "--resume", "latest"]));

        var adapter = Path.Combine(run, "adapter.safetensors");
        var peft = Path.Combine(_dir, "peft.safetensors");
        Dpeft(["adapter", "export", adapter, "--format", "diffusers", "--out", peft]);
        var prompts = Path.Combine(_dir, "prompts.jsonl");
        File.WriteAllLines(prompts, new[] { "ddim", "pndm", "lms", "euler", "euler_a", "dpm++2m", "dpm++2m_karras", "ddpm" }
            .Select(s => $$"""{"prompt": "a sks ball", "sampler": "{{s}}", "eta": 0.5}"""));
        Dpeft(["generate", "--model", folder, "--prompts", prompts, "--steps", "1", "--width", "64", "--height", "64", "--out", Path.Combine(_dir, "gen"),
            "--adapter", adapter + ":0.8", "--adapter", Path.Combine(run, "adapter.kohya.safetensors") + ":0.5", "--adapter", peft, "--quiet"]);
        Assert.Equal(8, Directory.GetFiles(Path.Combine(_dir, "gen"), "000-s0.png", SearchOption.AllDirectories).Length);
        Dpeft(["adapter", "merge", "--model", folder, "--adapter", adapter + ":0.9", "--out", Path.Combine(_dir, "merged")]);
    }

    /// <summary>Runs dpeft in-process under the canary; a failure shows its output.</summary>
    private static string Dpeft(string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code;
        using (PlacementCanary.Arm()) code = Program.Run(args, o, e);
        Assert.True(code == 0, $"dpeft {args[0]} exited {code}: {e}");
        return o.ToString() + e;
    }
}
