using System.Runtime.CompilerServices;
namespace DiffusionPeft.Core.Imaging;

/// <summary>
/// Pillow's <c>Image.resize(size, BICUBIC)</c> on 8-bit RGB, bit for bit (Pillow 9.4 src/libImaging/Resample.c):
/// Keys' cubic (a = -0.5) with its support scaled by the downscale factor, weights normalised in double and
/// turned into 22-bit fixed point, horizontal pass first into a uint8 intermediate (only if the width changes),
/// then the vertical pass (only if the height changes), each rounded and clamped to 0..255.
/// </summary>
public static class PilResize
{
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Fixed-point taps of one axis: output i reads input [Start[i], Start[i] + Count[i]).</summary>
    public sealed class Coefficients
    {
        public required int[] Start { get; init; }
        public required int[] Count { get; init; }
        public required int[] Weights { get; init; } // [outSize * KernelSize]
        public required int KernelSize { get; init; }
    }

    public static RgbImage Resize(RgbImage src, int width, int height) =>
        ResizeRegion(src, width, height, 0, 0, width, height);

    /// <summary>
    /// The rectangle (left, top, cropWidth, cropHeight) of <c>Resize(src, width, height)</c>, computing only what
    /// that rectangle needs. Every output pixel depends only on its own taps, so this equals resize-then-crop exactly.
    /// Single-threaded: callers parallelise over images.
    /// </summary>
    public static RgbImage ResizeRegion(RgbImage src, int width, int height, int left, int top, int cropWidth, int cropHeight)
    {
        if (width <= 0 || height <= 0) throw new ArgumentOutOfRangeException(nameof(width), $"target size {width}x{height} must be positive");
        if (left < 0 || top < 0 || cropWidth <= 0 || cropHeight <= 0 || left + cropWidth > width || top + cropHeight > height)
            throw new ArgumentOutOfRangeException(nameof(left), $"region ({left},{top},{cropWidth}x{cropHeight}) is outside {width}x{height}");
        bool horizontal = width != src.Width, vertical = height != src.Height;

        // Rows of the source that the vertical pass reads for the requested output rows.
        Coefficients? cv = vertical ? Precompute(src.Height, height) : null;
        int rowFirst, rowLast;
        if (cv is null) { rowFirst = top; rowLast = top + cropHeight; }
        else
        {
            rowFirst = cv.Start[top];
            rowLast = 0;
            for (int y = top; y < top + cropHeight; y++) rowLast = Math.Max(rowLast, cv.Start[y] + cv.Count[y]);
        }

        // Horizontal pass over those rows, output columns [left, left + cropWidth).
        int midRows = rowLast - rowFirst, midStride = cropWidth * 3;
        var mid = new byte[midRows * midStride];
        if (horizontal)
        {
            var ch = Precompute(src.Width, width);
            for (int r = 0; r < midRows; r++)
                HorizontalRow(src.Pixels.AsSpan((rowFirst + r) * src.Stride, src.Stride), mid.AsSpan(r * midStride, midStride), ch, left);
        }
        else
        {
            for (int r = 0; r < midRows; r++)
                src.Pixels.AsSpan((rowFirst + r) * src.Stride + left * 3, midStride).CopyTo(mid.AsSpan(r * midStride));
        }
        if (cv is null) return new RgbImage(cropWidth, cropHeight, mid);

        var dst = new byte[cropHeight * midStride];
        for (int y = 0; y < cropHeight; y++)
            VerticalRow(mid, midStride, rowFirst, dst.AsSpan(y * midStride, midStride), cv, top + y);
        return new RgbImage(cropWidth, cropHeight, dst);
    }

    public static Coefficients Precompute(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = 2.0 * filterScale;
        int ksize = (int)Math.Ceiling(support) * 2 + 1;
        var start = new int[outSize];
        var count = new int[outSize];
        var weights = new int[outSize * ksize];
        var k = new double[ksize];
        double ss = 1.0 / filterScale;
        for (int i = 0; i < outSize; i++)
        {
            double center = (i + 0.5) * scale;
            int xmin = Math.Max(0, (int)(center - support + 0.5));
            int xmax = Math.Min(inSize, (int)(center + support + 0.5)) - xmin;
            double ww = 0;
            for (int x = 0; x < xmax; x++) { k[x] = Keys((x + xmin - center + 0.5) * ss); ww += k[x]; }
            for (int x = 0; x < xmax; x++)
            {
                double w = ww != 0.0 ? k[x] / ww : k[x];
                weights[i * ksize + x] = w < 0 ? (int)(-0.5 + w * (1 << PrecisionBits)) : (int)(0.5 + w * (1 << PrecisionBits));
            }
            start[i] = xmin;
            count[i] = xmax;
        }
        return new Coefficients { Start = start, Count = count, Weights = weights, KernelSize = ksize };
    }

    /// <summary>Keys' cubic convolution kernel with a = -0.5, written as Pillow evaluates it.</summary>
    private static double Keys(double x)
    {
        const double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    private static byte Clip8(int acc)
    {
        int v = acc >> PrecisionBits;
        return (byte)(v < 0 ? 0 : v > 255 ? 255 : v);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void HorizontalRow(ReadOnlySpan<byte> srcRow, Span<byte> dstRow, Coefficients c, int firstOut)
    {
        int n = dstRow.Length / 3, ks = c.KernelSize;
        fixed (byte* src = srcRow)
        fixed (byte* dst = dstRow)
        fixed (int* weights = c.Weights)
        {
            for (int o = 0; o < n; o++)
            {
                int i = firstOut + o, cnt = c.Count[i];
                int* w = weights + i * ks;
                byte* px = src + c.Start[i] * 3;
                int s0 = 1 << (PrecisionBits - 1), s1 = s0, s2 = s0;
                for (int x = 0; x < cnt; x++, px += 3)
                {
                    int k = w[x];
                    s0 += px[0] * k; s1 += px[1] * k; s2 += px[2] * k;
                }
                dst[3 * o] = Clip8(s0); dst[3 * o + 1] = Clip8(s1); dst[3 * o + 2] = Clip8(s2);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void VerticalRow(byte[] mid, int stride, int rowFirst, Span<byte> dstRow, Coefficients c, int outRow)
    {
        int ymin = c.Start[outRow] - rowFirst, cnt = c.Count[outRow];
        var w = c.Weights.AsSpan(outRow * c.KernelSize, cnt);
        Span<int> acc = stride <= 8192 ? stackalloc int[stride] : new int[stride];
        acc.Fill(1 << (PrecisionBits - 1));
        fixed (int* a = acc)
        fixed (byte* m = mid)
        {
            for (int y = 0; y < cnt; y++)
            {
                int k = w[y];
                byte* row = m + (ymin + y) * stride;
                for (int j = 0; j < stride; j++) a[j] += row[j] * k;
            }
        }
        for (int j = 0; j < stride; j++) dstRow[j] = Clip8(acc[j]);
    }
}
