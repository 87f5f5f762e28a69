using System.Text;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Rendering;
using DiffusionPeft.ToyWorld.Scenes;
using DiffusionPeft.ToyWorld.Subjects;
using DiffusionPeft.ToyWorld.Vocabulary;

namespace DiffusionPeft.ToyWorld.Files;

/// <summary>
/// Writes the toy world to disk: training datasets, DreamBooth subject folders with their manifest and protocol,
/// held-out prompts, contact sheets and the tokenizer. Every file is written atomically (temporary file + rename);
/// every PNG carries its caption in a text chunk named "prompt".
/// </summary>
public static class ToyWorldFiles
{
    public const string PromptKey = "prompt", FullPromptKey = "full_prompt", SceneKey = "toyworld_scene";

    /// <summary>NAME-masklabel.png beside NAME.png: the scene's object mask, OneTrainer's naming, which dpeft train --masked-loss reads.</summary>
    public const string MaskSuffix = "-masklabel.png";

    /// <summary>
    /// Scenes <paramref name="start"/> .. start + count − 1 of the split as <c>dir/NNNNNNNN.png</c> (the scene index),
    /// each with a kohya-style caption file <c>NNNNNNNN.txt</c> beside it unless <paramref name="captionFiles"/> is
    /// false. The caption (also the PNG's "prompt" chunk) is a partial training caption (variant 0) or the full one;
    /// the full caption is always in the "full_prompt" chunk. With <paramref name="masks"/>, each scene's object mask
    /// too (<see cref="MaskSuffix"/>). Returns the PNG paths.
    /// </summary>
    public static IReadOnlyList<string> WriteDataset(string dir, long worldSeed, int count, SceneSplit split = SceneSplit.Train,
        long start = 0, CaptionStyle captions = CaptionStyle.Training, bool captionFiles = true, bool masks = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        var world = new World(worldSeed);
        long first = World.FirstIndex(split) + start;
        long end = World.FirstIndex(split) + World.SceneCount(split);
        if (first + count > end) throw new ArgumentOutOfRangeException(nameof(count), $"the {split} split has no scenes {start}..{start + count - 1}");
        Directory.CreateDirectory(dir);
        var paths = new string[count];
        Parallel.For(0, count, k =>
        {
            long index = first + k;
            var caption = captions == CaptionStyle.Full ? null : world.TrainingCaption(index).ToText();
            paths[k] = WriteTrainingScene(Path.Combine(dir, $"{index:D10}.png"), world.Scene(index), caption, $"seed={worldSeed} index={index}", captionFiles, masks);
        });
        return paths;
    }

    /// <summary>
    /// Plain training scenes 0 .. count − 1 (<see cref="World.PlainScene"/>: one object, large unless other
    /// <paramref name="sizes"/> are given, on a plain background unless other <paramref name="textures"/> are) as
    /// <c>dir/plain-NNNNNNNNNN.png</c> with full captions (or partial training ones, <see cref="World.PlainTrainingCaption"/>)
    /// and caption files (and masks, with <paramref name="masks"/>), beside a <see cref="WriteDataset"/> folder's scenes
    /// without clashing with them. Returns the PNG paths.
    /// </summary>
    public static IReadOnlyList<string> WritePlainDataset(string dir, long worldSeed, int count, IReadOnlyList<ToySize>? sizes = null, bool masks = false,
        IReadOnlyList<BackgroundTexture>? textures = null, CaptionStyle captions = CaptionStyle.Full)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, World.HeldOutStart);
        var world = new World(worldSeed);
        Directory.CreateDirectory(dir);
        var paths = new string[count];
        Parallel.For(0, count, k => paths[k] = WriteTrainingScene(Path.Combine(dir, $"plain-{k:D10}.png"), world.PlainScene(k, sizes, textures),
            captions == CaptionStyle.Full ? null : world.PlainTrainingCaption(k, sizes, textures).ToText(),
            $"seed={worldSeed} plain={k}", captionFiles: true, masks));
        return paths;
    }

    /// <summary>A scene's PNG with its caption (the full one when <paramref name="caption"/> is null), full caption and scene key, and its caption file.</summary>
    private static string WriteTrainingScene(string png, ToyScene scene, string? caption, string key, bool captionFiles, bool masks)
    {
        var full = scene.FullCaption().ToText();
        caption ??= full;
        var (image, mask) = SceneRenderer.RenderWithMask(scene);
        PngWriter.Write(png, image, [(PromptKey, caption), (FullPromptKey, full), (SceneKey, key)]);
        if (masks) PngWriter.Write(Path.ChangeExtension(png, null) + MaskSuffix, mask);
        if (captionFiles) AtomicFile.WriteAllText(Path.ChangeExtension(png, ".txt"), caption + "\n");
        return png;
    }

    /// <summary>
    /// DreamBooth subjects as a user's photo folders: <c>dir/instances/NAME/NN.png</c> (the training images) and
    /// <c>dir/heldout/NAME/NN.png</c> (other views, for evaluation), captions only in the PNGs' "prompt" chunks; the
    /// manifest <c>dir/subjects.csv</c> (folder,identifier,class,name) for <c>dpeft train --subjects</c>; and the
    /// protocol files in <c>dir/protocol/</c> (<see cref="ToyDreamBoothPrompts"/>).
    /// </summary>
    public static void WriteSubjects(string dir, long worldSeed, int instances = 5, int heldOut = 12, IReadOnlyList<ToySubject>? subjects = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(instances, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(heldOut);
        var world = new World(worldSeed);
        subjects ??= ToySubjects.All;
        var manifest = new StringBuilder("folder,identifier,class,name\n");
        foreach (var subject in subjects)
        {
            for (int i = 0; i < instances; i++) WriteScene(Path.Combine(dir, "instances", subject.Name, $"{i:D2}.png"), world.SubjectInstance(subject, i));
            for (int i = 0; i < heldOut; i++) WriteScene(Path.Combine(dir, "heldout", subject.Name, $"{i:D2}.png"), world.SubjectHeldOut(subject, i));
            manifest.Append($"instances/{subject.Name},{subject.Identifier},{subject.ClassNoun},{subject.Name}\n");
        }
        AtomicFile.WriteAllText(Path.Combine(dir, "subjects.csv"), manifest.ToString());
        ToyDreamBoothPrompts.Write(Path.Combine(dir, "protocol"), subjects);

        static void WriteScene(string path, ToyScene scene) =>
            PngWriter.Write(path, SceneRenderer.Render(scene), [(PromptKey, scene.FullCaption().ToText())]);
    }

    /// <summary>
    /// The held-out evaluation prompts of <see cref="World.HeldOutPrompts"/> as a tab-separated file with the header
    /// <c>kind, scene, prompt</c> (kind "full" or "partial", scene the scene index).
    /// </summary>
    public static void WriteHeldOutPrompts(string path, long worldSeed, int scenes)
    {
        var sb = new StringBuilder("kind\tscene\tprompt\n");
        foreach (var p in new World(worldSeed).HeldOutPrompts(scenes))
            sb.Append($"{(p.IsFull ? "full" : "partial")}\t{p.SceneIndex}\t{p.Text}\n");
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>
    /// A contact sheet of scenes start .. start + count − 1 (<see cref="ContactSheet"/>): the PNG, and beside it a
    /// .txt with each cell's full caption. <paramref name="scale"/> enlarges the sheet for looking at it.
    /// </summary>
    public static void WriteContactSheet(string pngPath, long worldSeed, long start = 0, int count = 64, int columns = 8, int scale = 1)
    {
        var world = new World(worldSeed);
        var cells = Enumerable.Range(0, count).Select(k => world.Scene(start + k))
            .Select(s => (SceneRenderer.Render(s), s.FullCaption().ToText())).ToList();
        ContactSheet.Write(pngPath, cells, columns, scale);
    }

    /// <summary>The tokenizer folder (<see cref="ToyVocabulary.Write"/>).</summary>
    public static void WriteTokenizer(string dir) => ToyVocabulary.Write(dir);
}
