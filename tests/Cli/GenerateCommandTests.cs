using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Cli;
using DiffusionPeft.Core.Imaging;

namespace DiffusionPeft.Tests.Cli;

/// <summary>`dpeft generate` end to end on the embedded default model (the toy-world model shipped with dpeft).</summary>
public sealed class GenerateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-gen-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private static (int Code, string Out, string Err) Dpeft(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = Program.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    private string[] Pngs(string dir) => Directory.GetFiles(dir, "*.png", SearchOption.AllDirectories)
        .Where(f => Path.GetFileName(f) != "grid.png").Select(f => Path.GetRelativePath(dir, f)).Order().ToArray();

    [Fact]
    public void WritesPngsWithA1111ParametersSidecarsAndAGrid()
    {
        var outDir = Path.Combine(_dir, "out");
        var r = Dpeft("generate", "--prompt", "a photo of a cat", "--negative", "blurry", "--n", "2", "--seed", "5", "--steps", "2",
            "--sampler", "euler_a", "--cfg", "6", "--out", outDir, "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains(EmbeddedDefaultModel.Name, r.Err);   // the note that names the embedded toy-world model
        Assert.Equal([Path.Combine("0001-a-photo-of-a-cat", "000-s5.png"), Path.Combine("0001-a-photo-of-a-cat", "001-s6.png")], Pngs(outDir));

        var png = Path.Combine(outDir, "0001-a-photo-of-a-cat", "001-s6.png");
        var image = ImageLoader.Load(png);
        Assert.Equal((64, 64), (image.Width, image.Height));
        var parameters = PngText.Get(PngText.Read(png), "parameters");
        var modelHash = DiffusionPeft.Core.IO.FileHash.Sha256(Path.Combine(EmbeddedDefaultModel.Folder, "unet", "diffusion_pytorch_model.safetensors"))[..10];
        Assert.Equal($"a photo of a cat\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a, CFG scale: 6, Seed: 6, Size: 64x64, Model hash: {modelHash}, Model: dpeft-toy-world, Version: dpeft", parameters);
        var sidecar = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(png, ".json"))).RootElement;
        Assert.Equal(6, sidecar.GetProperty("seed").GetInt64());
        Assert.Equal("euler_a", sidecar.GetProperty("sampler").GetString());
        var grid = ImageLoader.Load(Path.Combine(outDir, "0001-a-photo-of-a-cat", "grid.png"));
        Assert.True(grid.Width >= 2 * 64 + 4 && grid.Height >= 64 && grid.Height < 2 * 64, $"grid {grid.Width}x{grid.Height}");
        // Distinct seeds give distinct images; pixels are not constant.
        Assert.NotEqual(ImageLoader.Load(Path.Combine(outDir, "0001-a-photo-of-a-cat", "000-s5.png")).Pixels, image.Pixels);
        Assert.True(image.Pixels.Distinct().Count() > 10);
    }

    [Fact]
    public void SamplerSpellingsShareAKeyEtaIsRecordedOnlyWhereDdimUsesItAndARerunWritesAMissingGrid()
    {
        var outDir = Path.Combine(_dir, "out");
        string[] args = ["generate", "--prompt", "a red circle", "--n", "2", "--steps", "1", "--sampler", "EULER", "--eta", "0.5", "--out", outDir, "--quiet"];
        var r = Dpeft(args);
        Assert.True(r.Code == 0, r.Err);
        Assert.Contains("warning: eta is DDIM's; ignored for 1 prompt(s) with another sampler (euler)", r.Err);
        var png = Path.Combine(outDir, "0001-a-red-circle", "000-s0.png");
        var parameters = PngText.Get(PngText.Read(png), "parameters")!;
        Assert.Contains("Sampler: Euler,", parameters);
        Assert.DoesNotContain("Eta", parameters);
        var sidecar = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.ChangeExtension(png, ".json"))).RootElement;
        Assert.Equal(("euler", 0.0), (sidecar.GetProperty("sampler").GetString(), sidecar.GetProperty("eta").GetDouble()));
        // A kill between a prompt's last image and its grid: the rerun has no image to make, and writes the grid.
        var grid = Path.Combine(outDir, "0001-a-red-circle", "grid.png");
        var sheet = File.ReadAllBytes(grid);
        File.Delete(grid);
        var rerun = Dpeft(args);
        Assert.True(rerun.Code == 0, rerun.Err);
        Assert.Contains("0 images written", rerun.Out);
        Assert.Equal(sheet, File.ReadAllBytes(grid));
    }

    [Fact]
    public void ShardsTogetherProduceExactlyTheSingleMachineImagesAndRerunsSkipExistingOnes()
    {
        var prompts = Path.Combine(_dir, "prompts.jsonl");
        File.WriteAllLines(prompts, ["""{"prompt": "a red cube", "n": 2}""", "a blue sphere"]);
        string[] common = ["generate", "--prompts", prompts, "--steps", "2", "--sampler", "ddim", "--seed", "11", "--batch", "2", "--quiet"];
        var single = Path.Combine(_dir, "single");
        var sharded = Path.Combine(_dir, "sharded");
        Assert.Equal(0, Dpeft([.. common, "--out", single]).Code);
        Assert.Equal(0, Dpeft([.. common, "--out", sharded, "--shard", "1/2"]).Code);
        Assert.Equal(2, Pngs(sharded).Length); // batch 0: both images of the first prompt
        Assert.Equal(0, Dpeft([.. common, "--out", sharded, "--shard", "2/2"]).Code);
        Assert.Equal(Pngs(single), Pngs(sharded));
        Assert.Equal(3, Pngs(single).Length);
        foreach (var rel in Pngs(single))
            Assert.Equal(ImageLoader.Load(Path.Combine(single, rel)).Pixels, ImageLoader.Load(Path.Combine(sharded, rel)).Pixels);

        // Delete one image: a rerun makes exactly that one again, identically.
        var victim = Path.Combine(single, Pngs(single)[1]);
        var before = File.ReadAllBytes(victim);
        var untouched = Path.Combine(single, Pngs(single)[0]);
        var stamp = File.GetLastWriteTimeUtc(untouched);
        File.Delete(victim);
        var rerun = Dpeft([.. common, "--out", single]);
        Assert.Equal(0, rerun.Code);
        Assert.Contains("1 images written", rerun.Out);
        Assert.Equal(before, File.ReadAllBytes(victim));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(untouched));
    }

    [Theory]
    [InlineData("--sampler", "bogus", "unknown sampler 'bogus'")]
    [InlineData("--width", "100", "multiples of 8")]
    [InlineData("--model", "/nonexistent/model", "/nonexistent/model")]
    [InlineData("--prompts", "/nonexistent/prompts.txt", "/nonexistent/prompts.txt")]
    [InlineData("--cfg-interval", "800,100", "guidance interval '800,100'")]
    [InlineData("--cfg-rescale", "2", "cfg-rescale must be in [0, 1]")]
    public void BadInputIsOneClearMessageAndNoFiles(string flag, string value, string message)
    {
        var outDir = Path.Combine(_dir, "bad");
        string[] args = flag == "--prompts" ? ["generate", flag, value, "--out", outDir] : ["generate", "--prompt", "x", flag, value, "--out", outDir];
        var r = Dpeft(args);
        Assert.NotEqual(0, r.Code);
        Assert.Contains(message, r.Err);
        Assert.StartsWith("error: ", r.Err.Trim());
        Assert.False(Directory.Exists(outDir) && Directory.EnumerateFiles(outDir, "*", SearchOption.AllDirectories).Any());
    }

    [Theory]
    [InlineData("""{"prompt": "a blue square", "adapter": "missing.safetensors"}""", "prompt 2's adapter missing.safetensors: file not found")]
    [InlineData("""{"prompt": "a blue square", "clip_skip": 9}""", "prompt 2: clip-skip must be in 0..4 for this text encoder (4 layers), got 9")]
    public void APromptLinesFaultFoundOnlyWithTheModelIsRefusedBeforeAnyImage(string line, string message)
    {
        var prompts = Path.Combine(_dir, "prompts.jsonl");
        File.WriteAllLines(prompts, ["a red circle", line]);
        var outDir = Path.Combine(_dir, "out");
        var r = Dpeft("generate", "--prompts", prompts, "--out", outDir, "--steps", "1", "--quiet");
        Assert.NotEqual(0, r.Code);
        Assert.Contains($"{prompts}: {message}", r.Err);
        Assert.False(Directory.Exists(outDir) && Directory.EnumerateFiles(outDir, "*", SearchOption.AllDirectories).Any());
    }

    public static TheoryData<string> FolderCases => DiffusionPeft.Tests.Golden.GoldenData.CasesOfKind("diffusers_folder");

    [Theory, MemberData(nameof(FolderCases)), Trait("Category", "Golden")]
    public void GeneratesFromADiffusersFolderWithTheModelHashInTheMetadata(string caseName)
    {
        var golden = DiffusionPeft.Tests.Golden.GoldenFolderCase.Load(caseName);
        var folder = golden.ModelFolder;
        // A non-square size: 4 x 6 latent pixels of the folder's VAE (8 image pixels each for Stable Diffusion).
        int vaeFactor = 1 << (DiffusionPeft.Diffusion.IO.ConfigJson.Load(Path.Combine(folder, "vae", "config.json")).Ints("block_out_channels").Length - 1);
        int width = 4 * vaeFactor, height = 6 * vaeFactor;
        var outDir = Path.Combine(_dir, "folder");
        var r = Dpeft("generate", "--model", folder, "--prompt", "a lighthouse", "--steps", "2", "--width", $"{width}", "--height", $"{height}",
            "--sampler", "dpm++2m_karras", "--seed", "3", "--clip-skip", "1", "--out", outDir, "--quiet");
        Assert.True(r.Code == 0, r.Err);
        var png = Path.Combine(outDir, "0001-a-lighthouse", "000-s3.png");
        var image = ImageLoader.Load(png);
        Assert.Equal((width, height), (image.Width, image.Height));
        var hash = DiffusionPeft.Core.IO.FileHash.Sha256(golden.PathOf(golden.MainWeightsFile("unet")))[..10];
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)));
        Assert.Equal($"a lighthouse\nSteps: 2, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 3, Size: {width}x{height}, Model hash: {hash}, Model: {name}, Clip skip: 2, Version: dpeft",
            PngText.Get(PngText.Read(png), "parameters"));
    }

    [Fact]
    public void TheModelsOwnGuidanceIsTheDefaultAndCfgOrAPromptLineOverridesIt()
    {
        var folder = DiffusionPeft.Tests.Pipelines.GenerationConfigTests.CopyOfEmbeddedModel(Path.Combine(_dir, "model"));
        new DiffusionPeft.Diffusion.Pipelines.GenerationConfig(2.5).Write(folder);
        var prompts = Path.Combine(_dir, "cfg.jsonl");
        File.WriteAllLines(prompts, ["""{"prompt": "a red circle", "cfg": 4}""", "a blue square"]);
        string Cfg(string outDir, string slug)
        {
            var parameters = PngText.Get(PngText.Read(Path.Combine(outDir, slug, "000-s0.png")), "parameters")!;
            return parameters.Split(", ").Single(p => p.StartsWith("CFG scale: "))["CFG scale: ".Length..];
        }
        var own = Path.Combine(_dir, "own");
        var r = Dpeft("generate", "--model", folder, "--prompts", prompts, "--steps", "1", "--out", own, "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(("4", "2.5"), (Cfg(own, "0001-a-red-circle"), Cfg(own, "0002-a-blue-square")));
        var given = Path.Combine(_dir, "given");
        r = Dpeft("generate", "--model", folder, "--prompts", prompts, "--steps", "1", "--cfg", "6", "--out", given, "--quiet");
        Assert.True(r.Code == 0, r.Err);
        Assert.Equal(("4", "6"), (Cfg(given, "0001-a-red-circle"), Cfg(given, "0002-a-blue-square")));

        File.WriteAllText(Path.Combine(folder, "generation_config.json"), "{\"guidance_scale\": \"high\"}");
        var bad = Dpeft("generate", "--model", folder, "--prompt", "x", "--steps", "1", "--out", Path.Combine(_dir, "bad"), "--quiet");
        Assert.NotEqual(0, bad.Code);
        Assert.Contains(Path.Combine(folder, "generation_config.json"), bad.Err);
        Assert.False(Directory.Exists(Path.Combine(_dir, "bad")) && Directory.EnumerateFiles(Path.Combine(_dir, "bad"), "*", SearchOption.AllDirectories).Any());
    }

    [Fact]
    public void PerLineSizesInAPromptFileWinOverTheModelsNativeSize()
    {
        var prompts = Path.Combine(_dir, "sizes.jsonl");
        File.WriteAllLines(prompts, ["""{"prompt": "a tall thing", "width": 32, "height": 48}""", "a default thing"]);
        var outDir = Path.Combine(_dir, "sizes");
        var r = Dpeft("generate", "--prompts", prompts, "--steps", "1", "--sampler", "ddim", "--out", outDir, "--quiet");
        Assert.True(r.Code == 0, r.Err);
        var tall = ImageLoader.Load(Path.Combine(outDir, "0001-a-tall-thing", "000-s0.png"));
        var plain = ImageLoader.Load(Path.Combine(outDir, "0002-a-default-thing", "000-s0.png"));
        Assert.Equal((32, 48), (tall.Width, tall.Height));
        Assert.Equal((64, 64), (plain.Width, plain.Height)); // the embedded model's native size
    }
}
