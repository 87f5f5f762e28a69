using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using DiffusionPeft.Core.IO;
using DiffusionPeft.Diffusion.Loading;
using DiffusionPeft.Diffusion.Models;
using DiffusionPeft.DreamBooth.StableDiffusion;
using DiffusionPeft.Experiments.Claims;
using DiffusionPeft.ToyWorld;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusionPeft.Experiments.ToyTextStates;

/// <summary>
/// What the UNet's cross-attention is given to tell words apart: a toy model's text-encoder states (all context
/// positions, as the UNet reads them) for captions that differ in one word (colour, shape, position), as each pair's
/// distance relative to the caption's, before and after the whitening of dpeft train --whiten-conditioning
/// (<see cref="ConditioningWhitening"/>, computed from training captions), and the spectrum of the states' second moment.
/// </summary>
public static class ToyTextStatesExperiment
{
    private sealed record Family(string Name, string Template, string[] Words);

    private static readonly Family[] Families =
    [
        new("colour", "a large X circle in the center, plain white background", ["red", "orange", "yellow", "green", "blue", "purple", "pink", "white", "gray", "black"]),
        new("shape", "a large red X in the center, plain white background", ["circle", "square", "triangle", "star", "ring", "cross", "heart", "diamond"]),
        new("position", "a large red circle X, plain white background", ["on the left", "on the right", "at the top", "at the bottom", "in the center", "at the top left", "at the bottom right"]),
    ];

    public static int RunCommand(string[] args, string root)
    {
        string? model = null, outDir = null;
        int captions = 3000;
        long worldSeed = 0;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--model": model = Next(); break;
                case "--out": outDir = Next(); break;
                case "--captions": captions = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--world-seed": worldSeed = long.Parse(Next(), CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }
        if (captions < 1) { Console.Error.WriteLine($"--captions takes a count of at least 1 (got {captions})"); return 2; }
        outDir ??= Path.Combine(root, "docs", "experiments", "toy-text-states");
        var commit = CommitInfo.Read(root);
        using var sd = EmbeddedDefaultModel.IsRequested(model) ? EmbeddedDefaultModel.Create(model) : StableDiffusionLoader.Load(model!);
        var world = new World(worldSeed);
        var training = Enumerable.Range(0, captions).Select(i => world.TrainingCaption(i).ToText()).Append("").ToList();
        using var parts = new StableDiffusionParts(sd);   // the states training caches: what the UNet reads
        Tensor Encode(IReadOnlyList<string> texts)
        {
            using var _ = no_grad();
            return parts.Encode(texts);
        }
        using var moment = ConditioningWhitening.SecondMoment(training, Encode);   // the captions encoded once
        using var whitening = ConditioningWhitening.FromMoment(moment, CPU);
        var spectrum = Spectrum(moment);

        var report = new JsonObject
        {
            ["commit"] = commit.ToString(), ["model"] = model ?? EmbeddedDefaultModel.Keyword, ["world_seed"] = worldSeed, ["captions"] = captions,
            ["eigenvalues"] = new JsonObject { ["max"] = spectrum.Max, ["median"] = spectrum.Median, ["min"] = spectrum.Min, ["top4_share"] = spectrum.Top4Share },
        };
        var md = new StringBuilder();
        md.AppendLine("# What the UNet is given to tell words apart: the toy text encoder's states");
        md.AppendLine();
        md.AppendLine($"Model {model ?? "embedded (the shipped toy model)"}; whitening from {captions:N0} training captions (world seed {worldSeed}) and the empty caption; commit {commit}. " +
                      "Distance of two captions that differ in one word: ‖a − b‖ / ‖a‖ over every context position the UNet reads (padding included).");
        md.AppendLine();
        md.AppendLine($"Second moment of the states (every position): eigenvalues from {spectrum.Max:G3} down to a median of {spectrum.Median:G3} (smallest {spectrum.Min:G2}); the four largest hold {100 * spectrum.Top4Share:F1}% of it.");
        md.AppendLine();
        md.AppendLine("| words | pairs | mean distance | closest pair | mean distance, whitened | closest pair, whitened |");
        md.AppendLine("| --- | ---: | ---: | --- | ---: | --- |");
        var families = new JsonObject();
        foreach (var family in Families)
        {
            using var states = Encode(family.Words.Select(w => family.Template.Replace("X", w)).ToArray());
            using var white = whitening.Apply(states);
            var raw = Distances(states); var whitened = Distances(white);
            var (rawPair, rawMin) = Closest(raw, family.Words); var (whitePair, whiteMin) = Closest(whitened, family.Words);
            md.AppendLine($"| {family.Name} | {family.Words.Length * (family.Words.Length - 1) / 2} | {Mean(raw):F3} | {rawPair} {rawMin:F3} | {Mean(whitened):F3} | {whitePair} {whiteMin:F3} |");
            families[family.Name] = new JsonObject
            {
                ["template"] = family.Template, ["words"] = new JsonArray(family.Words.Select(w => (JsonNode)w).ToArray()),
                ["distances"] = Matrix(raw), ["distances_whitened"] = Matrix(whitened),
            };
        }
        report["families"] = families;
        md.AppendLine();
        foreach (var family in Families)
        {
            var d = families[family.Name]!["distances"]!.AsArray();
            md.AppendLine($"Nearest {family.Name} word to each (before whitening): " + string.Join(", ", family.Words.Select((w, i) =>
            {
                var row = d[i]!.AsArray().Select(x => (double)x!).ToArray();
                int j = Enumerable.Range(0, row.Length).Where(k => k != i).MinBy(k => row[k]);
                return $"{w} → {family.Words[j]} ({row[j]:F3})";
            })) + ".");
            md.AppendLine();
        }
        Directory.CreateDirectory(outDir);
        AtomicFile.WriteAllText(Path.Combine(outDir, "results.md"), md.ToString());
        AtomicFile.WriteAllText(Path.Combine(outDir, "results.json"), report.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        Console.Write(md);
        return 0;
    }

    private sealed record SpectrumStats(double Max, double Median, double Min, double Top4Share);

    private static SpectrumStats Spectrum(Tensor moment)
    {
        using var eigen = linalg.eigvalsh(moment);
        var values = eigen.data<double>().ToArray().OrderDescending().ToArray();
        return new SpectrumStats(values[0], values[values.Length / 2], values[^1], values.Take(4).Sum() / values.Sum());
    }

    /// <summary>‖a − b‖ / ‖a‖ for every pair of rows of <paramref name="states"/> [N, L, D].</summary>
    private static double[,] Distances(Tensor states)
    {
        int n = (int)states.shape[0];
        var d = new double[n, n];
        using var flat = states.reshape(n, -1).to(ScalarType.Float64);
        using var norms = flat.norm(1);
        using var diff = cdist(flat.unsqueeze(0), flat.unsqueeze(0)).squeeze(0);
        using var relative = diff / norms.unsqueeze(1);
        var values = relative.data<double>().ToArray();
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) d[i, j] = values[i * n + j];
        return d;
    }

    private static double Mean(double[,] d)
    {
        int n = d.GetLength(0); double sum = 0; int count = 0;
        for (int i = 0; i < n; i++) for (int j = i + 1; j < n; j++) { sum += d[i, j]; count++; }
        return sum / count;
    }

    private static (string Pair, double Distance) Closest(double[,] d, string[] words)
    {
        int n = d.GetLength(0); (string, double) best = ("", double.MaxValue);
        for (int i = 0; i < n; i++) for (int j = i + 1; j < n; j++) if (d[i, j] < best.Item2) best = ($"{words[i]}/{words[j]}", d[i, j]);
        return best;
    }

    private static JsonArray Matrix(double[,] d)
    {
        int n = d.GetLength(0);
        return new JsonArray(Enumerable.Range(0, n).Select(i => (JsonNode)new JsonArray(Enumerable.Range(0, n).Select(j => (JsonNode)Math.Round(d[i, j], 4)).ToArray())).ToArray());
    }
}
