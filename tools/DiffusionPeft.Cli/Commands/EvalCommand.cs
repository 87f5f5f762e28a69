using System.CommandLine;

namespace DiffusionPeft.Cli.Commands;

/// <summary>`dpeft eval`: DINO, CLIP-I and CLIP-T of generated images against real ones, per image, prompt and subject.</summary>
public static class EvalCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var subjects = new Option<string>("--subjects") { Description = "Subjects CSV (subject,class,kind) or a prompts folder holding dreambooth_subjects.csv.", DefaultValueFactory = _ => "prompts/dreambooth_subjects.csv" };
        var generated = new Option<string>("--generated") { Description = "Generated images: DIR/<subject>/**.png (prompt read from the PNG's parameters chunk).", Required = true };
        var real = new Option<string>("--real") { Description = "Real images: DIR/<subject>/*.{jpg,png,webp}.", Required = true };
        var models = MetricModelOptions.Create();
        var outDir = new Option<string>("--out") { Description = "Report folder: report.json, CSV tables, report.html.", DefaultValueFactory = _ => "eval" };
        var label = new Option<string>("--label") { Description = "Names this run in reports (adapter, checkpoint...).", DefaultValueFactory = _ => "run" };
        var identifier = new Option<string>("--identifier") { Description = "The rare identifier in the prompts.", DefaultValueFactory = _ => "sks" };
        var withoutId = new Option<bool>("--clip-t-without-identifier") { Description = "Score CLIP-T against the prompt with the identifier removed (recorded in the report)." };
        var cache = new Option<string?>("--cache") { Description = "Embedding cache folder (default: OUT/.embcache); survives crashes." };
        var batch = new Option<int>("--batch") { Description = "Images per ONNX call.", DefaultValueFactory = _ => 16 };
        var subjectFilter = new Option<string[]>("--subject") { Description = "Only these subjects (repeatable).", DefaultValueFactory = _ => [] };

        var command = new Command("eval", "Score generated images with DINO, CLIP-I and CLIP-T (DreamBooth protocol) and write JSON, CSV and HTML reports.")
        {
            subjects, generated, real, outDir, label, identifier, withoutId, cache, batch, subjectFilter,
        };
        models.AddTo(command);
        command.SetAction(r => EvalRunner.Run(new EvalJob(
            r.GetValue(subjects)!, r.GetValue(generated)!, r.GetValue(real)!, r.GetValue(outDir)!, r.GetValue(label)!, r.GetValue(identifier)!,
            r.GetValue(withoutId), r.GetValue(cache), r.GetValue(batch), r.GetValue(subjectFilter) is { Length: > 0 } only ? only : null,
            models.Resolve(r, error)), output, error));
        return command;
    }
}
