using System.CommandLine;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.ToyWorld.Subjects;

namespace DiffusionPeft.Cli.Commands;

/// <summary>`dpeft demo`: personalize the embedded toy-world model on a bundled subject, generate, score, report.</summary>
public static class DemoCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var outDir = new Option<string>("--out") { Description = "Folder for the data, the run, the images and report.html.", DefaultValueFactory = _ => "demo" };
        var subject = new Option<string>("--subject") { Description = $"A toy subject: {string.Join(", ", ToySubjects.All.Select(s => s.Name))}.", DefaultValueFactory = _ => "sunny_star" };
        var method = new Option<string>("--method") { Description = "lora|rslora|dora|loraplus|singlora|sdslora", DefaultValueFactory = _ => "singlora" };
        var rank = new Option<int>("--rank") { DefaultValueFactory = _ => 4 };
        var steps = new Option<int>("--steps") { Description = "Training steps.", DefaultValueFactory = _ => TrainConfig.EmbeddedModelDefaults.Steps };
        var lr = new Option<double>("--lr") { DefaultValueFactory = _ => TrainConfig.EmbeddedModelDefaults.Lr };
        var n = new Option<int>("--n") { Description = "Images per prompt (seeds seed, seed+1, ...).", DefaultValueFactory = _ => 2 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var quiet = new Option<bool>("--quiet");
        var command = new Command("demo", "The main job end to end on the embedded toy-world model: train an adapter on a toy subject, generate the protocol's prompts before and after, score them (toy DINO, CLIP-I, CLIP-T, scene judge), write report.html.")
        {
            outDir, subject, method, rank, steps, lr, n, seed, quiet,
        };
        command.SetAction(r =>
        {
            var methodName = r.GetValue(method)!;
            var parsed = TrainConfigYaml.ParseEnum<DiffusionPeft.Adapters.AdapterMethod>(methodName)
                ?? throw new ArgumentException($"--method '{methodName}': expected one of {TrainConfigYaml.EnumNames(typeof(DiffusionPeft.Adapters.AdapterMethod))}.");
            return DemoRunner.Run(new DemoJob
            {
                OutputDir = r.GetValue(outDir)!, Subject = r.GetValue(subject)!, Method = parsed, Rank = r.GetValue(rank), Steps = r.GetValue(steps),
                Lr = r.GetValue(lr), ImagesPerPrompt = r.GetValue(n), Seed = r.GetValue(seed), Quiet = r.GetValue(quiet),
            }, output, error);
        });
        return command;
    }
}
