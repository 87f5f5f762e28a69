using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.Diffusion.Models;
using static TorchSharp.torch;

namespace DiffusionPeft.Benchmarks;

/// <summary>
/// Writes a diffusers folder with Stable Diffusion 1.5's UNet and VAE and CLIP ViT-L/14 text-encoder widths, random
/// weights stored in fp16, and the tokenizer, scheduler and model index of a small folder (--like): a full-size model
/// for speed and memory measurements through the real commands on a machine with no network and no diffusers.
/// </summary>
public static class RandomSd15Folder
{
    public const string Help = "a diffusers folder of SD 1.5's shapes with random fp16 weights: --out DIR --like SMALL_DIFFUSERS_FOLDER";

    private const string UNetConfig = """
        {"_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
         "center_input_sample": false, "cross_attention_dim": 768, "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
         "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
         "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
         "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}
        """;

    private const string VaeConfig = """
        {"_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
         "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"], "in_channels": 3,
         "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 512, "scaling_factor": 0.18215,
         "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]}
        """;

    public static int Run(string[] args)
    {
        var outDir = CliArgs.Value(args, "--out", "");
        var like = CliArgs.Value(args, "--like", "");
        if (outDir.Length == 0 || !Directory.Exists(Path.Combine(like, "tokenizer")))
        {
            Console.Error.WriteLine(Help);
            return 2;
        }
        foreach (var file in Directory.EnumerateFiles(like, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(like, file);
            if (rel.Contains(".safetensors", StringComparison.Ordinal) || rel.EndsWith(".bin", StringComparison.Ordinal)) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(outDir, rel))!);
            File.Copy(file, Path.Combine(outDir, rel), overwrite: true);
        }
        var text = ConfigJson.Load(Path.Combine(like, "text_encoder", "config.json"));
        var textConfig = $$"""
            {"architectures": ["CLIPTextModel"], "bos_token_id": {{text.Int("bos_token_id", 0)}}, "eos_token_id": {{text.Int("eos_token_id", 2)}},
             "pad_token_id": {{text.Int("pad_token_id", 1)}}, "hidden_act": "quick_gelu", "hidden_size": 768, "intermediate_size": 3072,
             "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 12,
             "num_hidden_layers": 12, "projection_dim": 768, "vocab_size": {{text.Int("vocab_size", 49408)}}}
            """;
        manual_seed(0);
        Write(outDir, "unet", UNetConfig, "diffusion_pytorch_model.safetensors", c => new UNet2DConditionModel(UNet2DConditionConfig.Load(c)));
        Write(outDir, "vae", VaeConfig, "diffusion_pytorch_model.safetensors", c => new AutoencoderKL(AutoencoderKLConfig.Load(c)));
        Write(outDir, "text_encoder", textConfig, "model.safetensors", c => new CLIPTextModel(ClipTextConfig.Load(c)));
        Console.WriteLine($"wrote {Path.GetFullPath(outDir)}");
        return 0;
    }

    private static void Write(string outDir, string component, string config, string weights, Func<string, nn.Module> build)
    {
        var dir = Path.Combine(outDir, component);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), config);
        using var model = build(Path.Combine(dir, "config.json"));
        using var scope = NewDisposeScope();
        var tensors = model.state_dict().Select(kv => new KeyValuePair<string, Tensor>(kv.Key, kv.Value.to_type(ScalarType.Float16))).ToList();
        SafetensorsWriter.Write(Path.Combine(dir, weights), tensors);
        Console.WriteLine($"  {component}: {tensors.Sum(t => t.Value.numel()) / 1e6:F1} M parameters");
    }
}
