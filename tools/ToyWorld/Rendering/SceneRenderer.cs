using DiffusionPeft.Core.Imaging;
using DiffusionPeft.ToyWorld.Grammar;
using DiffusionPeft.ToyWorld.Scenes;
using SkiaSharp;

namespace DiffusionPeft.ToyWorld.Rendering;

/// <summary>
/// Renders a scene to a 64x64 RGB image, the same bytes on every machine: the background is computed in integer
/// C# (<see cref="BackgroundPainter"/>); each object layer is filled by Skia WITHOUT anti-aliasing into a 256x256
/// mask (solid non-AA fills of polygons with exactly representable vertices take no per-CPU SIMD path), the layers
/// are composed into a label map, and every output pixel is the integer average of its 4x4 samples, which
/// anti-aliases the edges deterministically.
/// </summary>
public static class SceneRenderer
{
    private const int Hi = ToyGeometry.HiResSize, S = ToyGeometry.Supersampling;

    public static RgbImage Render(ToyScene scene) => RenderWithMask(scene).Image;

    /// <summary>
    /// The scene and its object mask: each pixel's grey level is the share of its S x S samples that the objects cover
    /// (255: all, 0: none, rounded), the same anti-aliasing as the image's edges. A loss mask (dpeft train --masked-loss).
    /// </summary>
    public static (RgbImage Image, RgbImage Mask) RenderWithMask(ToyScene scene)
    {
        var background = BackgroundPainter.Paint(scene.Background);
        var labels = new byte[Hi * Hi];
        var colours = new List<Rgb> { default }; // label 0: the background
        var painted = SKRectI.Empty;
        using (var mask = new LayerRasterizer())
            foreach (var obj in scene.Objects)
                painted = Union(painted, Paint(obj, mask, labels, colours));
        return Downsample(background, labels, colours, painted);
    }

    private static SKRectI Union(SKRectI a, SKRectI b) => a.IsEmpty ? b : b.IsEmpty ? a : SKRectI.Union(a, b);

    /// <summary>Labels the object's samples; returns the rectangle of samples it may have touched.</summary>
    private static SKRectI Paint(SceneObject obj, LayerRasterizer raster, byte[] labels, List<Rgb> colours)
    {
        var outline = ShapeOutlines.Of(obj.Shape);
        var layers = obj.Subject?.Layers ?? [new ObjectLayer(outline.Path, ToyPalette.Of(obj.Colour))];
        bool[]? silhouette = null;
        if (layers.Any(l => l.ClipToSilhouette))
        {
            silhouette = new bool[Hi * Hi];
            var (sil, r) = raster.Fill(outline.Path, obj);
            for (int y = r.Top; y < r.Bottom; y++)
                for (int x = r.Left; x < r.Right; x++)
                    silhouette[y * Hi + x] = sil[y * Hi + x] != 0;
        }
        var touched = SKRectI.Empty;
        foreach (var layer in layers)
        {
            if (colours.Count > byte.MaxValue) throw new InvalidOperationException("too many layers in one scene");
            byte label = (byte)colours.Count;
            colours.Add(layer.Colour);
            var (covered, r) = raster.Fill(layer.Path, obj);
            touched = Union(touched, r);
            for (int y = r.Top; y < r.Bottom; y++)
                for (int x = r.Left; x < r.Right; x++)
                {
                    int i = y * Hi + x;
                    if (covered[i] != 0 && (!layer.ClipToSilhouette || silhouette![i])) labels[i] = label;
                }
        }
        return touched;
    }

    /// <summary>Each output pixel inside <paramref name="painted"/> (in samples) becomes the rounded mean of its S x S samples; the mask, their object share.</summary>
    private static (RgbImage Image, RgbImage Mask) Downsample(RgbImage background, byte[] labels, List<Rgb> colours, SKRectI painted)
    {
        int n = ToyGeometry.ImageSize;
        var px = (byte[])background.Pixels.Clone();
        var coverage = new byte[n * n * 3];
        for (int y = painted.Top / S; y < (painted.Bottom + S - 1) / S; y++)
            for (int x = painted.Left / S; x < (painted.Right + S - 1) / S; x++)
            {
                int o = (y * n + x) * 3;
                Rgb bg = new(px[o], px[o + 1], px[o + 2]);
                int r = 0, g = 0, b = 0;
                int covered = 0;
                for (int sy = 0; sy < S; sy++)
                    for (int sx = 0; sx < S; sx++)
                    {
                        byte label = labels[(y * S + sy) * Hi + x * S + sx];
                        if (label != 0) covered++;
                        var c = label == 0 ? bg : colours[label];
                        r += c.R; g += c.G; b += c.B;
                    }
                if (covered == 0) continue;
                const int half = S * S / 2;
                px[o] = (byte)((r + half) / (S * S));
                px[o + 1] = (byte)((g + half) / (S * S));
                px[o + 2] = (byte)((b + half) / (S * S));
                coverage[o] = coverage[o + 1] = coverage[o + 2] = (byte)((covered * 255 + half) / (S * S));
            }
        return (new RgbImage(n, n, px), new RgbImage(n, n, coverage));
    }

    /// <summary>One reusable 256x256 A8 Skia surface that fills a layer's polygons without anti-aliasing.</summary>
    private sealed class LayerRasterizer : IDisposable
    {
        private readonly SKBitmap _bitmap = new(new SKImageInfo(Hi, Hi, SKColorType.Alpha8, SKAlphaType.Premul));
        private readonly SKCanvas _canvas;
        private readonly SKPaint _paint = new() { IsAntialias = false, Color = SKColors.White, Style = SKPaintStyle.Fill };
        private readonly byte[] _coverage = new byte[Hi * Hi];

        public LayerRasterizer() => _canvas = new SKCanvas(_bitmap);

        /// <summary>
        /// The samples (1 = covered) of <paramref name="path"/> placed on <paramref name="obj"/>'s box, valid inside the
        /// returned rectangle (the path's bounds) until the next call.
        /// </summary>
        public (byte[] Coverage, SKRectI Bounds) Fill(BoxPath path, SceneObject obj)
        {
            _canvas.Clear(SKColors.Transparent);
            using var sk = new SKPath { FillType = path.EvenOdd ? SKPathFillType.EvenOdd : SKPathFillType.Winding };
            foreach (var contour in path.Contours)
            {
                for (int i = 0; i < contour.Length; i++)
                {
                    var p = new SKPoint(Place(obj.HiResCentreX, contour[i].X, obj.HiResExtent), Place(obj.HiResCentreY, contour[i].Y, obj.HiResExtent));
                    if (i == 0) sk.MoveTo(p); else sk.LineTo(p);
                }
                sk.Close();
            }
            _canvas.DrawPath(sk, _paint);
            _canvas.Flush();
            var b = sk.Bounds;
            var r = new SKRectI(Math.Max(0, (int)Math.Floor(b.Left)), Math.Max(0, (int)Math.Floor(b.Top)),
                Math.Min(Hi, (int)Math.Ceiling(b.Right) + 1), Math.Min(Hi, (int)Math.Ceiling(b.Bottom) + 1));
            var pixels = _bitmap.GetPixelSpan();
            int rowBytes = _bitmap.RowBytes;
            for (int y = r.Top; y < r.Bottom; y++)
                for (int x = r.Left; x < r.Right; x++)
                    _coverage[y * Hi + x] = pixels[y * rowBytes + x] >= 128 ? (byte)1 : (byte)0;
            return (_coverage, r);
        }

        /// <summary>centre + q·extent/(2·One), exact in float: the numerator is an integer below 2^24 and the divisor a power of two.</summary>
        private static float Place(int centre, int q, int extent) => (float)(((long)centre * 2 * BoxPath.One + (long)q * extent) / (2.0 * BoxPath.One));

        public void Dispose()
        {
            _canvas.Dispose();
            _paint.Dispose();
            _bitmap.Dispose();
        }
    }
}
