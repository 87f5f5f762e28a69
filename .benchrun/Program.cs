using System.Diagnostics;
using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
if (args.Length > 0 && args[0] == "micro")
{
    set_num_threads(1);
    int d = int.Parse(args[1]), n = int.Parse(args[2]), reps = int.Parse(args[3]);
    var w = new Parameter(randn(d, d) / 20, false);
    var x = randn(n, d).requires_grad_(true);
    var g = randn(n, d);
    var lo = AdapterInjector.Create(new AdapterOptions { Rank = 16, Alpha = 16 }, w, null);
    var sd = (SdsLoraLinear)AdapterInjector.Create(new AdapterOptions { Method = AdapterMethod.SdsLora, Rank = 16, Alpha = 16 }, w, null);
    var sa = (SdsLoraLinear)AdapterInjector.Create(new AdapterOptions { Method = AdapterMethod.SdsLora, Rank = 16, Alpha = 16, SdsBackward = SdsBackward.Autograd }, w, null);
    foreach (var l in new AdapterLayer[] { lo, sd, sa }) using (no_grad()) ((LowRankPairLayer)l).lora_B.normal_(0, 0.01);
    var t = new Dictionary<string, List<double>> { ["lora"] = new(), ["sds custom"] = new(), ["sds autograd"] = new(), ["base"] = new() };
    for (int rep = 0; rep < reps; rep++)
        foreach (var name in t.Keys)
        {
            var p = Process.GetCurrentProcess(); var c0 = p.TotalProcessorTime;
            using (NewDisposeScope())
            {
                var y = name switch { "lora" => lo.forward(x), "sds custom" => sd.forward(x), "sds autograd" => sa.forward(x), _ => nn.functional.linear(x, w) };
                y.backward([g]);
            }
            p.Refresh();
            if (rep >= 5) t[name].Add((p.TotalProcessorTime - c0).TotalMilliseconds);
        }
    foreach (var (k, v) in t) Console.WriteLine($"{d}/{n} {k,-14} cpu ms min {v.Min():F2} p25 {v.OrderBy(a => a).ElementAt(v.Count / 4):F2} median {v.OrderBy(a => a).ElementAt(v.Count / 2):F2}");
    return 0;
}
return DiffusionPeft.Benchmarks.AdapterBenchmark.Run(args);
