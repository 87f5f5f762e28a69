namespace DiffusionPeft.Core.Imaging;

/// <summary>
/// torchvision 0.14's Resize(size) (shorter side to <c>size</c>, the longer to <c>int(size * long / short)</c>,
/// truncated) followed by CenterCrop(crop) (offsets <c>int(round((n - crop) / 2.0))</c>, round half to even).
/// </summary>
public readonly record struct CenterCropGeometry(int ResizedWidth, int ResizedHeight, int CropLeft, int CropTop, int Crop)
{
    public bool ResizeSkipped(int width, int height) => width == ResizedWidth && height == ResizedHeight;

    public static CenterCropGeometry For(int width, int height, int resizeShorter, int crop)
    {
        int rw, rh;
        if (width <= height) { rw = resizeShorter; rh = (int)((double)((long)resizeShorter * height) / width); }
        else { rh = resizeShorter; rw = (int)((double)((long)resizeShorter * width) / height); }
        if (rw < crop || rh < crop)
            throw new ArgumentException($"center crop {crop} is larger than the resized image {rw}x{rh} (padding is not supported)");
        int left = (int)Math.Round((rw - crop) / 2.0, MidpointRounding.ToEven);
        int top = (int)Math.Round((rh - crop) / 2.0, MidpointRounding.ToEven);
        return new CenterCropGeometry(rw, rh, left, top, crop);
    }

    /// <summary>The crop of the resized image, computing only the cropped pixels.</summary>
    public RgbImage Apply(RgbImage image) =>
        PilResize.ResizeRegion(image, ResizedWidth, ResizedHeight, CropLeft, CropTop, Crop, Crop);
}
