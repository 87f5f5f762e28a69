using System.Diagnostics;
using DiffusionPeft.Diffusion.IO;
using DiffusionPeft.DreamBooth.Checkpoints;
using DiffusionPeft.DreamBooth.Config;
using DiffusionPeft.DreamBooth.Data;
using DiffusionPeft.DreamBooth.Logging;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>A NaN or infinite loss or gradient norm: training stopped before the optimizer step, the checkpoints are untouched.</summary>
public sealed class NonFiniteLossException(long step, string message) : Exception(message)
{
    public long Step { get; } = step;
}

/// <summary>How a run ended: steps taken, whether Ctrl-C stopped it, its last checkpoint and the last step's loss.</summary>
public sealed record TrainResult(long Steps, bool Interrupted, string? LastCheckpoint, double? LastLoss);

/// <summary>
/// The training loop, independent of the model: AdamW (weight decay set explicitly) over the target's parameter
/// groups, the diffusers LR schedule, gradient accumulation (each micro-batch loss divided
/// by the accumulation count), clipping with <c>clip_grad_norm_</c>, the ramp hook, checkpoints every N steps
/// with exact resume, validation every N steps, an optional weight average (EMA), a NaN/Inf guard, JSONL log and loss plot, and Ctrl-C through a
/// CancellationToken (a checkpoint is saved and the run ends cleanly). One dispose scope per step.
/// </summary>
public sealed class Trainer : IDisposable
{
    /// <summary>The trained tensors of a checkpoint, by parameter name. (Checkpoints written before 2026-12 named it adapter.safetensors.)</summary>
    public const string ParametersFile = "parameters.safetensors", OptimizerFile = "optimizer.bin";
    private const string LegacyParametersFile = "adapter.safetensors";

    private readonly TrainingLoop _config;   // the loop settings
    private readonly IRunSettings _settings;
    private readonly string _runDirectory;
    private readonly ITrainingTarget _target;
    private readonly ITrainingObjective _objective;
    private readonly DataOrder _order;
    private readonly ITrainingProgress _progress;
    private readonly IValidationSampler? _validation;
    private readonly AdamW _optimizer;
    private readonly LrSchedule _schedule;
    private readonly TrainingRng _rng;
    private readonly CheckpointStore _store;
    private readonly IReadOnlyList<(string Name, Parameter Parameter)> _named;
    private readonly Parameter[] _parameters;
    private readonly string _configHash;
    private readonly EmaWeights? _ema;
    private bool _resultWritten;

    public long Step { get; private set; }
    public CheckpointStore Checkpoints => _store;

    public Trainer(TrainConfig config, string runDirectory, ITrainingTarget target, ITrainingObjective objective, DataOrder order,
                   ITrainingProgress? progress = null, IValidationSampler? validation = null)
        : this(config.Loop, new TrainConfigSettings(config), runDirectory, target, objective, order, progress, validation) { }

    public Trainer(TrainingLoop loop, IRunSettings settings, string runDirectory, ITrainingTarget target, ITrainingObjective objective, DataOrder order,
                   ITrainingProgress? progress = null, IValidationSampler? validation = null)
    {
        _config = loop;
        _settings = settings;
        _runDirectory = Path.GetFullPath(runDirectory);
        _target = target;
        _objective = objective;
        _order = order;
        _progress = progress ?? NullTrainingProgress.Instance;
        _validation = validation;
        _named = target.ParameterGroups.SelectMany(g => g.Parameters).ToArray();
        var duplicate = _named.GroupBy(p => p.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"trainable parameter name '{duplicate.Key}' appears twice");
        if (_named.Count == 0) throw new ArgumentException("the training target has no trainable parameters");
        _parameters = _named.Select(p => p.Parameter).ToArray();

        var groups = target.ParameterGroups.Select(g => new AdamW.ParamGroup(g.Parameters.Select(p => p.Parameter), lr: g.LearningRate,
            beta1: loop.AdamBeta1, beta2: loop.AdamBeta2, eps: loop.AdamEpsilon, weight_decay: loop.WeightDecay)).ToArray();
        _optimizer = optim.AdamW(groups, lr: loop.Lr, beta1: loop.AdamBeta1, beta2: loop.AdamBeta2, eps: loop.AdamEpsilon, weight_decay: loop.WeightDecay);
        _schedule = LrSchedule.From(loop);
        _rng = new TrainingRng(loop.Seed);
        _store = new CheckpointStore(Path.Combine(_runDirectory, "checkpoints"));
        _configHash = settings.Hash;
        if (loop.EmaDecay is { } decay) _ema = new EmaWeights(_named, decay);
    }

    public TrainResult Run(CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(_runDirectory);
        double priorElapsed = 0;
        string? lastCheckpoint = null;
        if (_config.Resume is { } resume)
        {
            // As diffusers: "latest" with no checkpoint yet starts a new run; an explicit path must exist.
            lastCheckpoint = resume.Trim().Equals("latest", StringComparison.OrdinalIgnoreCase) ? _store.Latest() : _store.Resolve(resume);
            if (lastCheckpoint is null)
                _progress.Info($"--resume latest: no checkpoint in {_store.Directory} yet; starting a new run");
            else
            {
                priorElapsed = LoadCheckpoint(lastCheckpoint);
                _progress.Info($"resumed from {lastCheckpoint} at step {Step}");
            }
        }
        if (lastCheckpoint is null && _store.Latest() is { } stale)
            // Starting over beside another run's checkpoints would let "keep the newest K" delete the new ones.
            throw new InvalidCheckpointException(ResumeCheckpoint.CheckpointsAlready(_store.Directory, stale));
        _target.OnOptimizerStep(Step);
        _objective.Prepare((_config.Steps - Step) * _config.GradAccumulation * _order.BatchSize, _progress.Info, cancellationToken);

        using var log = new TrainingLog(Path.Combine(_runDirectory, TrainingLog.FileName), Step);
        var clock = Stopwatch.StartNew();
        long startStep = Step;
        double? lastLoss = null;
        int accumulation = _config.GradAccumulation;
        double clipNorm = _config.MaxGradNorm > 0 ? _config.MaxGradNorm : double.PositiveInfinity;

        while (Step < _config.Steps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                // Nothing trained since the start (or the resumed checkpoint): there is nothing new to save.
                if (Step > startStep) lastCheckpoint = SaveCheckpoint(priorElapsed + clock.Elapsed.TotalSeconds) ?? lastCheckpoint;
                _progress.Info(lastCheckpoint is null ? $"interrupted at step {Step}; no checkpoint" : $"interrupted at step {Step}; checkpoint {lastCheckpoint}");
                return new TrainResult(Step, true, lastCheckpoint, lastLoss);
            }

            double lossSum = 0, gradNorm;
            int epoch;
            double factor = _schedule.Factor(Step);
            using (var scope = NewDisposeScope())
            {
                var groups = _optimizer.ParamGroups.ToArray();
                for (int g = 0; g < groups.Length; g++) groups[g].LearningRate = _target.ParameterGroups[g].LearningRate * factor;
                _optimizer.zero_grad();
                epoch = _order.State.Epoch;
                for (int micro = 0; micro < accumulation; micro++)
                {
                    var (e, items) = _order.Next();
                    epoch = e;
                    var loss = _objective.Loss(new Batch(Step, micro, e, items), _rng);
                    double value = loss.to_type(ScalarType.Float64).item<double>();
                    if (!double.IsFinite(value)) throw NonFinite("loss", value);
                    lossSum += value;
                    (accumulation == 1 ? loss : loss / accumulation).backward();
                    _target.AfterBackward();
                }
                gradNorm = nn.utils.clip_grad_norm_(_parameters, clipNorm);
                if (!double.IsFinite(gradNorm)) throw NonFinite("gradient norm", gradNorm);
                _optimizer.step();
            }
            Step++;
            _target.OnOptimizerStep(Step);
            _ema?.Update();
            lastLoss = lossSum / accumulation;

            double elapsed = clock.Elapsed.TotalSeconds;
            double rate = (Step - startStep) / Math.Max(elapsed, 1e-9);
            var report = new StepReport(Step, _config.Steps, epoch, lastLoss.Value, _config.Lr * factor, gradNorm, rate,
                TimeSpan.FromSeconds(priorElapsed + elapsed), TimeSpan.FromSeconds((_config.Steps - Step) / Math.Max(rate, 1e-9)));
            log.Append(report);
            _progress.Step(report);

            bool last = Step == _config.Steps;
            if (Step % _config.PlotEvery == 0 || last) LossPlot.Write(Path.Combine(_runDirectory, LossPlot.FileName), log.Losses);
            if ((_config.CheckpointEvery > 0 && Step % _config.CheckpointEvery == 0) || last)
                lastCheckpoint = SaveCheckpoint(priorElapsed + clock.Elapsed.TotalSeconds) ?? lastCheckpoint;
            if (_validation is not null && _config.ValidateEvery > 0 && (Step % _config.ValidateEvery == 0 || last))
            {
                // With an average, validation images show it (as diffusers' train_text_to_image.py with --use_ema).
                UseAverage();
                try { _validation.Validate(Step, Path.Combine(_runDirectory, "validation"), cancellationToken); }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    // Ctrl-C during validation: the next loop turn saves the checkpoint of this step and ends cleanly.
                }
                finally { RestoreTrained(); }
            }
        }
        return new TrainResult(Step, false, lastCheckpoint, lastLoss);

        NonFiniteLossException NonFinite(string what, double value)
        {
            var keep = lastCheckpoint ?? _store.Latest();
            var message = $"step {Step + 1}: the {what} is {value} (not finite); training stopped before the optimizer step. " +
                          (keep is null ? "No checkpoint was written yet." : $"The last good checkpoint is {keep} (resume with --resume latest, perhaps with a lower --lr).");
            _progress.Warning(message);
            return new NonFiniteLossException(Step + 1, message);
        }
    }

    /// <summary>
    /// Writes the run's result (the target's final files) from the trained weights, or with --ema-decay from their
    /// average, which then replaces the weights in the model (the checkpoints keep both).
    /// </summary>
    public void WriteResult()
    {
        if (_resultWritten) throw new InvalidOperationException("the run's result is written already");
        _resultWritten = true;
        UseAverage();
        _target.WriteFinal(_runDirectory, Step);
    }

    private void UseAverage()
    {
        if (_ema is null) return;
        _ema.CopyIntoWeights();
        _target.ParametersReplaced();
    }

    private void RestoreTrained()
    {
        if (_ema is null) return;
        _ema.RestoreWeights();
        _target.ParametersReplaced();
    }

    /// <summary>Writes the checkpoint of the current step (none if one for this step exists already); returns its folder.</summary>
    public string? SaveCheckpoint(double elapsedSeconds)
    {
        var existing = _store.List().FirstOrDefault(c => c.Step == Step);
        if (existing.Path is not null && _lastSavedStep == Step) return existing.Path;
        var path = _store.Save(Step, _config.Keep, dir =>
        {
            SafetensorsWriter.Write(Path.Combine(dir, ParametersFile), _named.Select(p => new KeyValuePair<string, Tensor>(p.Name, p.Parameter)),
                new Dictionary<string, string> { ["step"] = Step.ToString(System.Globalization.CultureInfo.InvariantCulture), ["config_hash"] = _configHash });
            using (var fs = new FileStream(Path.Combine(dir, OptimizerFile), FileMode.CreateNew, FileAccess.Write))
            using (var w = new BinaryWriter(fs))
            {
                _optimizer.save_state_dict(w);
                w.Flush();
                fs.Flush(flushToDisk: true);
            }
            _ema?.Save(Path.Combine(dir, EmaWeights.FileName));
            _settings.Save(Path.Combine(dir, _settings.FileName));
            new TrainingState(Step, Step, _order.State.Epoch, _order.State.Position, Convert.ToBase64String(_rng.GetState()),
                elapsedSeconds, _configHash).Write(Path.Combine(dir, CheckpointStore.CompleteMarker));
        });
        _lastSavedStep = Step;
        return path;
    }

    private long _lastSavedStep = -1;

    /// <summary>Restores parameters, optimizer, RNG, data order and step from a checkpoint folder; returns its elapsed seconds.</summary>
    public double LoadCheckpoint(string folder)
    {
        var state = TrainingState.Read(Path.Combine(folder, CheckpointStore.CompleteMarker));
        var savedConfigPath = Path.Combine(folder, _settings.FileName);
        if (state.ConfigHash != _configHash)
        {
            // The hash is a fast check; the settings file decides. A checkpoint hashed under another rule (e.g. before an
            // option became resume-neutral) resumes when no setting that shapes the trajectory differs.
            IReadOnlyList<string>? differences = null;
            string why = "unknown options";
            if (File.Exists(savedConfigPath))
                try { differences = _settings.DifferencesFrom(savedConfigPath); why = string.Join(", ", differences); }
                catch (Exception ex) when (ex is TrainConfigException or System.Text.Json.JsonException or IOException) { why = $"unknown options: {ex.Message}"; }
            if (differences is not { Count: 0 })
                throw new InvalidCheckpointException(ResumeCheckpoint.OtherSettings(folder, why));
        }
        var parameters = Path.Combine(folder, ParametersFile);
        if (!File.Exists(parameters) && File.Exists(Path.Combine(folder, LegacyParametersFile))) parameters = Path.Combine(folder, LegacyParametersFile);
        foreach (var path in new[] { parameters, Path.Combine(folder, OptimizerFile) })
            if (!File.Exists(path)) throw new InvalidCheckpointException($"{folder}: incomplete checkpoint (no {Path.GetFileName(path)})");
        CheckpointTensors.ReadInto(parameters, _named.Select(p => (p.Name, (Tensor)p.Parameter)).ToList());
        var optimizerPath = Path.Combine(folder, OptimizerFile);
        try
        {
            // TorchSharp reads into the existing state tensors and checks their shapes: a damaged file fails, never allocates by its claims.
            using var fs = File.OpenRead(optimizerPath);
            using var r = new BinaryReader(fs);
            _optimizer.load_state_dict(r);
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or InvalidOperationException or FormatException or OverflowException
                                       or System.Runtime.InteropServices.ExternalException)
        {
            throw new InvalidCheckpointException($"{optimizerPath}: unreadable optimizer state ({ex.Message})");
        }
        var average = Path.Combine(folder, EmaWeights.FileName);
        if (_ema is null && File.Exists(average))
            _progress.Info($"{folder} holds a weight average, which this run (without --ema-decay) leaves aside: its result is the trained weights");
        if (_ema is not null)
        {
            if (File.Exists(average)) _ema.Load(average);
            else
            {
                // --ema-decay is resume-neutral: added on a resume, the average starts at the resumed weights.
                _ema.Reset();
                _progress.Info($"{folder} holds no weight average (--ema-decay was off); the average starts from the weights of step {state.Step}");
            }
        }
        var rng = state.RngBytes;
        if (rng.Length != _rng.GetState().Length)
            throw new InvalidCheckpointException($"{folder}: the RNG state is {rng.Length} bytes; this build's generator has {_rng.GetState().Length}");
        _rng.SetState(rng);
        _order.Restore(state.DataOrder);
        Step = state.Step;
        _lastSavedStep = Step;
        return state.ElapsedSeconds;
    }

    public void Dispose()
    {
        _optimizer.Dispose();
        _rng.Dispose();
        _ema?.Dispose();
    }
}
