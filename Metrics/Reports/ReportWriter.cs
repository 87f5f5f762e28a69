using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Metrics;

/// <summary>Writes fidelity reports as JSON, CSV tables and a self-contained HTML page (all files atomically).</summary>
public static class ReportWriter
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>report.json, per_image.csv, per_prompt.csv, per_subject.csv, overall.csv and report.html in <paramref name="outDir"/>.</summary>
    public static void WriteAll(FidelityReport report, string outDir, HtmlReportOptions? html = null)
    {
        Directory.CreateDirectory(outDir);
        WriteJson(report, Path.Combine(outDir, "report.json"));
        WriteCsv(report, outDir);
        HtmlReport.Write([report], Path.Combine(outDir, "report.html"), html);
    }

    public static void WriteJson(FidelityReport report, string path) =>
        AtomicFile.WriteAllText(path, JsonSerializer.Serialize(report, Json));

    public static FidelityReport ReadJson(string path) =>
        JsonSerializer.Deserialize<FidelityReport>(File.ReadAllText(path), Json)
            ?? throw new InvalidDataException($"{path}: empty fidelity report");

    public static void WriteCsv(FidelityReport report, string outDir)
    {
        var s = report.Scores;
        var img = new StringBuilder("label,subject,prompt_key,prompt,clip_t_prompt,image,dino,clip_i,clip_t\n");
        foreach (var i in s.PerImage)
            Row(img, report.Label, i.Subject, i.PromptKey, i.Prompt, i.ClipTPrompt, i.Path, Num(i.Dino), Num(i.ClipI), Num(i.ClipT));
        AtomicFile.WriteAllText(Path.Combine(outDir, "per_image.csv"), img.ToString());
        AtomicFile.WriteAllText(Path.Combine(outDir, "per_prompt.csv"), GroupCsv(report.Label, "prompt", s.PerPrompt));
        AtomicFile.WriteAllText(Path.Combine(outDir, "per_subject.csv"), GroupCsv(report.Label, "subject", s.PerSubject));
        AtomicFile.WriteAllText(Path.Combine(outDir, "overall.csv"), GroupCsv(report.Label, "group", [s.Overall, s.SubjectAveraged, report.RealVsReal]));
    }

    private static string GroupCsv(string label, string keyName, IEnumerable<GroupScore> groups)
    {
        var sb = new StringBuilder($"label,{keyName},count,dino_mean,dino_std,clip_i_mean,clip_i_std,clip_t_mean,clip_t_std\n");
        foreach (var g in groups)
            Row(sb, label, g.Name, Math.Max(g.Dino.Count, Math.Max(g.ClipI.Count, g.ClipT.Count)).ToString(Inv),
                Num(g.Dino.Mean), Num(g.Dino.Std), Num(g.ClipI.Mean), Num(g.ClipI.Std), Num(g.ClipT.Mean), Num(g.ClipT.Std));
        return sb.ToString();
    }

    /// <summary>Round-trip invariant formatting; NaN as an empty field.</summary>
    public static string Num(double v) => double.IsNaN(v) ? "" : v.ToString("R", Inv);

    private static void Row(StringBuilder sb, params string[] fields)
    {
        sb.AppendJoin(',', fields.Select(Csv));
        sb.Append('\n');
    }

    private static string Csv(string f) =>
        f.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + f.Replace("\"", "\"\"") + "\"" : f;
}
