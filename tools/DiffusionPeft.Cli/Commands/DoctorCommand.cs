using System.CommandLine;
using System.Text.Json;
using DiffusionPeft.Diffusion.Platform;
using Microsoft.ML.OnnxRuntime;

namespace DiffusionPeft.Cli.Commands;

/// <summary>
/// `dpeft doctor`: the libtorch this process runs on (path, version, how it was chosen), CUDA devices with memory and
/// bf16 support, TF32 and determinism switches, the CPU's bf16-relevant features with a quick bf16/fp32 measurement,
/// what --dtype auto picks, and ONNX Runtime's version and providers.
/// </summary>
public static class DoctorCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var json = new Option<bool>("--json") { Description = "One JSON object instead of the table." };
        var noMeasure = new Option<bool>("--no-measure") { Description = "Skip the quick bf16/fp32 matmul measurement on the CPU." };
        var command = new Command("doctor", "Describe the torch backend, CUDA devices, CPU features and ONNX Runtime this machine gives dpeft.") { json, noMeasure };
        command.SetAction(r =>
        {
            var facts = TorchEnvironment.Describe(measureCpu: !r.GetValue(noMeasure)).ToList();
            facts.Add(new("onnxruntime", "version", OrtEnv.Instance().GetVersionString()));
            facts.Add(new("onnxruntime", "providers", string.Join(", ", OrtEnv.Instance().GetAvailableProviders())));
            if (r.GetValue(json))
            {
                var doc = facts.GroupBy(f => f.Section).ToDictionary(g => g.Key, g => g.ToDictionary(f => f.Key, f => f.Value));
                output.WriteLine(JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            int width = facts.Max(f => f.Key.Length) + 2;
            foreach (var section in facts.GroupBy(f => f.Section))
            {
                output.WriteLine(section.Key);
                foreach (var f in section) output.WriteLine($"  {f.Key.PadRight(width)}{f.Value}");
            }
            return 0;
        });
        return command;
    }
}
