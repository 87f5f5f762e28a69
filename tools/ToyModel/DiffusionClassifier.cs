using DiffusionPeft.Diffusion.Pipelines;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.DreamBooth.Training;
using DiffusionPeft.ToyWorld;
using DiffusionPeft.ToyWorld.Captions;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Judge;
using DiffusionPeft.ToyWorld.Scenes;
using static TorchSharp.torch;

namespace DiffusionPeft.ToyModel;

/// <summary>
/// How often the denoising error picked the scene's own word for one attribute, among all its values: over every
/// timestep of <see cref="DiffusionClassifier.Timesteps"/> together, and at each alone (<see cref="CorrectByTimestep"/>,
/// in that order), which shows at what noise level the denoiser reads the word.
/// </summary>
public sealed record WordChoice(JudgeAttribute Attribute, int Correct, int Count, int Candidates, IReadOnlyList<int> CorrectByTimestep)
{
    public double Accuracy => Count == 0 ? 0 : (double)Correct / Count;
    public double Chance => 1.0 / Candidates;
    public double AccuracyAt(int timestepIndex) => Count == 0 ? 0 : (double)CorrectByTimestep[timestepIndex] / Count;
}

/// <summary>
/// Does the UNet's denoising depend on a caption's word? The diffusion classifier of Li et al. 2023 ("Your Diffusion
/// Model is Secretly a Zero-Shot Classifier"): a rendered held-out scene is noised at fixed timesteps, and its full
/// caption, with the main object's shape (colour, size, position) word swapped for each of the attribute's values,
/// conditions the UNet's prediction; the word with the lowest prediction error is its pick. Every candidate meets the
/// same noise, so only the word differs. It reads the denoiser itself, not sampled images through the judge: a UNet that
/// ignores a word picks it at chance, however its images look.
/// </summary>
public static class DiffusionClassifier
{
    public static IReadOnlyList<int> Timesteps { get; } = [100, 300, 500, 700, 900];
    public const int NoisesPerTimestep = 2;
    public static IReadOnlyList<JudgeAttribute> Attributes { get; } = [JudgeAttribute.Shape, JudgeAttribute.Colour, JudgeAttribute.Size, JudgeAttribute.Position];

    /// <summary><paramref name="scenes"/> held-out (or training) scenes' full captions from scene <paramref name="firstScene"/> of the split, each attribute (default: <see cref="Attributes"/>) in turn.</summary>
    public static IReadOnlyList<WordChoice> Run(StableDiffusionModel model, long worldSeed, int scenes, long seed = 0, int batch = 32,
                                                IReadOnlyList<JudgeAttribute>? attributes = null, Action<int, int>? progress = null,
                                                SceneSplit split = SceneSplit.HeldOut, long firstScene = 0)
    {
        attributes ??= Attributes;
        if (scenes < 1) throw new ArgumentOutOfRangeException(nameof(scenes), $"the diffusion classifier needs at least one scene, got {scenes}");
        var sceneImages = new SceneImages(new World(worldSeed), scenes, World.FirstIndex(split) + firstScene);
        var correct = new int[attributes.Count];
        var correctAt = attributes.Select(_ => new int[Timesteps.Count]).ToArray();
        using var parts = new StableDiffusionParts(model);
        for (int start = 0; start < scenes; start += batch)
        {
            using var scope = NewDisposeScope();
            var chunk = Enumerable.Range(start, Math.Min(batch, scenes - start)).ToArray();
            var captions = chunk.Select(i => sceneImages.World.FullCaption(sceneImages.SceneIndex(i))).ToArray();
            Tensor latents;
            using (no_grad())
                latents = model.Vae.Encode(sceneImages.Pixels(chunk, model.Device).to_type(model.DType)).Mode().to_type(ScalarType.Float32) * model.Vae.Config.ScalingFactor;
            for (int a = 0; a < attributes.Count; a++)
            {
                var candidates = captions.Select(c => Candidates(c, attributes[a])).ToArray();
                int values = candidates[0].Count;
                var errors = stack(Enumerable.Range(0, values)
                    .Select(v => Errors(parts, latents, candidates.Select(l => l[v].ToText()).ToList(), seed + start)).ToArray());   // [V, n, T·K]
                int Hits(Tensor e)
                {
                    var picked = e.argmin(0).cpu().data<long>().ToArray();
                    return Enumerable.Range(0, chunk.Length).Count(k => candidates[k][(int)picked[k]] == captions[k]);
                }
                correct[a] += Hits(errors.mean([2]));
                for (int t = 0; t < Timesteps.Count; t++)
                    correctAt[a][t] += Hits(errors.narrow(2, t * NoisesPerTimestep, NoisesPerTimestep).mean([2]));
            }
            progress?.Invoke(start + chunk.Length, scenes);
        }
        var first = sceneImages.World.FullCaption(sceneImages.SceneIndex(0));
        return attributes.Select((a, i) => new WordChoice(a, correct[i], scenes, Candidates(first, a).Count, correctAt[i])).ToList();
    }

    /// <summary>The caption with the main object's <paramref name="attribute"/> set to each of its values in turn (its own among them).</summary>
    public static IReadOnlyList<ToyCaption> Candidates(ToyCaption caption, JudgeAttribute attribute) => attribute switch
    {
        JudgeAttribute.Shape => Enum.GetValues<ToyShape>().Select(v => caption with { Main = caption.Main with { Shape = v } }).ToList(),
        JudgeAttribute.Colour => Enum.GetValues<ToyColour>().Select(v => caption with { Main = caption.Main with { Colour = v } }).ToList(),
        JudgeAttribute.Size => Enum.GetValues<ToySize>().Select(v => caption with { Main = caption.Main with { Size = v } }).ToList(),
        JudgeAttribute.Position => Enum.GetValues<ToyPosition>().Select(v => caption with { Main = caption.Main with { Position = v } }).ToList(),
        _ => throw new ArgumentOutOfRangeException(nameof(attribute), $"the diffusion classifier swaps the main object's shape, colour, size or position, not {attribute}"),
    };

    /// <summary>
    /// The UNet's prediction error [N, K] for each latent under its caption at every (timestep, noise) pair, K =
    /// timesteps × <see cref="NoisesPerTimestep"/>. The noise depends only on <paramref name="seed"/> and the latents'
    /// shape, so two calls that differ in their captions alone see the same noisy latents.
    /// </summary>
    public static Tensor Errors(StableDiffusionParts parts, Tensor latents, IReadOnlyList<string> captions, long seed)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var cond = parts.Encode(captions);
        var generator = new Generator((ulong)seed);
        var columns = new List<Tensor>();
        foreach (int t in Timesteps)
            for (int k = 0; k < NoisesPerTimestep; k++)
            {
                var noise = randn(latents.shape, generator: generator).to(latents.device);
                var timesteps = full([latents.shape[0]], t, ScalarType.Int64, latents.device);
                var noisy = parts.AddNoise(latents, noise, timesteps);
                var target = DiffusionLossTerms.Target(parts, latents, noise, timesteps);
                columns.Add((parts.Predict(noisy, timesteps, cond) - target).pow(2).flatten(1).mean([1]));
            }
        generator.Dispose();
        return stack(columns, 1).MoveToOuterDisposeScope();
    }
}
