using System.Diagnostics;
using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
if (args.Length > 0 && args[0] == "micro")
{
    set_num_threads(1);
    int d = int.Parse(args[1]), n = int.Parse(args[2]);
    var w = new Parameter(randn(d, d) / 20, false);
    var x = randn(n, d).requires_grad_(true);
    var g = randn(n, d);
    var lo = AdapterInjector.Create(new AdapterOptions { Rank = 16, Alpha = 16 }, w, null);
    var sd = (SdsLoraLinear)AdapterInjector.Create(new AdapterOptions { Method = AdapterMethod.SdsLora, Rank = 16, Alpha = 16 }, w, null);
    var sdx = (SdsLoraLinear)AdapterInjector.Create(new AdapterOptions { Method = AdapterMethod.SdsLora, Rank = 16, Alpha = 16, SdsTriangularSolve = false }, w, null);
    foreach (var l in new AdapterLayer[] { lo, sd, sdx }) using (no_grad()) ((LowRankPairLayer)l).lora_B.normal_(0, 0.01);
    var t = new Dictionary<string, List<double>> { ["lora"] = new(), ["sds"] = new(), ["sds-explicit"] = new(), ["base"] = new() };
    for (int rep = 0; rep < 30; rep++)
        foreach (var (name, l) in new (string, AdapterLayer?)[] { ("lora", lo), ("sds", sd), ("sds-explicit", sdx), ("base", null) })
        {
            var p = Process.GetCurrentProcess(); var c0 = p.TotalProcessorTime;
            using (NewDisposeScope())
            {
                var y = l is null ? nn.functional.linear(x, w) : l.forward(x);
                y.backward([g]);
            }
            p.Refresh();
            if (rep >= 5) t[name].Add((p.TotalProcessorTime - c0).TotalMilliseconds);
        }
    foreach (var (k, v) in t) Console.WriteLine($"{k,-14} cpu ms median {v.OrderBy(a => a).ElementAt(v.Count / 2):F2}  mean {v.Average():F2}");
    return 0;
}
return DiffusionPeft.Benchmarks.AdapterBenchmark.Run(args);
