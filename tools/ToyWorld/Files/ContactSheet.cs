using System.Text;
using DiffusionPeft.Core.Imaging;
using DiffusionPeft.Core.IO;

namespace DiffusionPeft.ToyWorld.Files;

/// <summary>A grid of scenes in one PNG (row-major, 2 px white gaps, optionally enlarged by pixel repetition) with their captions numbered in a text file.</summary>
public static class ContactSheet
{
    /// <summary>Writes <paramref name="pngPath"/> and a .txt of the same name listing "row,column: caption" in grid order.</summary>
    public static void Write(string pngPath, IReadOnlyList<(RgbImage Image, string Caption)> cells, int columns = 8, int scale = 1)
    {
        if (cells.Count == 0) throw new ArgumentException("a contact sheet needs at least one scene", nameof(cells));
        ArgumentOutOfRangeException.ThrowIfLessThan(scale, 1);
        var sheet = ImageGrid.Compose(cells.Select(c => c.Image).ToArray(), columns, gap: 2);
        if (scale > 1) sheet = Enlarge(sheet, scale);
        PngWriter.Write(pngPath, sheet);
        var text = new StringBuilder();
        for (int i = 0; i < cells.Count; i++) text.Append($"{i / columns + 1},{i % columns + 1}: {cells[i].Caption}\n");
        AtomicFile.WriteAllText(Path.ChangeExtension(pngPath, ".txt"), text.ToString());
    }

    /// <summary>Each pixel repeated <paramref name="factor"/> times in both directions (nearest neighbour, no smoothing).</summary>
    public static RgbImage Enlarge(RgbImage image, int factor)
    {
        int w = image.Width * factor, h = image.Height * factor;
        var px = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                image.Pixels.AsSpan(((y / factor) * image.Width + x / factor) * 3, 3).CopyTo(px.AsSpan((y * w + x) * 3));
        return new RgbImage(w, h, px);
    }
}
