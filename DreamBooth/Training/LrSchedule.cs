using DiffusionPeft.DreamBooth.Config;

namespace DiffusionPeft.DreamBooth.Training;

/// <summary>
/// The learning-rate multiplier of diffusers' <c>get_scheduler</c> (src/diffusers/optimization.py) at an
/// optimizer step: the LR used for step s (0-based) is base_lr · Factor(s), as LambdaLR gives before its s-th
/// <c>step()</c>. "cosine" is the half cosine (num_cycles 0.5: get_scheduler does not pass num_cycles to it);
/// "cosine_with_restarts" takes <see cref="NumCycles"/>; "polynomial" decays to <see cref="LrEnd"/> with
/// <see cref="Power"/>, relative to <see cref="LrInit"/> (the optimizer's default lr). Stateless: its state in
/// a checkpoint is the step.
/// </summary>
public sealed record LrSchedule(LrScheduleKind Kind, int WarmupSteps, int TotalSteps, int NumCycles = 1, double Power = 1.0, double LrInit = 1e-4, double LrEnd = 1e-7)
{
    public static LrSchedule From(TrainingLoop c) =>
        new(c.LrScheduler, c.LrWarmupSteps, c.Steps, c.LrNumCycles, c.LrPower, c.Lr, c.LrEnd);

    public static LrSchedule From(TrainConfig c) => From(c.Loop);

    public double Factor(long step)
    {
        double s = step;
        double Warmup() => s / Math.Max(1, WarmupSteps);
        switch (Kind)
        {
            case LrScheduleKind.Constant:
                return 1.0;
            case LrScheduleKind.ConstantWithWarmup:
                return step < WarmupSteps ? Warmup() : 1.0;
            case LrScheduleKind.Linear:
                if (step < WarmupSteps) return Warmup();
                return Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps));
            case LrScheduleKind.Cosine:
            {
                if (step < WarmupSteps) return Warmup();
                double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * 0.5 * 2.0 * progress)));
            }
            case LrScheduleKind.CosineWithRestarts:
            {
                if (step < WarmupSteps) return Warmup();
                double progress = (double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps);
                if (progress >= 1.0) return 0.0;
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * ((NumCycles * progress) % 1.0))));
            }
            case LrScheduleKind.Polynomial:
            {
                if (!(LrInit > LrEnd)) throw new ArgumentException($"lr_end ({LrEnd}) must be smaller than initial lr ({LrInit})");
                if (step < WarmupSteps) return Warmup();
                if (step > TotalSteps) return LrEnd / LrInit;
                double decaySteps = TotalSteps - WarmupSteps;
                double pctRemaining = 1 - (step - WarmupSteps) / decaySteps;
                return ((LrInit - LrEnd) * Math.Pow(pctRemaining, Power) + LrEnd) / LrInit;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(Kind), Kind, null);
        }
    }
}
