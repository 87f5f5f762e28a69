using DiffusionPeft.Core.Imaging;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Subjects;
using DiffusionPeft.Metrics;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Files;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Rendering;
using DiffusionPeft.ToyWorld.Scenes;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.Tests.ToyWorld;

public sealed class ToyWorldFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dpeft-toyfiles-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void DatasetImagesCarryTheirCaptionInAChunkAndATextFile()
    {
        var world = new World(3);
        var paths = ToyWorldFiles.WriteDataset(Path.Combine(_dir, "train"), 3, 6, start: 10);
        Assert.Equal(6, paths.Count);
        Assert.Equal(12, Directory.GetFiles(Path.Combine(_dir, "train")).Length); // no temporary files left
        for (int k = 0; k < 6; k++)
        {
            Assert.Equal($"{10 + k:D10}.png", Path.GetFileName(paths[k]));
            Assert.Equal(world.Render(10 + k).Pixels, ImageLoader.Load(paths[k]).Pixels);
            var chunks = PngText.Read(paths[k]);
            var caption = world.TrainingCaption(10 + k).ToText();
            Assert.Equal(caption, PngText.Get(chunks, ToyWorldFiles.PromptKey));
            Assert.Equal(world.FullCaption(10 + k).ToText(), PngText.Get(chunks, ToyWorldFiles.FullPromptKey));
            Assert.Equal(caption, File.ReadAllText(Path.ChangeExtension(paths[k], ".txt")).Trim());
        }

        var heldOut = ToyWorldFiles.WriteDataset(Path.Combine(_dir, "heldout"), 3, 2, SceneSplit.HeldOut, captions: CaptionStyle.Full, captionFiles: false);
        Assert.Equal($"{World.HeldOutStart:D10}.png", Path.GetFileName(heldOut[0]));
        Assert.Equal(2, Directory.GetFiles(Path.Combine(_dir, "heldout")).Length);
        Assert.Equal(world.FullCaption(World.HeldOutStart).ToText(), PngText.Get(PngText.Read(heldOut[0]), ToyWorldFiles.PromptKey));
        Assert.Throws<ArgumentOutOfRangeException>(() => ToyWorldFiles.WriteDataset(_dir, 3, 2, start: World.HeldOutStart - 1));
    }

    [Fact]
    public void PlainScenesSitBesideTheWorldsWithFullCaptions()
    {
        var world = new World(3);
        var dir = Path.Combine(_dir, "train");
        ToyWorldFiles.WriteDataset(dir, 3, 3);
        var paths = ToyWorldFiles.WritePlainDataset(dir, 3, 4);
        Assert.Equal(14, Directory.GetFiles(dir).Length);
        for (int k = 0; k < 4; k++)
        {
            Assert.Equal($"plain-{k:D10}.png", Path.GetFileName(paths[k]));
            Assert.Equal(SceneRenderer.Render(world.PlainScene(k)).Pixels, ImageLoader.Load(paths[k]).Pixels);
            var full = world.PlainScene(k).FullCaption().ToText();
            Assert.Equal(full, PngText.Get(PngText.Read(paths[k]), ToyWorldFiles.PromptKey));
            Assert.Equal(full, File.ReadAllText(Path.ChangeExtension(paths[k], ".txt")).Trim());
        }
    }

    [Fact]
    public void MasksCoverTheObjectsExactlyAndTrainingFindsThemBesideTheirScenes()
    {
        var world = new World(3);
        int fullyCovered = 0;
        for (long i = 0; i < 200; i++)
        {
            var scene = world.Scene(i);
            var (image, mask) = SceneRenderer.RenderWithMask(scene);
            Assert.Equal(SceneRenderer.Render(scene).Pixels, image.Pixels);
            var background = BackgroundPainter.Paint(scene.Background).Pixels;
            var objectColours = scene.Objects.Where(o => o.Subject is null).Select(o => ToyPalette.Of(o.Colour)).ToHashSet();
            for (int p = 0; p < mask.Pixels.Length; p += 3)
            {
                if (mask.Pixels[p] == 0) Assert.True(image.Pixels.AsSpan(p, 3).SequenceEqual(background.AsSpan(p, 3)), $"scene {i}: an unmasked pixel is not the background's");
                if (mask.Pixels[p] == 255 && scene.Objects.All(o => o.Subject is null))
                {
                    Assert.Contains(new Rgb(image.Pixels[p], image.Pixels[p + 1], image.Pixels[p + 2]), objectColours);
                    fullyCovered++;
                }
            }
        }
        Assert.True(fullyCovered > 200 * 20, $"only {fullyCovered} fully covered pixels in 200 scenes");

        // A circle's mask holds its area, pi r^2, to within the edge's rounding.
        var circle = Enumerable.Range(0, 500).Select(k => world.PlainScene(k)).First(s => s.Objects.First().Shape == ToyShape.Circle);
        double area = SceneRenderer.RenderWithMask(circle).Mask.Pixels.Where((_, k) => k % 3 == 0).Sum(v => v / 255.0);
        double r = circle.Objects.First().Extent / 2;
        Assert.InRange(area / (Math.PI * r * r), 0.97, 1.03);

        var dir = Path.Combine(_dir, "masked");
        ToyWorldFiles.WriteDataset(dir, 3, 3, masks: true);
        ToyWorldFiles.WritePlainDataset(dir, 3, 2, masks: true);
        Assert.Equal(InstanceDataset.MaskSuffix, ToyWorldFiles.MaskSuffix);
        var scan = InstanceDataset.Scan(dir, "", DiffusionPeft.DreamBooth.StableDiffusion.ImageLoaderDecoder.Instance, masks: true);
        Assert.Equal(5, scan.Count);
        Assert.All(scan.Images, image => Assert.NotNull(image.MaskPath));
        Assert.Equal(SceneRenderer.RenderWithMask(world.PlainScene(1)).Mask.Pixels, ImageLoader.Load(scan.Images[^1].MaskPath!).Pixels);
    }

    [Fact]
    public void SubjectFoldersLoadAsADreamBoothManifestAndProtocol()
    {
        ToyWorldFiles.WriteSubjects(_dir, 0, instances: 4, heldOut: 3);
        var subjects = SubjectsManifest.Read(Path.Combine(_dir, "subjects.csv"));
        Assert.Equal(ToySubjects.All.Count, subjects.Count);
        foreach (var (entry, subject) in subjects.Zip(ToySubjects.All))
        {
            Assert.Equal((subject.Name, subject.Identifier, subject.ClassNoun), (entry.Name, entry.Identifier, entry.Class));
            var images = Directory.GetFiles(entry.Folder).Order().ToArray();
            Assert.Equal(4, images.Length);
            Assert.All(images, p => Assert.EndsWith(".png", p));
            Assert.Equal(3, Directory.GetFiles(Path.Combine(_dir, "heldout", subject.Name)).Length);
            var prompt = PngText.Get(PngText.Read(images[0]), ToyWorldFiles.PromptKey)!;
            Assert.Equal(subject.Identifier, CaptionParser.Parse(prompt).Main.Identifier);
        }

        var protocol = DreamBoothProtocol.Load(Path.Combine(_dir, "protocol"));
        Assert.Equal(ToySubjects.All.Select(s => (s.Name, s.ClassNoun)), protocol.Subjects.Select(s => (s.Folder, s.ClassNoun)));
        Assert.All(protocol.Subjects, s => Assert.Equal(SubjectKind.Object, s.Kind));
        Assert.Equal(ToyDreamBoothPrompts.Templates, protocol.ObjectPrompts);
        Assert.Empty(protocol.LivePrompts);
    }

    [Fact]
    public void TheCheckedInToyProtocolIsTheGeneratedOne()
    {
        var dir = Path.Combine(DreamBoothProtocol.FindPromptsDir(), "toyworld");
        Assert.Equal(ToyDreamBoothPrompts.SubjectsCsv(ToySubjects.All), File.ReadAllText(Path.Combine(dir, ToyDreamBoothPrompts.SubjectsFile)));
        Assert.Equal(ToyDreamBoothPrompts.ObjectPromptsText(), File.ReadAllText(Path.Combine(dir, ToyDreamBoothPrompts.ObjectPromptsFile)));
        Assert.Equal(ToyDreamBoothPrompts.LivePromptsText(), File.ReadAllText(Path.Combine(dir, ToyDreamBoothPrompts.LivePromptsFile)));
    }

    [Fact]
    public void SubjectsAreCompoundAndTheirIdentifiersNeverOccurInBaseCaptions()
    {
        Assert.Equal(12, ToySubjects.All.Count);
        Assert.Equal(12, ToySubjects.Identifiers.Distinct().Count());
        Assert.Equal(12, ToySubjects.All.Select(s => s.Name).Distinct().Count());
        foreach (var s in ToySubjects.All)
        {
            Assert.False(ToyGrammar.IsGrammarWord(s.Identifier), s.Identifier);
            Assert.True(ToyGrammar.IsGrammarWord(s.ClassNoun), s.ClassNoun);
            Assert.True(s.Colours.Count >= 2, $"{s.Name} is one colour, like a base object");
            Assert.True(SubjectScenes.BackgroundColours(s).Count >= 3, $"{s.Name} stands out on too few backgrounds");
        }
        var world = new World(0);
        var identifiers = ToySubjects.Identifiers.ToHashSet();
        for (int i = 0; i < 3000; i++)
        {
            long index = i % 3 == 0 ? World.HeldOutStart + i : i;
            Assert.All(world.Scene(index).Objects, o => Assert.Null(o.Subject));
            foreach (var caption in new[] { world.FullCaption(index), world.TrainingCaption(index, i) })
                Assert.DoesNotContain(caption.ToText().Split(' ', ','), identifiers.Contains);
        }
    }

    [Fact]
    public void SubjectScenesVaryAndInstancesShowTheSubjectWell()
    {
        var world = new World(0);
        foreach (var s in ToySubjects.All)
        {
            var instances = Enumerable.Range(0, 5).Select(i => world.SubjectInstance(s, i)).ToList();
            Assert.Equal(4, instances.Select(x => x.Background.Texture).Distinct().Count());
            Assert.All(instances, x => Assert.NotEqual(ToySize.Small, x.Main.Size));
            var heldOut = Enumerable.Range(0, 12).Select(i => world.SubjectHeldOut(s, i)).ToList();
            Assert.True(heldOut.Select(x => x.Main.Position).Distinct().Count() >= 5);
            Assert.All(instances.Concat(heldOut), x => Assert.Same(s, x.Main.Subject));
            Assert.All(instances.Concat(heldOut), x => Assert.All(s.Colours, c => Assert.True(ToyPalette.StandsOut(c, x.Background.Colour))));
        }
    }

    [Fact]
    public void TrainingPromptsAreEachScenesFullCaptionAndTheCaptionItsDataFileGivesIt()
    {
        var dir = Path.Combine(_dir, "train");
        ToyWorldFiles.WriteDataset(dir, 3, 6);
        var prompts = new World(3).TrainingPrompts(6);
        Assert.Equal(12, prompts.Count);
        for (int i = 0; i < 6; i++)
        {
            Assert.Equal((i, true), (prompts[2 * i].SceneIndex, prompts[2 * i].IsFull));
            Assert.Equal((i, false), (prompts[2 * i + 1].SceneIndex, prompts[2 * i + 1].IsFull));
            Assert.Equal(new World(3).Scene(i).FullCaption().ToText(), prompts[2 * i].Text);
            Assert.Equal(File.ReadAllText(Path.Combine(dir, $"{i:D10}.txt")).Trim(), prompts[2 * i + 1].Text);   // what the UNet trained on
            Assert.Equal(SceneSplit.Train, World.SplitOf(prompts[2 * i].SceneIndex));
        }
    }

    [Fact]
    public void HeldOutPromptsAndContactSheetsAreWritten()
    {
        var prompts = Path.Combine(_dir, "heldout.tsv");
        ToyWorldFiles.WriteHeldOutPrompts(prompts, 0, 5);
        var lines = File.ReadAllLines(prompts);
        Assert.Equal("kind\tscene\tprompt", lines[0]);
        Assert.Equal(11, lines.Length);
        Assert.StartsWith($"full\t{World.HeldOutStart}\t", lines[1]);
        Assert.StartsWith($"partial\t{World.HeldOutStart}\t", lines[2]);

        var sheet = Path.Combine(_dir, "sheet.png");
        ToyWorldFiles.WriteContactSheet(sheet, 0, count: 6, columns: 3, scale: 2);
        var image = ImageLoader.Load(sheet);
        Assert.Equal((2 * (3 * 64 + 4 * 2), 2 * (2 * 64 + 3 * 2)), (image.Width, image.Height));
        var captions = File.ReadAllLines(Path.ChangeExtension(sheet, ".txt"));
        Assert.Equal($"2,3: {new World(0).FullCaption(5).ToText()}", captions[5]);
    }
}
