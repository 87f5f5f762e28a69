namespace DiffusionPeft.Diffusion.Schedulers;

/// <summary>
/// n-point Gauss-Legendre quadrature, exact for polynomials of degree up to 2n - 1. diffusers integrates the LMS
/// Lagrange basis polynomials with scipy.integrate.quad, whose 21-point Gauss-Kronrod rule is exact on them too.
/// </summary>
internal static class GaussLegendre
{
    public static double Integrate(Func<double, double> f, double a, double b, int n)
    {
        var (nodes, weights) = Rule(n);
        double half = (b - a) / 2, mid = (a + b) / 2, sum = 0;
        for (int i = 0; i < n; i++) sum += weights[i] * f(mid + half * nodes[i]);
        return sum * half;
    }

    /// <summary>Nodes are the roots of P_n, found by Newton's method from Chebyshev guesses.</summary>
    public static (double[] Nodes, double[] Weights) Rule(int n)
    {
        var x = new double[n];
        var w = new double[n];
        for (int i = 0; i < n; i++)
        {
            double z = Math.Cos(Math.PI * (i + 0.75) / (n + 0.5)), dp = 0;
            for (int iter = 0; iter < 100; iter++)
            {
                double p0 = 1, p1 = z;
                for (int k = 2; k <= n; k++) { double p2 = ((2 * k - 1) * z * p1 - (k - 1) * p0) / k; p0 = p1; p1 = p2; }
                dp = n * (z * p1 - p0) / (z * z - 1);
                double dz = p1 / dp;
                z -= dz;
                if (Math.Abs(dz) < 1e-16) break;
            }
            x[i] = z;
            w[i] = 2 / ((1 - z * z) * dp * dp);
        }
        return (x, w);
    }
}
