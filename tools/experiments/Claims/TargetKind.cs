namespace DiffusionPeft.Experiments.Claims;

/// <summary>
/// The shape of a planted update ΔW*. General: U S Vᵀ. Psd: U S Uᵀ (square layers). SingLoraShaped: A*_out A*_inᵀ with
/// A* of n = max(d_in, d_out) rows, the form SingLoRA's ΔW = s·u·A_out·A_inᵀ can express (on square layers, Psd).
/// </summary>
public enum TargetKind { General, Psd, SingLoraShaped }
