using DiffusionPeft.Core.Imaging;

namespace DiffusionPeft.Tests.DreamBooth;

/// <summary>Four 64 px training images, each with its caption file: a red or blue square on the left or right.</summary>
internal static class CaptionedSquares
{
    /// <param name="captions">Write NAME.txt beside each image (else the folder has none).</param>
    /// <param name="longLastCaption">Give the last image a caption longer than the toy text encoder's context.</param>
    public static string Write(string dir, bool captions = true, bool longLastCaption = false)
    {
        Directory.CreateDirectory(dir);
        foreach (var (name, red, left) in new[] { ("a", true, true), ("b", false, true), ("c", true, false), ("d", false, false) })
        {
            var px = new byte[64 * 64 * 3];
            for (int y = 0; y < 64; y++)
                for (int x = 0; x < 64; x++)
                {
                    bool inside = y is >= 20 and < 44 && (left ? x is >= 4 and < 28 : x is >= 36 and < 60);
                    int i = (y * 64 + x) * 3;
                    (px[i], px[i + 1], px[i + 2]) = inside ? (red ? ((byte)220, (byte)30, (byte)30) : ((byte)30, (byte)60, (byte)220)) : ((byte)240, (byte)240, (byte)240);
                }
            PngWriter.Write(Path.Combine(dir, name + ".png"), new RgbImage(64, 64, px));
            if (captions) File.WriteAllText(Path.Combine(dir, name + ".txt"), $"a {(red ? "red" : "blue")} square on the {(left ? "left" : "right")}" +
                (longLastCaption && name == "d" ? ", drawn in the most careful and deliberate way by someone with a lot of time" : ""));
        }
        return dir;
    }
}
