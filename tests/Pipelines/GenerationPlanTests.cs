using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Tests.Pipelines;

public sealed class GenerationPlanTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-plan-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void PromptFileReadsPlainLinesAndJsonOverrides()
    {
        var path = Path.Combine(_dir, "prompts.txt");
        File.WriteAllLines(path, [
            "# comment", "a photo of a cat", "",
            """{"prompt": "a dog, 4k", "n": 3, "seed": 100, "sampler": "euler_a", "cfg": 5.5, "cfg_rescale": 0.7, "cfg_interval": "0,600", "width": 256, "height": 384, "adapter": ["x.safetensors:0.7"]}""",
        ]);
        var defaults = new GenerationOptions { Count = 2, Seed = 7, Steps = 20 };
        var prompts = PromptFile.Read(path, defaults);
        Assert.Equal(2, prompts.Count);
        Assert.Equal("a photo of a cat", prompts[0].Prompt);
        Assert.Equal(2, prompts[0].Count);
        Assert.Equal(7, prompts[0].Seed);
        Assert.Equal(3, prompts[1].Count);
        Assert.Equal(100, prompts[1].Seed);
        Assert.Equal("euler_a", prompts[1].Sampler);
        Assert.Equal(5.5, prompts[1].GuidanceScale);
        Assert.Equal(0.7, prompts[1].GuidanceRescale);
        Assert.Equal(new GuidanceInterval(0, 600), prompts[1].GuidanceInterval);
        Assert.Equal(GuidanceInterval.Always, prompts[0].GuidanceInterval);
        Assert.Equal((256, 384), (prompts[1].Width, prompts[1].Height));
        Assert.Equal(20, prompts[1].Steps);
        Assert.Equal(new AdapterSpec("x.safetensors", 0.7), Assert.Single(prompts[1].Adapters));
    }

    [Theory]
    [InlineData("""{"prompt": "x", "width": 100}""", "multiples of 8")]
    [InlineData("""{"prompt": "x", "bogus": 1}""", "unknown key 'bogus'")]
    [InlineData("""{"prompt": "x", "n": "three"}""", "key 'n'")]
    [InlineData("""{"prompt": """, "invalid JSON")]
    [InlineData("""{"prompt": "x", "cfg_interval": "900,100"}""", "guidance interval")]
    [InlineData("""{"prompt": "x", "cfg_rescale": 1.5}""", "cfg-rescale must be in [0, 1]")]
    [InlineData("""{"prompt": "x", "sampler": "heun"}""", "unknown sampler 'heun'")]
    [InlineData("""{"prompt": "x", "cfg": -1}""", "cfg must be a finite number >= 0 (got -1)")]
    public void BadPromptLinesNameTheFileLineAndFault(string line, string fault)
    {
        var path = Path.Combine(_dir, "bad.jsonl");
        File.WriteAllLines(path, ["a fine prompt", line]);
        var ex = Assert.ThrowsAny<Exception>(() => PromptFile.Read(path, new GenerationOptions()));
        Assert.Contains($"{path}:2", ex.Message);
        Assert.Contains(fault, ex.Message);
    }

    [Fact]
    public void MissingOrEmptyPromptFilesAreClearErrors()
    {
        var missing = Path.Combine(_dir, "nope.txt");
        Assert.Contains(missing, Assert.ThrowsAny<IOException>(() => PromptFile.Read(missing, new GenerationOptions())).Message);
        var empty = Path.Combine(_dir, "empty.txt");
        File.WriteAllText(empty, "# nothing\n\n");
        Assert.Contains("no prompts", Assert.Throws<InvalidDataException>(() => PromptFile.Read(empty, new GenerationOptions())).Message);
    }

    [Fact]
    public void ShardsPartitionThePlanExactly()
    {
        var prompts = new[] { new GenerationOptions { Prompt = "a", Count = 5, Seed = 10, BatchSize = 2 }, new GenerationOptions { Prompt = "b!", Count = 4, Seed = 0 } };
        var plan = new GenerationPlan(prompts, _dir);
        Assert.Equal(9, plan.All.Count);
        Assert.Equal([10L, 11, 12, 13, 14, 0, 1, 2, 3], plan.All.Select(i => i.Seed));
        var union = Enumerable.Range(1, 4).SelectMany(k => plan.ForShard(new Shard(k, 4))).Select(i => i.PngPath).ToList();
        Assert.Equal(plan.All.Count, union.Count);
        Assert.Equal(plan.All.Select(i => i.PngPath).Order(), union.Order());
        Assert.EndsWith(Path.Combine("0002-b", "003-s3.png"), plan.All[^1].PngPath);
        Assert.Equal([2, 2, 1, 1, 1, 1, 1], plan.AllBatches.Select(b => b.Count));
        Assert.Equal([0, 1, 6], plan.ForShard(new Shard(1, 4)).Select(i => (int)i.GlobalIndex));
    }

    [Fact]
    public void PendingSkipsImagesAlreadyWrittenAndBatchesStayWithinAPrompt()
    {
        var prompts = new[] { new GenerationOptions { Prompt = "a", Count = 5, BatchSize = 2 }, new GenerationOptions { Prompt = "b", Count = 1, BatchSize = 2 } };
        var plan = new GenerationPlan(prompts, _dir);
        Directory.CreateDirectory(Path.GetDirectoryName(plan.All[1].PngPath)!);
        File.WriteAllBytes(plan.All[1].PngPath, [1]);
        // Batches are fixed groups: the one holding the written image is still pending (its other image is missing) and stays whole.
        var batches = plan.Batches(Shard.All).ToList();
        Assert.Equal([2, 2, 1, 1], batches.Select(b => b.Count));
        Assert.Equal([0, 1, 2, 3, 4, 0], batches.SelectMany(b => b.Select(i => i.ImageIndex)));
        Assert.Equal(5, plan.Pending(Shard.All).Count());
        Assert.All(batches, b => Assert.Single(b.Select(i => i.PromptIndex).Distinct()));
    }

    [Theory]
    [InlineData("1/1", 1, 1)]
    [InlineData("3/8", 3, 8)]
    public void ShardParses(string text, int k, int n) => Assert.Equal(new Shard(k, n), Shard.Parse(text));

    [Theory]
    [InlineData("0/4")]
    [InlineData("5/4")]
    [InlineData("x")]
    public void BadShardIsAClearError(string text) => Assert.Contains("K/N", Assert.Throws<ArgumentException>(() => Shard.Parse(text)).Message);

    [Fact]
    public void A1111ParametersLookLikeTheWebUi()
    {
        var o = new GenerationOptions { Prompt = "a cat", NegativePrompt = "blurry", Steps = 20, GuidanceScale = 7, Width = 512, Height = 768, ClipSkip = 1 };
        var text = A1111Parameters.Format(o, 42, "sd15", "abcdef0123", "DPM++ 2M Karras");
        Assert.Equal("a cat\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x768, Model hash: abcdef0123, Model: sd15, Clip skip: 2, Version: dpeft", text);
    }
}
