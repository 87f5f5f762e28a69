namespace DiffusionPeft.ToyWorld.Captions;

/// <summary>How a caption joins its background phrase: ", green striped background" or " on a green striped background".</summary>
public enum BackgroundConnector { Comma, OnA }
