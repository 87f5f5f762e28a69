namespace DiffusionPeft.ToyWorld.Captions;

/// <summary>A text that is not a caption of the toy grammar; the message says where and what was expected.</summary>
public sealed class CaptionParseException(string message) : FormatException(message);
