namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>Karras et al. 2022 (arXiv:2206.00364, eq. 5) noise levels and diffusers' inverse map from sigma to a fractional timestep.</summary>
internal static class KarrasSigmas
{
    private const double Rho = 7.0;

    /// <summary>(sigma_max^(1/rho) + ramp * (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho over n points.</summary>
    public static double[] Sigmas(double sigmaMin, double sigmaMax, int n)
    {
        var ramp = NumpyCompat.Linspace(0, 1, n);
        double minInv = Math.Pow(sigmaMin, 1 / Rho), maxInv = Math.Pow(sigmaMax, 1 / Rho);
        return ramp.Select(r => Math.Pow(maxInv + r * (minInv - maxInv), Rho)).ToArray();
    }

    /// <summary>
    /// diffusers' _sigma_to_t: linear interpolation of log(sigma) within the (ascending) training log-sigmas,
    /// which numpy holds in float32.
    /// </summary>
    public static double SigmaToT(double sigma, float[] logSigmas)
    {
        double logSigma = Math.Log(Math.Max(sigma, 1e-10));
        int low = 0;
        for (int i = 0; i < logSigmas.Length; i++) if (logSigma - logSigmas[i] >= 0) low = i;
        low = Math.Min(low, logSigmas.Length - 2);
        int high = low + 1;
        double lo = logSigmas[low], hi = logSigmas[high];
        double w = Math.Clamp((lo - logSigma) / (lo - hi), 0, 1);
        return (1 - w) * low + w * high;
    }

    public static float[] LogOf(float[] sigmas) => sigmas.Select(s => MathF.Log(s)).ToArray();
}
