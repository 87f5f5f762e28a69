namespace DiffusionPeft.ToyWorld.Grammar;

/// <summary>
/// Image size and where sizes and positions put an object, in pixels of the 64x64 image. Objects are placed by the
/// centre of their bounding box on a 3x3 grid (column and row centres 17, 32, 47, jitter up to ±2 px) and sized by
/// the longer side of that box (13, 19 or 27 px, ±1 px), so even a large object at a corner lies inside the image
/// and its centre stays in its third. The judge reads positions and sizes back with the thresholds below.
/// </summary>
public static class ToyGeometry
{
    public const int ImageSize = 64;
    /// <summary>Objects are rasterized at this many samples per pixel and side, then box-averaged.</summary>
    public const int Supersampling = 4;
    public const int HiResSize = ImageSize * Supersampling;

    public const int MaxCentreJitter = 2;
    public const int MaxExtentJitter = 1;

    /// <summary>Column/row centres of the grid cells, left/top to right/bottom.</summary>
    public static ReadOnlySpan<int> GridCentres => [17, 32, 47];

    /// <summary>A centre left of this (or above it) is in the first column (row); at or right of <see cref="SecondGridBoundary"/> in the third.</summary>
    public const double FirstGridBoundary = 24.5;
    public const double SecondGridBoundary = 39.5;

    public static int NominalExtent(ToySize size) => size switch
    {
        ToySize.Small => 13,
        ToySize.Medium => 19,
        ToySize.Large => 27,
        _ => throw new ArgumentOutOfRangeException(nameof(size), size, "not a toy size"),
    };

    /// <summary>Extents below this read as small, below <see cref="LargeFrom"/> as medium, else large.</summary>
    public const double MediumFrom = 16;
    public const double LargeFrom = 23;

    public static int Column(ToyPosition p) => (int)p % 3;
    public static int Row(ToyPosition p) => (int)p / 3;
    public static ToyPosition PositionAt(int row, int column) => (ToyPosition)(row * 3 + column);

    /// <summary>The grid cell of a bounding-box centre (pixels).</summary>
    public static ToyPosition PositionOf(double centreX, double centreY) => PositionAt(GridIndex(centreY), GridIndex(centreX));

    /// <summary>The size class of an extent (pixels).</summary>
    public static ToySize SizeOf(double extent) => extent < MediumFrom ? ToySize.Small : extent < LargeFrom ? ToySize.Medium : ToySize.Large;

    private static int GridIndex(double c) => c < FirstGridBoundary ? 0 : c < SecondGridBoundary ? 1 : 2;
}
