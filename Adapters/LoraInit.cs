namespace DiffusionPeft.Adapters;

/// <summary>Initialisation of LoRA's A: kaiming-uniform(a = sqrt 5), or N(0, (1/r)^2) as diffusers' DreamBooth script does.</summary>
public enum LoraInit { KaimingUniform, Gaussian }
