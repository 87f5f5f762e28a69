using DiffusionPeft.ToyWorld.Grammar;

namespace DiffusionPeft.ToyWorld.Judge;

/// <summary>
/// Object pixels are those farther than <see cref="Threshold"/> (RGB) from the fitted background: half the smallest
/// object-background distance the world allows, so an anti-aliased edge pixel counts when the object covers more
/// than about half of it. Objects are the 8-connected components of at least <see cref="MinArea"/> pixels.
/// </summary>
public static class ObjectSegmenter
{
    public const double Threshold = ToyPalette.MinObjectBackgroundDistance / 2;
    public const int MinArea = 15;

    private const int N = ToyGeometry.ImageSize;

    /// <summary>The components (pixel indices y·64 + x), largest first.</summary>
    public static IReadOnlyList<int[]> Components(double[] residual)
    {
        var mask = new bool[N * N];
        for (int i = 0; i < mask.Length; i++) mask[i] = residual[i] > Threshold;
        var seen = new bool[N * N];
        var components = new List<int[]>();
        var stack = new Stack<int>();
        for (int start = 0; start < mask.Length; start++)
        {
            if (!mask[start] || seen[start]) continue;
            var pixels = new List<int>();
            seen[start] = true;
            stack.Push(start);
            while (stack.Count > 0)
            {
                int i = stack.Pop();
                pixels.Add(i);
                int x = i % N, y = i / N;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++)
                    {
                        int nx = x + dx, ny = y + dy;
                        if ((dx | dy) == 0 || nx < 0 || ny < 0 || nx >= N || ny >= N) continue;
                        int j = ny * N + nx;
                        if (mask[j] && !seen[j]) { seen[j] = true; stack.Push(j); }
                    }
            }
            if (pixels.Count >= MinArea) components.Add(pixels.ToArray());
        }
        return components.OrderByDescending(c => c.Length).ToList();
    }
}
