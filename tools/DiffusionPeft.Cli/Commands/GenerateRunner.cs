using DiffusionPeft.Diffusion.Pipelines;

namespace DiffusionPeft.Cli.Commands;

public static class GenerateRunner
{
    public static int Run(GenerateJob job, TextWriter output, TextWriter error)
    {
        var prompts = ReadPrompts(job);
        var plan = new GenerationPlan(prompts, job.OutputDir);
        error.WriteLine($"error: {plan.All.Count} images planned, but the sampling pipeline is not wired into the CLI yet.");
        return 1;
    }

    internal static IReadOnlyList<GenerationOptions> ReadPrompts(GenerateJob job)
    {
        if (job.PromptFile is not null && !string.IsNullOrEmpty(job.Defaults.Prompt))
            throw new ArgumentException("give --prompt or --prompts, not both.");
        if (job.PromptFile is not null) return PromptFile.Read(job.PromptFile, job.Defaults);
        if (string.IsNullOrWhiteSpace(job.Defaults.Prompt)) throw new ArgumentException("give --prompt TEXT or --prompts FILE.");
        job.Defaults.Validate("command line");
        return [job.Defaults];
    }
}
