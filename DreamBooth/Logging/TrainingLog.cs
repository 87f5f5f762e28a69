using System.Globalization;
using System.Text;
using System.Text.Json;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.DreamBooth.Logging;

/// <summary>
/// RUN/log.jsonl: one JSON object per optimizer step (step, epoch, loss, lr, grad_norm, it_s, elapsed_s, eta_s),
/// appended and flushed as each step ends. Opening it for a resumed run drops the lines after the resumed step
/// (a killed run may have logged steps past its last checkpoint), so the log reads as one uninterrupted run.
/// </summary>
public sealed class TrainingLog : IDisposable
{
    public const string FileName = "log.jsonl";
    private readonly StreamWriter _writer;
    private readonly List<(long Step, double Loss)> _losses;

    public string Path { get; }
    public IReadOnlyList<(long Step, double Loss)> Losses => _losses;

    public TrainingLog(string path, long resumedStep)
    {
        Path = path;
        _losses = [];
        if (File.Exists(path))
        {
            var kept = new StringBuilder();
            foreach (var line in File.ReadLines(path))
            {
                if (!TryParse(line, out long step, out double loss) || step > resumedStep) continue;
                kept.Append(line).Append('\n');
                _losses.Add((step, loss));
            }
            AtomicFile.WriteAllText(path, kept.ToString());
        }
        _writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read), new UTF8Encoding(false));
    }

    public void Append(StepReport r)
    {
        var inv = CultureInfo.InvariantCulture;
        _writer.Write(string.Create(inv,
            $"{{\"step\":{r.Step},\"epoch\":{r.Epoch},\"loss\":{Num(r.Loss)},\"lr\":{Num(r.LearningRate)},\"grad_norm\":{Num(r.GradNorm)}," +
            $"\"it_s\":{Num(Math.Round(r.StepsPerSecond, 4))},\"elapsed_s\":{Num(Math.Round(r.Elapsed.TotalSeconds, 3))},\"eta_s\":{Num(Math.Round(r.Remaining.TotalSeconds, 3))}}}\n"));
        _writer.Flush();
        _losses.Add((r.Step, r.Loss));
    }

    public void Dispose() => _writer.Dispose();

    private static string Num(double v) => double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "null";

    private static bool TryParse(string line, out long step, out double loss)
    {
        step = 0; loss = double.NaN;
        if (string.IsNullOrWhiteSpace(line)) return false;
        try
        {
            using var doc = JsonDocument.Parse(line);
            if (!doc.RootElement.TryGetProperty("step", out var s) || !s.TryGetInt64(out step)) return false;
            if (doc.RootElement.TryGetProperty("loss", out var l) && l.ValueKind == JsonValueKind.Number) loss = l.GetDouble();
            return true;
        }
        catch (JsonException)
        {
            return false; // a line cut short by a kill: drop it
        }
    }
}
