return DiffusionPeft.Benchmarks.AdapterBenchmark.Run(args);
