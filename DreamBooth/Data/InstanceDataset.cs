namespace DiffusionPeft.DreamBooth.Data;

/// <summary>One usable training image: its file, caption, decoded size and, for a masked loss, its mask file (null: none).</summary>
public sealed record InstanceImage(string Path, string Caption, int Width, int Height, string? MaskPath = null);

/// <summary>No usable training image in a folder: raised before any model is loaded.</summary>
public sealed class NoTrainingImagesException(string message) : ArgumentException(message);

/// <summary>
/// The images of a folder (.jpg, .jpeg, .png, .webp in any letter case; not recursive), each with the caption
/// of a <c>.txt</c> file of the same name beside it, else the instance prompt. Every file is decoded once while
/// scanning, so a file that does not decode is skipped with a warning naming it, and a folder with nothing
/// decodable fails here, before any model loads. <c>NAME-masklabel.png</c> files are masks (OneTrainer's layout),
/// never training images; with <c>masks</c>, each image's mask is found and checked here too.
/// </summary>
public sealed class InstanceDataset
{
    /// <summary>A caption longer than this (far beyond CLIP's 77 tokens) is not a caption: its image is skipped.</summary>
    public const int MaxCaptionChars = 10_000;

    public static readonly IReadOnlySet<string> Extensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".jpg", ".jpeg", ".png", ".webp" };

    public string Folder { get; }
    public IReadOnlyList<InstanceImage> Images { get; }
    public IReadOnlyList<string> Skipped { get; }
    public int Count => Images.Count;
    public InstanceImage this[int index] => Images[index];

    private InstanceDataset(string folder, IReadOnlyList<InstanceImage> images, IReadOnlyList<string> skipped)
    {
        Folder = folder;
        Images = images;
        Skipped = skipped;
    }

    /// <summary>The suffix of a mask file: NAME-masklabel.png masks NAME.jpg/.png/... (OneTrainer's naming).</summary>
    public const string MaskSuffix = "-masklabel.png";

    /// <summary>Whether a file is a mask by its name (exactly the suffix, as <see cref="MaskOf"/> looks it up).</summary>
    public static bool IsMask(string path) => System.IO.Path.GetFileName(path).EndsWith(MaskSuffix, StringComparison.Ordinal);

    /// <summary>The mask file of an image (NAME-masklabel.png beside it), or null when there is none.</summary>
    public static string? MaskOf(string imagePath)
    {
        var mask = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(imagePath) ?? "", System.IO.Path.GetFileNameWithoutExtension(imagePath) + MaskSuffix);
        return File.Exists(mask) ? mask : null;
    }

    public static InstanceDataset Scan(string folder, string prompt, IImageDecoder decoder, Action<string>? warn = null, string role = "instance",
                                       bool masks = false)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"{role} image folder '{folder}' does not exist");
        var files = Directory.EnumerateFiles(folder)
            .Where(f => Extensions.Contains(System.IO.Path.GetExtension(f)) && !IsMask(f))
            .Order(StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
            throw new NoTrainingImagesException($"{role} image folder '{folder}' has no .jpg, .jpeg, .png or .webp files");

        var images = new List<InstanceImage>();
        var skipped = new List<string>();
        var uncaptioned = new List<string>();
        foreach (var file in files)
        {
            DecodedImage decoded;
            try
            {
                decoded = decoder.Decode(file);
                decoded.EnsureValid(file);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                skipped.Add(file);
                warn?.Invoke($"skipping {file}: it does not decode ({ex.Message})");
                continue;
            }
            string caption;
            try { caption = CaptionOf(file) ?? prompt; }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException)
            {
                skipped.Add(file);
                warn?.Invoke($"skipping {file}: {ex.Message}");
                continue;
            }
            if (string.IsNullOrWhiteSpace(caption)) uncaptioned.Add(file);
            images.Add(new InstanceImage(file, caption, decoded.Width, decoded.Height, masks ? CheckedMaskOf(file, decoded, decoder) : null));
        }
        if (uncaptioned.Count > 0)
            throw new NoTrainingImagesException($"{role} image folder '{folder}': {uncaptioned.Count} of {images.Count} images have no caption " +
                $"(no NAME.txt beside {FirstNames(uncaptioned)}) and no --prompt was given");
        if (images.Count == 0)
            throw new NoTrainingImagesException($"{role} image folder '{folder}': none of its {files.Count} image files decodes ({string.Join(", ", skipped.Select(System.IO.Path.GetFileName))})");
        if (masks)
        {
            int unmasked = images.Count(i => i.MaskPath is null);
            if (unmasked == images.Count)
                throw new NoTrainingImagesException($"--masked-loss: {role} image folder '{folder}' has no mask (NAME{MaskSuffix} beside NAME.png: white where the loss counts, black where it does not)");
            if (unmasked > 0)
                warn?.Invoke($"--masked-loss: {unmasked} of {images.Count} images in '{folder}' have no {MaskSuffix} file and train on the whole image " +
                             $"({FirstNames(images.Where(i => i.MaskPath is null).Select(i => i.Path).ToList())})");
        }
        return new InstanceDataset(folder, images, skipped);
    }

    /// <summary>The first three files' names, then "..." when there are more.</summary>
    private static string FirstNames(IReadOnlyList<string> paths) =>
        string.Join(", ", paths.Take(3).Select(System.IO.Path.GetFileName)) + (paths.Count > 3 ? ", ..." : "");

    /// <summary>The image's mask file, decoded once here so a mask that does not decode or does not fit its image fails before any model loads.</summary>
    private static string? CheckedMaskOf(string imagePath, DecodedImage image, IImageDecoder decoder)
    {
        if (MaskOf(imagePath) is not { } mask) return null;
        DecodedImage decoded;
        try
        {
            decoded = decoder.Decode(mask);
            decoded.EnsureValid(mask);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{mask}: the mask of {System.IO.Path.GetFileName(imagePath)} does not decode ({ex.Message})");
        }
        if (decoded.Width != image.Width || decoded.Height != image.Height)
            throw new InvalidDataException($"{mask}: a {decoded.Width}x{decoded.Height} mask for the {image.Width}x{image.Height} image {System.IO.Path.GetFileName(imagePath)}: a mask must have its image's size");
        return mask;
    }

    /// <summary>The caption in NAME.txt beside the image (kohya's layout), or null when there is none or it is empty.</summary>
    private static string? CaptionOf(string imagePath)
    {
        var txt = System.IO.Path.ChangeExtension(imagePath, ".txt");
        if (!File.Exists(txt)) return null;
        if (new FileInfo(txt).Length > 4 * MaxCaptionChars)
            throw new InvalidDataException($"its caption file {txt} is longer than {MaxCaptionChars:N0} characters");
        var caption = File.ReadAllText(txt).Trim();
        if (caption.Length > MaxCaptionChars)
            throw new InvalidDataException($"its caption file {txt} is longer than {MaxCaptionChars:N0} characters");
        return caption.Length > 0 ? caption : null;
    }
}
