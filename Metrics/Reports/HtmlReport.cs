using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.Metrics;

public sealed record HtmlReportOptions
{
    public string Title { get; init; } = "DreamBooth fidelity report";
    public int ThumbnailSize { get; init; } = 112;
    public int MaxRealPerSubject { get; init; } = 8;
    /// <summary>Generated thumbnails per subject and run (the rest are still scored and listed in the CSV).</summary>
    public int MaxGeneratedPerSubject { get; init; } = 12;
    public bool EmbedImages { get; init; } = true;
}

/// <summary>
/// A single-file HTML report (inline CSS, JS, SVG charts and base64 JPEG thumbnails; opens without a server)
/// for one run or a comparison of runs (adapters, checkpoints): summary cards, bar charts, sortable per-subject
/// and per-prompt tables, and real-vs-generated galleries per subject.
/// </summary>
public static class HtmlReport
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private static readonly string[] Palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#ff9da7", "#9c755f", "#bab0ac"];
    private static readonly (string Key, string Name, Func<GroupScore, Stat> Of, Func<ImageScore, double> Img)[] Metrics =
    [
        ("dino", "DINO", g => g.Dino, i => i.Dino),
        ("clip_i", "CLIP-I", g => g.ClipI, i => i.ClipI),
        ("clip_t", "CLIP-T", g => g.ClipT, i => i.ClipT),
    ];

    public static void Write(IReadOnlyList<FidelityReport> runs, string path, HtmlReportOptions? options = null) =>
        AtomicFile.WriteAllText(path, Render(runs, options ?? new HtmlReportOptions()));

    /// <summary>A comparison page from saved <c>report.json</c> files (one run each, in the given order).</summary>
    public static void WriteComparison(IEnumerable<string> reportJsonPaths, string path, HtmlReportOptions? options = null) =>
        Write(reportJsonPaths.Select(ReportWriter.ReadJson).ToList(), path, options);

    public static string F(double v) => double.IsNaN(v) ? "–" : v.ToString("F4", Inv);
    private static string H(string s) => WebUtility.HtmlEncode(s);
    private static string Color(int run) => Palette[run % Palette.Length];

    public static string Render(IReadOnlyList<FidelityReport> runs, HtmlReportOptions o)
    {
        if (runs.Count == 0) throw new ArgumentException("no runs to report", nameof(runs));
        var thumbs = o.EmbedImages ? Thumbnails(runs, o) : new Dictionary<string, string>();
        var sb = new StringBuilder(1 << 20);
        sb.Append($$"""
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{H(o.Title)}} — {{H(string.Join(", ", runs.Select(r => r.Label)))}}</title>
<style>{{Css}}</style></head><body>
<header><h1>{{H(o.Title)}}</h1>
<p class="sub">{{runs.Count}} run{{(runs.Count == 1 ? "" : "s")}} · {{runs.Max(r => r.Scores.PerImage.Count)}} generated images{{(runs.Count == 1 ? "" : " per run")}} · {{runs.Select(r => r.Scores.PerSubject.Count).Max()}} subjects · created {{runs.Max(r => r.CreatedUtc).ToString("yyyy-MM-dd HH:mm 'UTC'", Inv)}}</p>
<p class="legend">{{string.Concat(runs.Select((r, i) => $"<span class=\"key\"><i style=\"background:{Color(i)}\"></i>{H(r.Label)}</span>"))}}</p>
<nav><a href="#summary">Summary</a><a href="#charts">Charts</a><a href="#subjects">Subjects</a><a href="#prompts">Prompts</a><a href="#galleries">Galleries</a><a href="#about">About</a></nav>
</header><main>
""");
        Summary(sb, runs);
        Charts(sb, runs);
        GroupTable(sb, runs, "subjects", "Per subject", "Subject", r => r.Scores.PerSubject);
        GroupTable(sb, runs, "prompts", "Per prompt", "Prompt template", r => r.Scores.PerPrompt);
        Galleries(sb, runs, thumbs, o);
        About(sb, runs);
        sb.Append("</main><script>").Append(Script).Append("</script></body></html>\n");
        return sb.ToString();
    }

    private static void Summary(StringBuilder sb, IReadOnlyList<FidelityReport> runs)
    {
        sb.Append("<section id=\"summary\"><h2>Summary</h2><div class=\"cards\">");
        for (int r = 0; r < runs.Count; r++)
        {
            var run = runs[r];
            sb.Append($"<div class=\"card\" style=\"border-top-color:{Color(r)}\"><h3>{H(run.Label)}</h3><div class=\"metrics\">");
            foreach (var m in Metrics)
            {
                var st = m.Of(run.Scores.Overall);
                sb.Append($"<div class=\"metric\" data-run=\"{r}\" data-metric=\"{m.Key}\"><span class=\"name\">{m.Name}</span>" +
                          $"<span class=\"value\">{F(st.Mean)}</span><span class=\"std\">± {F(st.Std)} · n={st.Count}</span></div>");
            }
            var rr = run.RealVsReal;
            sb.Append($"</div><p class=\"ref\">Real vs real: DINO {F(rr.Dino.Mean)} · CLIP-I {F(rr.ClipI.Mean)} &nbsp;|&nbsp; mean of subject means: " +
                      $"DINO {F(run.Scores.SubjectAveraged.Dino.Mean)} · CLIP-I {F(run.Scores.SubjectAveraged.ClipI.Mean)} · CLIP-T {F(run.Scores.SubjectAveraged.ClipT.Mean)}</p>");
            if (run.Evaluators is { } evaluators) sb.Append($"<p class=\"ref evaluators\">Evaluators: <strong>{H(evaluators)}</strong></p>");
            sb.Append($"<p class=\"ref\">CLIP-T prompts {(run.ClipTWithoutIdentifier ? $"without the identifier “{H(run.Identifier)}”" : $"as generated (with “{H(run.Identifier)}”)")}</p></div>");
        }
        sb.Append("</div><p class=\"note\">DINO and CLIP-I: mean cosine similarity between L2-normalised embeddings of generated and real images of the same subject; " +
                  "CLIP-T: mean cosine between each generated image and its prompt (Ruiz et al. 2023). Plain cosine in [−1, 1], ± is the standard deviation over images. " +
                  "DreamBooth paper (SD): DINO 0.668, CLIP-I 0.803, CLIP-T 0.305; real images 0.774 / 0.885 (with DINO ViT-S/16 and CLIP ViT-B/32)" +
                  (runs.Any(r => r.Evaluators is not null) ? "; runs scored by other evaluators (named on their cards) do not compare with these numbers." : ".") + "</p></section>");
    }

    private static void Charts(StringBuilder sb, IReadOnlyList<FidelityReport> runs)
    {
        sb.Append("<section id=\"charts\"><h2>Charts</h2><div class=\"chart-row\">");
        // Overall: one group per metric, one bar per run, whiskers ±1 standard error, dashed real-vs-real reference.
        var groups = Metrics.Select(m => (m.Name, Bars: runs.Select((r, i) => (Label: r.Label, Stat: m.Of(r.Scores.Overall), Color: Color(i))).ToList(),
            Ref: m.Key == "clip_t" ? double.NaN : m.Of(runs[0].RealVsReal).Mean)).ToList();
        sb.Append("<figure class=\"chart\"><figcaption>Overall (± 1 standard error; dashed: real vs real)</figcaption>");
        BarChart(sb, groups, 560, 300);
        sb.Append("</figure></div><div class=\"chart-row\">");
        foreach (var m in Metrics.Take(2))
        {
            var subjects = runs.SelectMany(r => r.Scores.PerSubject.Select(s => s.Name)).Distinct().ToList();
            sb.Append($"<figure class=\"chart wide\"><figcaption>{m.Name} per subject</figcaption>");
            var sg = subjects.Select(s => (Name: s, Bars: runs.Select((r, i) =>
                (Label: r.Label, Stat: r.Scores.PerSubject.FirstOrDefault(g => g.Name == s) is { } g ? m.Of(g) : Stat.Empty, Color: Color(i))).ToList(), Ref: double.NaN)).ToList();
            HorizontalBars(sb, sg);
            sb.Append("</figure>");
        }
        sb.Append("</div></section>");
    }

    private static void BarChart(StringBuilder sb, List<(string Name, List<(string Label, Stat Stat, string Color)> Bars, double Ref)> groups, int width, int height)
    {
        const int left = 44, bottom = 28, top = 12;
        double max = Math.Max(0.1, groups.SelectMany(g => g.Bars.Select(b => double.IsNaN(b.Stat.Mean) ? 0 : b.Stat.Mean + Sem(b.Stat)).Append(double.IsNaN(g.Ref) ? 0 : g.Ref)).Max());
        max = Math.Ceiling(max * 10) / 10;
        double min = Math.Min(0, groups.SelectMany(g => g.Bars.Select(b => double.IsNaN(b.Stat.Mean) ? 0 : b.Stat.Mean)).Min());
        min = Math.Floor(min * 10) / 10;
        double plotH = height - bottom - top, plotW = width - left - 8;
        double Y(double v) => top + plotH * (max - v) / (max - min);
        sb.Append($"<svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\">");
        for (double t = min; t <= max + 1e-9; t += 0.1)
            sb.Append($"<line x1=\"{left}\" x2=\"{width - 8}\" y1=\"{Y(t):F1}\" y2=\"{Y(t):F1}\" class=\"grid\"/><text x=\"{left - 6}\" y=\"{Y(t) + 4:F1}\" class=\"axis\" text-anchor=\"end\">{t.ToString("F1", Inv)}</text>");
        double gw = plotW / groups.Count;
        for (int g = 0; g < groups.Count; g++)
        {
            var (name, bars, refv) = groups[g];
            double bw = Math.Min(48, (gw - 24) / bars.Count), x0 = left + g * gw + (gw - bw * bars.Count) / 2;
            for (int b = 0; b < bars.Count; b++)
            {
                var (label, st, color) = bars[b];
                if (double.IsNaN(st.Mean)) continue;
                double x = x0 + b * bw, y = Y(Math.Max(st.Mean, 0)), h = Math.Abs(Y(st.Mean) - Y(0));
                sb.Append($"<g class=\"bar\"><title>{H(label)} · {name}: {F(st.Mean)} ± {F(st.Std)} (n={st.Count})</title>" +
                          $"<rect x=\"{x + 2:F1}\" y=\"{y:F1}\" width=\"{bw - 4:F1}\" height=\"{Math.Max(h, 0.5):F1}\" rx=\"3\" fill=\"{color}\"/>");
                double sem = Sem(st);
                if (sem > 0)
                    sb.Append($"<line x1=\"{x + bw / 2:F1}\" x2=\"{x + bw / 2:F1}\" y1=\"{Y(st.Mean + sem):F1}\" y2=\"{Y(st.Mean - sem):F1}\" class=\"whisker\"/>");
                sb.Append($"<text x=\"{x + bw / 2:F1}\" y=\"{Y(Math.Max(st.Mean, 0) + sem) - 4:F1}\" class=\"val\" text-anchor=\"middle\">{F(st.Mean)}</text></g>");
            }
            if (!double.IsNaN(refv))
                sb.Append($"<line x1=\"{left + g * gw + 6:F1}\" x2=\"{left + (g + 1) * gw - 6:F1}\" y1=\"{Y(refv):F1}\" y2=\"{Y(refv):F1}\" class=\"ref\"><title>real vs real {F(refv)}</title></line>");
            sb.Append($"<text x=\"{left + g * gw + gw / 2:F1}\" y=\"{height - 8}\" class=\"label\" text-anchor=\"middle\">{H(name)}</text>");
        }
        sb.Append($"<line x1=\"{left}\" x2=\"{width - 8}\" y1=\"{Y(0):F1}\" y2=\"{Y(0):F1}\" class=\"zero\"/></svg>");
    }

    private static double Sem(Stat s) => s.Count > 1 ? s.Std / Math.Sqrt(s.Count) : 0;

    private static void HorizontalBars(StringBuilder sb, List<(string Name, List<(string Label, Stat Stat, string Color)> Bars, double Ref)> groups)
    {
        int runs = groups.Count == 0 ? 1 : groups[0].Bars.Count;
        const int labelW = 150, width = 560, barH = 9;
        int rowH = runs * barH + 8, height = groups.Count * rowH + 24;
        double max = Math.Max(0.1, groups.SelectMany(g => g.Bars.Select(b => double.IsNaN(b.Stat.Mean) ? 0 : b.Stat.Mean)).DefaultIfEmpty(0).Max());
        max = Math.Ceiling(max * 10) / 10;
        double plotW = width - labelW - 50;
        double X(double v) => labelW + plotW * Math.Clamp(v, 0, max) / max;
        sb.Append($"<svg viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\">");
        for (double t = 0; t <= max + 1e-9; t += 0.1)
            sb.Append($"<line x1=\"{X(t):F1}\" x2=\"{X(t):F1}\" y1=\"0\" y2=\"{height - 18}\" class=\"grid\"/><text x=\"{X(t):F1}\" y=\"{height - 4}\" class=\"axis\" text-anchor=\"middle\">{t.ToString("F1", Inv)}</text>");
        for (int g = 0; g < groups.Count; g++)
        {
            double y0 = g * rowH + 4;
            sb.Append($"<text x=\"{labelW - 8}\" y=\"{y0 + runs * barH / 2.0 + 4:F1}\" class=\"label\" text-anchor=\"end\">{H(groups[g].Name)}</text>");
            for (int b = 0; b < groups[g].Bars.Count; b++)
            {
                var (label, st, color) = groups[g].Bars[b];
                if (double.IsNaN(st.Mean)) continue;
                sb.Append($"<g class=\"bar\"><title>{H(groups[g].Name)} · {H(label)}: {F(st.Mean)} ± {F(st.Std)} (n={st.Count})</title>" +
                          $"<rect x=\"{labelW}\" y=\"{y0 + b * barH:F1}\" width=\"{Math.Max(X(st.Mean) - labelW, 0.5):F1}\" height=\"{barH - 1}\" rx=\"2\" fill=\"{color}\"/>" +
                          $"<text x=\"{X(st.Mean) + 4:F1}\" y=\"{y0 + b * barH + barH - 1.5:F1}\" class=\"small\">{F(st.Mean)}</text></g>");
            }
        }
        sb.Append("</svg>");
    }

    private static void GroupTable(StringBuilder sb, IReadOnlyList<FidelityReport> runs, string id, string title, string keyHeader, Func<FidelityReport, IReadOnlyList<GroupScore>> groupsOf)
    {
        var keys = runs.SelectMany(r => groupsOf(r).Select(g => g.Name)).Distinct().ToList();
        sb.Append($"<section id=\"{id}\"><h2>{title}</h2><p class=\"hint\">Click a column header to sort. Cells are shaded by value within their column");
        if (runs.Count > 1) sb.Append("; ★ marks the best run per metric");
        sb.Append($".</p><div class=\"table-wrap\"><table class=\"sortable\" id=\"table-{id}\"><thead><tr><th data-type=\"text\">{keyHeader}</th>");
        foreach (var m in Metrics)
            for (int r = 0; r < runs.Count; r++)
                sb.Append($"<th data-type=\"num\" data-metric=\"{m.Key}\">{m.Name}" + (runs.Count > 1 ? $"<br><span class=\"run\" style=\"color:{Color(r)}\">{H(runs[r].Label)}</span>" : "") + "</th>");
        sb.Append("<th data-type=\"num\">Images</th></tr></thead><tbody>");
        foreach (var key in keys)
        {
            sb.Append($"<tr><td class=\"key\">{H(key)}</td>");
            var found = runs.Select(r => groupsOf(r).FirstOrDefault(g => g.Name == key)).ToList();
            foreach (var m in Metrics)
                foreach (var g in found)
                {
                    var st = g is null ? Stat.Empty : m.Of(g);
                    sb.Append($"<td class=\"num\" data-metric=\"{m.Key}\" data-v=\"{ReportWriter.Num(st.Mean)}\" title=\"± {F(st.Std)} (n={st.Count})\">{F(st.Mean)}</td>");
                }
            int n = found.Where(g => g is not null).Select(g => g!.Dino.Count).DefaultIfEmpty(0).Max();
            sb.Append($"<td class=\"num count\" data-v=\"{n}\">{n}</td></tr>");
        }
        sb.Append("</tbody></table></div></section>");
    }

    private static void Galleries(StringBuilder sb, IReadOnlyList<FidelityReport> runs, IReadOnlyDictionary<string, string> thumbs, HtmlReportOptions o)
    {
        sb.Append("<section id=\"galleries\"><h2>Real vs generated</h2>");
        var subjects = runs.SelectMany(r => r.Scores.PerSubject.Select(s => s.Name)).Distinct().ToList();
        bool first = true;
        foreach (var s in subjects)
        {
            sb.Append($"<details class=\"subject\"{(first ? " open" : "")}><summary><span class=\"sname\">{H(s)}</span>");
            for (int r = 0; r < runs.Count; r++)
                if (runs[r].Scores.PerSubject.FirstOrDefault(g => g.Name == s) is { } g)
                    sb.Append($"<span class=\"chip\" style=\"border-color:{Color(r)}\">{H(runs[r].Label)}: DINO {F(g.Dino.Mean)} · CLIP-I {F(g.ClipI.Mean)} · CLIP-T {F(g.ClipT.Mean)}</span>");
            sb.Append("</summary>");
            first = false;
            var real = runs.Select(r => r.RealImages.TryGetValue(s, out var l) ? l : null).FirstOrDefault(l => l is not null) ?? [];
            sb.Append($"<div class=\"strip\"><h4>Real ({real.Count})</h4><div class=\"thumbs\">");
            foreach (var p in real.Take(o.MaxRealPerSubject)) Thumb(sb, thumbs, p, Path.GetFileName(p), null, o);
            sb.Append("</div></div>");
            for (int r = 0; r < runs.Count; r++)
            {
                var imgs = runs[r].Scores.PerImage.Where(i => i.Subject == s).ToList();
                if (imgs.Count == 0) continue;
                sb.Append($"<div class=\"strip\"><h4 style=\"color:{Color(r)}\">{H(runs[r].Label)} ({imgs.Count}{(imgs.Count > o.MaxGeneratedPerSubject ? $", showing {o.MaxGeneratedPerSubject}" : "")})</h4><div class=\"thumbs\">");
                foreach (var i in imgs.Take(o.MaxGeneratedPerSubject))
                    Thumb(sb, thumbs, i.Path, i.Prompt, $"D {F(i.Dino)} · I {F(i.ClipI)} · T {F(i.ClipT)}", o);
                sb.Append("</div></div>");
            }
            sb.Append("</details>");
        }
        sb.Append("</section>");
    }

    private static void Thumb(StringBuilder sb, IReadOnlyDictionary<string, string> thumbs, string path, string caption, string? scores, HtmlReportOptions o)
    {
        sb.Append($"<figure class=\"thumb\" title=\"{H(caption)}&#10;{H(path)}\">");
        if (thumbs.TryGetValue(path, out var b64) && b64.Length > 0)
            sb.Append($"<img loading=\"lazy\" width=\"{o.ThumbnailSize}\" height=\"{o.ThumbnailSize}\" alt=\"{H(caption)}\" src=\"data:image/jpeg;base64,{b64}\">");
        else
            sb.Append($"<div class=\"missing\" style=\"width:{o.ThumbnailSize}px;height:{o.ThumbnailSize}px\">no preview</div>");
        sb.Append($"<figcaption>{H(Shorten(caption, 38))}{(scores is null ? "" : $"<br><span class=\"sc\">{scores}</span>")}</figcaption></figure>");
    }

    private static string Shorten(string s, int n) => s.Length <= n ? s : s[..(n - 1)] + "…";

    private static void About(StringBuilder sb, IReadOnlyList<FidelityReport> runs)
    {
        sb.Append("<section id=\"about\"><h2>About these runs</h2><table class=\"about\"><thead><tr><th>Run</th><th>Generated</th><th>Real</th><th>Models</th><th>Timing</th><th>Skipped subjects</th></tr></thead><tbody>");
        foreach (var r in runs)
        {
            var models = string.Join("<br>", r.Models.Select(m => $"{H(m.Role)}: {H(Path.GetFileName(m.Path))} <code>{H(m.Sha256.Length > 12 ? m.Sha256[..12] : m.Sha256)}</code>"));
            if (r.Evaluators is { } evaluators) models = $"<strong>{H(evaluators)}</strong><br>" + models;
            var timing = r.Stats is { } st ? $"{st.Images} images, {st.CacheHits} cached, {st.Computed} computed; preprocess {st.Preprocess.TotalSeconds:F1} s, ONNX {st.Inference.TotalSeconds:F1} s" : "";
            var skipped = r.Skipped.Count == 0 ? "none" : string.Join("<br>", r.Skipped.Select(kv => $"{H(kv.Key)}: {H(kv.Value)}"));
            if (r.SkippedImages.Count > 0)
                skipped += $"<br>{r.SkippedImages.Count} unusable image(s): " + string.Join("<br>", r.SkippedImages.Take(20).Select(kv => $"{H(kv.Key)}: {H(kv.Value)}"));
            sb.Append($"<tr><td>{H(r.Label)}</td><td><code>{H(r.GeneratedDir)}</code></td><td><code>{H(r.RealDir)}</code></td><td>{models}</td><td>{timing}</td><td>{skipped}</td></tr>");
        }
        sb.Append("</tbody></table></section>");
    }

    private static Dictionary<string, string> Thumbnails(IReadOnlyList<FidelityReport> runs, HtmlReportOptions o)
    {
        var paths = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in runs)
        {
            foreach (var s in r.Scores.PerSubject.Select(g => g.Name))
            {
                if (r.RealImages.TryGetValue(s, out var real)) paths.UnionWith(real.Take(o.MaxRealPerSubject));
                paths.UnionWith(r.Scores.PerImage.Where(i => i.Subject == s).Take(o.MaxGeneratedPerSubject).Select(i => i.Path));
            }
        }
        var result = new ConcurrentDictionary<string, string>();
        Parallel.ForEach(paths, p =>
        {
            try { result[p] = Convert.ToBase64String(JpegEncoder.Encode(ImageGrid.SquareThumbnail(ImageLoader.Load(p), o.ThumbnailSize), 82)); }
            catch (ImageDecodeException) { result[p] = ""; } // the gallery shows a placeholder; scoring already validated the files
        });
        return new Dictionary<string, string>(result);
    }

    private const string Css = """
:root{--bg:#f6f7f9;--fg:#1d2330;--muted:#667085;--card:#fff;--line:#e4e7ec;--accent:#4e79a7}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:linear-gradient(120deg,#1f3a5f,#4e79a7);color:#fff;padding:28px 40px 0}
header h1{margin:0;font-size:26px;font-weight:650;letter-spacing:.2px}.sub{margin:6px 0 4px;opacity:.85}
.legend .key{display:inline-flex;align-items:center;margin-right:16px;font-weight:600}.legend i{width:12px;height:12px;border-radius:3px;margin-right:6px;display:inline-block;border:1px solid #fff8}
nav{margin-top:14px;display:flex;gap:4px}nav a{color:#fff;text-decoration:none;padding:8px 14px;border-radius:8px 8px 0 0;background:#ffffff1f}nav a:hover{background:#ffffff38}
main{max-width:1320px;margin:0 auto;padding:10px 40px 60px}section{margin-top:28px}h2{font-size:19px;margin:0 0 12px;font-weight:650}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(390px,1fr));gap:16px}
.card{background:var(--card);border:1px solid var(--line);border-top:4px solid var(--accent);border-radius:12px;padding:16px 18px;box-shadow:0 1px 2px #1018280d}
.card h3{margin:0 0 10px;font-size:16px}.metrics{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:10px}.metric{min-width:0;background:#f9fafb;border-radius:10px;padding:10px 12px;display:flex;flex-direction:column}
.metric .name{font-size:12px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.5px}.metric .value{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums}
.metric .std{font-size:12px;color:var(--muted)}.metric.best{outline:2px solid #f4b400;outline-offset:-2px}.ref{margin:8px 0 0;color:var(--muted);font-size:12.5px}p.evaluators{color:#b45309}
.note,.hint{color:var(--muted);font-size:12.5px;max-width:1000px}
.chart-row{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start;margin-bottom:16px}.chart{margin:0;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:12px 14px}
.chart figcaption{font-weight:600;margin-bottom:6px}svg text{font-family:inherit}.grid{stroke:#eef0f3}.zero{stroke:#98a2b3}.axis{font-size:11px;fill:var(--muted)}
.label{font-size:12px;fill:var(--fg)}.val{font-size:11px;fill:var(--fg);font-weight:600}.small{font-size:9.5px;fill:var(--muted)}.whisker{stroke:#1d2330;stroke-width:1.4}
.ref{stroke:#e15759;stroke-dasharray:5 4;stroke-width:1.6}.bar:hover rect{filter:brightness(1.12)}
.table-wrap{overflow:auto;background:var(--card);border:1px solid var(--line);border-radius:12px;max-height:640px}
table{border-collapse:separate;border-spacing:0;width:100%}th,td{padding:7px 12px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
thead th{position:sticky;top:0;background:#f2f4f7;font-size:12px;text-transform:uppercase;letter-spacing:.4px;color:#475467;cursor:pointer;user-select:none;z-index:1}
thead th:hover{background:#e8ebf0}th[aria-sort=ascending]::after{content:" ▲";color:var(--accent)}th[aria-sort=descending]::after{content:" ▼";color:var(--accent)}
th .run{text-transform:none;font-weight:700;letter-spacing:0}td.num{text-align:right;font-variant-numeric:tabular-nums}td.key{font-weight:600}
tbody tr:hover td{background:#f5f8ff!important}td.best::after{content:" ★";color:#d89b00}
table.about th{cursor:default}table.about td{white-space:normal;vertical-align:top;font-size:12.5px}code{font-size:11.5px;background:#f2f4f7;padding:1px 4px;border-radius:4px}
details.subject{background:var(--card);border:1px solid var(--line);border-radius:12px;margin-bottom:10px;padding:0 16px}
details.subject summary{cursor:pointer;padding:12px 0;display:flex;flex-wrap:wrap;gap:8px;align-items:center;list-style:none}
details.subject summary::before{content:"▸";color:var(--muted);transition:transform .15s}details[open].subject summary::before{transform:rotate(90deg)}
.sname{font-weight:700;font-size:15px;margin-right:6px}.chip{border:1.5px solid;border-radius:999px;padding:2px 10px;font-size:12px;color:#344054;background:#fcfcfd}
.strip h4{margin:6px 0;font-size:13px}.thumbs{display:flex;flex-wrap:wrap;gap:10px;padding-bottom:12px}
.thumb{margin:0;width:min-content}.thumb img,.missing{border-radius:8px;display:block;box-shadow:0 1px 3px #10182826;background:#eee}
.missing{display:flex;align-items:center;justify-content:center;color:var(--muted);font-size:11px}
.thumb figcaption{font-size:11px;color:#475467;margin-top:4px;line-height:1.3}.thumb .sc{color:var(--muted);font-variant-numeric:tabular-nums}
""";

    private const string Script = """
(function(){
  function val(td,type){ if(type==='num'){ var v=parseFloat(td.getAttribute('data-v')); return isNaN(v)?-Infinity:v; } return td.textContent.toLowerCase(); }
  function sortTable(table,col,dir){
    var th=table.tHead.rows[0].cells[col], type=th.getAttribute('data-type'), body=table.tBodies[0];
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){ var x=val(a.cells[col],type), y=val(b.cells[col],type); return (x<y?-1:x>y?1:0)*(dir==='ascending'?1:-1); });
    rows.forEach(function(r){ body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(c){ c.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort',dir);
  }
  function shade(table){
    var n=table.tHead.rows[0].cells.length;
    for(var c=1;c<n;c++){
      var th=table.tHead.rows[0].cells[c]; if(!th.getAttribute('data-metric')) continue;
      var cells=Array.prototype.map.call(table.tBodies[0].rows,function(r){return r.cells[c];});
      var vs=cells.map(function(td){return parseFloat(td.getAttribute('data-v'));}).filter(function(v){return !isNaN(v);});
      if(!vs.length) continue; var lo=Math.min.apply(null,vs), hi=Math.max.apply(null,vs);
      cells.forEach(function(td){ var v=parseFloat(td.getAttribute('data-v')); if(isNaN(v)) return;
        var t=hi>lo?(v-lo)/(hi-lo):0.5; td.style.background='hsla('+Math.round(8+t*112)+',70%,55%,'+(0.10+0.22*t).toFixed(2)+')'; td.classList.add('heat'); });
    }
  }
  // Marks the elements holding the largest value, unless there is nothing to compare or every value ties.
  function markMax(els,get){
    if(els.length<2) return; var vs=els.map(get), ok=vs.filter(function(v){return !isNaN(v);}); if(ok.length<2) return;
    var hi=Math.max.apply(null,ok), lo=Math.min.apply(null,ok); if(hi===lo) return;
    els.forEach(function(e,i){ if(vs[i]===hi) e.classList.add('best'); });
  }
  function markBest(table){
    Array.prototype.forEach.call(table.tBodies[0].rows,function(r){
      var groups={}; Array.prototype.forEach.call(r.cells,function(td){ var m=td.getAttribute('data-metric'); if(m){(groups[m]=groups[m]||[]).push(td);} });
      Object.keys(groups).forEach(function(m){ markMax(groups[m],function(td){return parseFloat(td.getAttribute('data-v'));}); });
    });
  }
  function bestCards(){
    ['dino','clip_i','clip_t'].forEach(function(m){
      markMax(Array.prototype.slice.call(document.querySelectorAll('.metric[data-metric="'+m+'"]')),function(c){return parseFloat(c.querySelector('.value').textContent);}); });
  }
  document.querySelectorAll('table.sortable').forEach(function(table){
    Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
      th.addEventListener('click',function(){ var cur=th.getAttribute('aria-sort'); var type=th.getAttribute('data-type');
        sortTable(table,i,cur==='descending'?'ascending':cur==='ascending'?'descending':(type==='num'?'descending':'ascending')); });
    });
    shade(table); markBest(table);
  });
  var subj=document.getElementById('table-subjects'); if(subj) sortTable(subj,1,'descending');
  bestCards();
  document.body.setAttribute('data-ready','1');
})();
""";
}
