using static TorchSharp.torch;

namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// Linear multistep in sigma (k-diffusion sample_lms), diffusers LMSDiscreteScheduler 0.25.0. The coefficients are
/// integrals of Lagrange basis polynomials over [sigma_i, sigma_{i+1}]; diffusers evaluates them with
/// scipy.integrate.quad, here Gauss-Legendre, which is exact for these polynomials.
/// </summary>
public sealed class LmsDiscreteScheduler : SigmaSchedulerBase
{
    private readonly TensorHistory _derivatives = new(4);

    public LmsDiscreteScheduler(SchedulerConfig config) : base(config, "LMSDiscreteScheduler") { }

    /// <summary>How many past derivatives the multistep formula uses (diffusers' step(order=4)).</summary>
    public int LmsOrder { get; set; } = 4;

    public override void SetTimesteps(int numInferenceSteps)
    {
        CheckInferenceSteps(numInferenceSteps);
        SpacedOrKarras(numInferenceSteps, null, null, null, out var timesteps, out var sigmas);
        SetSigmaSchedule(timesteps, sigmas, 0f);
        _derivatives.Clear();
    }

    public override Tensor Step(Tensor modelOutput, double timestep, Tensor sample, NoiseSource? noise = null)
    {
        if (LmsOrder < 1) throw new InvalidOperationException($"{Name}: LmsOrder must be at least 1 (got {LmsOrder}).");
        EnsureStepIndex(timestep);
        using var scope = NewDisposeScope();
        float sigma = SigmaArray[StepIndex];
        var x0 = PredictX0(modelOutput, sample, sigma);
        _derivatives.Capacity = LmsOrder;
        _derivatives.Add((sample - x0) / sigma);

        int order = Math.Min(StepIndex + 1, LmsOrder);
        Tensor? sum = null; // sample + sum(coeff_k * derivative_k), newest derivative first, summed in diffusers' order
        for (int k = 0; k < order && k < _derivatives.Count; k++)
        {
            var term = Coefficient(order, StepIndex, k) * _derivatives[^(k + 1)];
            sum = sum is null ? term : sum + term;
        }
        var prev = sample + sum!;
        AdvanceStep();
        return prev.MoveToOuterDisposeScope();
    }

    /// <summary>Integral over [sigma_t, sigma_{t+1}] of the Lagrange basis polynomial for node t - current on nodes t, t-1, ..., t-order+1.</summary>
    private double Coefficient(int order, int t, int current)
    {
        double Basis(double tau)
        {
            double prod = 1;
            for (int k = 0; k < order; k++)
            {
                if (k == current) continue;
                prod *= (tau - SigmaArray[t - k]) / ((double)SigmaArray[t - current] - SigmaArray[t - k]);
            }
            return prod;
        }
        return GaussLegendre.Integrate(Basis, SigmaArray[t], SigmaArray[t + 1], Math.Max(order, 1));
    }

    public override void Dispose()
    {
        _derivatives.Dispose();
        base.Dispose();
    }
}
