using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Pipelines;

namespace DiffusionPeft.Tests.Pipelines;

/// <summary>A model's own sampling defaults (generation_config.json): read, checked, loaded with the model and written back.</summary>
public sealed class GenerationConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-gencfg-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>A copy of the embedded model's folder (a small diffusers folder) to add files to.</summary>
    internal static string CopyOfEmbeddedModel(string into)
    {
        foreach (var file in Directory.GetFiles(EmbeddedDefaultModel.Folder, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(into, Path.GetRelativePath(EmbeddedDefaultModel.Folder, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        return into;
    }

    [Fact]
    public void AFolderWithoutOneHasNoneAndAWrittenOneReadsBack()
    {
        Assert.Null(GenerationConfig.Read(_dir));
        new GenerationConfig(2.5).Write(_dir);
        Assert.Equal(new GenerationConfig(2.5), GenerationConfig.Read(_dir));
        Assert.Equal(["generation_config.json"], Directory.GetFiles(_dir).Select(Path.GetFileName));   // no temporary left
        Assert.Throws<ArgumentOutOfRangeException>(() => new GenerationConfig(-1).Write(_dir));
        Assert.Equal(new GenerationConfig(2.5), GenerationConfig.Read(_dir));   // the refused write left the file as it was
        File.WriteAllText(Path.Combine(_dir, GenerationConfig.FileName), "{\"max_new_tokens\": 20}");   // transformers' keys alone: no guidance of its own
        Assert.Null(GenerationConfig.Read(_dir));
    }

    [Theory]
    [InlineData("{\"guidance_scale\": ", "not valid JSON")]
    [InlineData("[3]", "expected a JSON object")]
    [InlineData("{\"guidance_scale\": \"3\"}", "\"guidance_scale\" must be a number")]
    [InlineData("{\"guidance_scale\": -2}", "finite number >= 0 (got -2)")]
    public void AMalformedFileIsRefusedNamingItAndTheFault(string text, string fault)
    {
        var path = Path.Combine(_dir, GenerationConfig.FileName);
        File.WriteAllText(path, text);
        var e = Assert.Throws<InvalidDataException>(() => GenerationConfig.Read(_dir));
        Assert.Contains(path, e.Message);
        Assert.Contains(fault, e.Message);
    }

    [Fact]
    public void TheLoaderTakesTheFoldersDefaultAndTheWriterKeepsIt()
    {
        var folder = CopyOfEmbeddedModel(Path.Combine(_dir, "model"));
        File.Delete(Path.Combine(folder, GenerationConfig.FileName));
        using (var plain = StableDiffusionLoader.Load(folder))
        {
            Assert.Null(plain.Generation);
            Assert.Equal(7.5, plain.DefaultGuidanceScale);
        }
        new GenerationConfig(3).Write(folder);
        using var model = StableDiffusionLoader.Load(folder);
        Assert.Equal(3, model.DefaultGuidanceScale);
        using (var placed = StableDiffusionLoader.Load(folder).PlacedOn(TorchSharp.torch.ScalarType.Float32, TorchSharp.torch.CPU))
            Assert.Equal(3, placed.DefaultGuidanceScale);
        var written = Path.Combine(_dir, "written");
        DiffusersFolderWriter.Write(model, written);
        Assert.Equal(new GenerationConfig(3), GenerationConfig.Read(written));

        File.WriteAllText(Path.Combine(folder, GenerationConfig.FileName), "{\"guidance_scale\": -1}");
        var e = Assert.ThrowsAny<Exception>(() => StableDiffusionLoader.Load(folder));
        Assert.Contains(Path.Combine(folder, GenerationConfig.FileName), e.Message);
    }
}
