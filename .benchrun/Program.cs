using System.Diagnostics;
using DiffusionPeft.Adapters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
if (args.Length > 0 && args[0] == "qr")
{
    set_num_threads(1);
    int r = int.Parse(args[1]);
    var shapes = new[] { (320, 30), (640, 30), (1280, 56), (768, 32) };   // approx counts of d x r matrices per step (A and B) at full size
    var mats = shapes.Select(s => randn(s.Item2, s.Item1, r)).ToList();
    var t = new Dictionary<string, List<double>> { ["householder f32"] = new(), ["cholqr2 f64 (ours)"] = new(), ["householder f64"] = new() };
    for (int rep = 0; rep < 12; rep++)
        foreach (var name in t.Keys)
        {
            var p = Process.GetCurrentProcess(); var c0 = p.TotalProcessorTime;
            using (NewDisposeScope())
                foreach (var m in mats)
                {
                    if (name == "householder f32") linalg.qr(m);
                    else if (name == "householder f64") linalg.qr(m.to_type(ScalarType.Float64));
                    else SdsLoraLinear.OrthonormalBases(m, 1e-6);
                }
            p.Refresh();
            if (rep >= 2) t[name].Add((p.TotalProcessorTime - c0).TotalMilliseconds);
        }
    foreach (var (k, v) in t) Console.WriteLine($"r={r} {k,-20} cpu ms min {v.Min():F2} median {v.OrderBy(a => a).ElementAt(v.Count / 2):F2}");
    return 0;
}
return DiffusionPeft.Benchmarks.AdapterBenchmark.Run(args);
