using System.Globalization;
using System.Net;
using System.Text;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Metrics;

/// <summary>One score of a personalization run: the base model's value, the adapter's, and a reference (e.g. the real images' own).</summary>
public sealed record ScoreRow(string Name, double Before, double After, double? Reference, string Note, bool HigherIsBetter = true);

/// <summary>One prompt of the protocol, generated with the same seed by the base model and by the adapter.</summary>
public sealed record PromptPair(string Prompt, IReadOnlyList<string> Before, IReadOnlyList<string> After);

/// <summary>What a personalization report shows, top to bottom.</summary>
public sealed record PersonalizationReportData
{
    public required string Title { get; init; }
    /// <summary>Facts under the title: subject, method, steps, time.</summary>
    public required IReadOnlyList<string> Facts { get; init; }
    public required IReadOnlyList<string> InstanceImages { get; init; }
    public IReadOnlyList<string> HeldOutImages { get; init; } = [];
    public required IReadOnlyList<ScoreRow> Scores { get; init; }
    public required IReadOnlyList<PromptPair> Pairs { get; init; }
    public string? LossPlot { get; init; }
    /// <summary>Closing notes: what the evaluators are, where the details are.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>
/// The one page a personalization run ends with (`dpeft demo`): the subject's training images, a score table base vs
/// adapter with bars, the loss curve, and every protocol prompt as before/after image pairs. Single file: images are
/// inlined (small images are shown enlarged with crisp pixels), no scripts, opens anywhere.
/// </summary>
public static class PersonalizationReport
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static void Write(PersonalizationReportData data, string path) => AtomicFile.WriteAllText(path, Render(data));

    public static string Render(PersonalizationReportData d)
    {
        var sb = new StringBuilder(1 << 20);
        sb.Append($$"""
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{H(d.Title)}}</title><style>{{Css}}</style></head><body>
<header><h1>{{H(d.Title)}}</h1><p>{{string.Join(" · ", d.Facts.Select(H))}}</p></header><main>
<section><h2>The subject: training images</h2><div class="strip">{{string.Concat(d.InstanceImages.Select(p => Img(p, "")))}}</div>
""");
        if (d.HeldOutImages.Count > 0)
            sb.Append($"<p class=\"muted\">Held-out views (scored against, never trained on):</p><div class=\"strip small\">{string.Concat(d.HeldOutImages.Select(p => Img(p, "")))}</div>");
        sb.Append("</section>\n<section><h2>Scores: base model → with the adapter</h2><table class=\"scores\"><tr><th>score</th><th>base</th><th>adapter</th><th>change</th><th>reference</th><th></th></tr>");
        foreach (var s in d.Scores)
        {
            double delta = s.After - s.Before;
            // A change that shows as 0.000 is neither: colouring it red or green would say more than the number does.
            var change = F(delta) is "0.000" or "-0.000" ? Change.Same : (s.HigherIsBetter ? delta > 0 : delta < 0) ? Change.Up : Change.Down;
            double scale = Math.Max(1e-9, new[] { Math.Abs(s.Before), Math.Abs(s.After), Math.Abs(s.Reference ?? 0) }.Max());
            var (colour, css) = change switch { Change.Up => ("#59a14f", "up"), Change.Down => ("#e15759", "down"), _ => ("#bab0ac", "same") };
            sb.Append($"<tr><td><b>{H(s.Name)}</b></td><td>{Bar(s.Before, scale, "#bab0ac")}</td><td>{Bar(s.After, scale, colour)}</td>" +
                      $"<td class=\"{css}\">{(change == Change.Same ? "±0.000" : (delta >= 0 ? "+" : "") + F(delta))}</td><td>{(s.Reference is { } r ? F(r) : "–")}</td><td class=\"muted\">{H(s.Note)}</td></tr>");
        }
        sb.Append("</table></section>\n");
        if (d.LossPlot is { } plot && File.Exists(plot))
            sb.Append($"<section><h2>Training loss</h2><img class=\"plot\" src=\"data:image/png;base64,{Convert.ToBase64String(File.ReadAllBytes(plot))}\" alt=\"loss curve\"></section>\n");
        sb.Append("<section><h2>Every prompt, same seeds: base model | with the adapter</h2><div class=\"pairs\">");
        foreach (var p in d.Pairs)
            sb.Append($"<figure><figcaption>{H(p.Prompt)}</figcaption><div class=\"pair\"><div>{string.Concat(p.Before.Select(i => Img(i, "")))}</div><div class=\"arrow\">→</div><div>{string.Concat(p.After.Select(i => Img(i, "")))}</div></div></figure>");
        sb.Append("</div></section>\n");
        if (d.Notes.Count > 0) sb.Append($"<section class=\"notes\">{string.Concat(d.Notes.Select(n => $"<p>{H(n)}</p>"))}</section>");
        sb.Append("</main></body></html>\n");
        return sb.ToString();
    }

    private enum Change { Up, Down, Same }

    private static string Bar(double v, double scale, string color) =>
        $"<div class=\"bar\"><i style=\"width:{Math.Clamp(Math.Abs(v) / scale * 100, 0, 100).ToString("F1", Inv)}%;background:{color}\"></i><span>{F(v)}</span></div>";

    private static string Img(string path, string title)
    {
        if (!File.Exists(path)) return "<span class=\"missing\">missing</span>";
        var image = ImageLoader.Load(path);
        var png = PngWriter.Encode(image);
        return $"<img src=\"data:image/png;base64,{Convert.ToBase64String(png)}\" width=\"{Math.Min(128, 2 * image.Width)}\" alt=\"{H(Path.GetFileName(path))}\" title=\"{H(title)}\">";
    }

    private static string F(double v) => double.IsNaN(v) ? "–" : v.ToString("F3", Inv);
    private static string H(string s) => WebUtility.HtmlEncode(s);

    private const string Css = """
:root{--bg:#f6f7f9;--fg:#1d2330;--muted:#667085;--card:#fff;--line:#e4e7ec}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
header{background:linear-gradient(120deg,#1f3a5f,#4e79a7);color:#fff;padding:26px 40px}header h1{margin:0;font-size:26px}header p{margin:6px 0 0;opacity:.9}
main{max-width:1200px;margin:0 auto;padding:8px 24px 40px}section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin:18px 0}
h2{font-size:17px;margin:0 0 12px}.muted{color:var(--muted)}img{image-rendering:pixelated;border-radius:4px;margin:2px}
.strip img{width:128px}.strip.small img{width:80px}.plot{max-width:100%;image-rendering:auto}
table.scores{border-collapse:collapse;width:100%}table.scores td,table.scores th{padding:7px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
.bar{position:relative;width:170px;height:20px;background:#f0f2f5;border-radius:4px;overflow:hidden}.bar i{position:absolute;left:0;top:0;bottom:0;border-radius:4px}
.bar span{position:relative;padding-left:6px;font-variant-numeric:tabular-nums;font-weight:600}.up{color:#2e7d32;font-weight:600}.down{color:#c62828;font-weight:600}.same{color:var(--muted)}
.pairs{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}figure{margin:0;padding:8px;border:1px solid var(--line);border-radius:8px}
figcaption{font-size:12.5px;color:var(--muted);margin-bottom:6px}.pair{display:flex;align-items:center;gap:6px}.pair img{width:64px}.arrow{color:var(--muted);font-size:18px}
.notes p{margin:4px 0;color:var(--muted)}
""";
}
