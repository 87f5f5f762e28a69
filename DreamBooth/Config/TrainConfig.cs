using System.Runtime.Serialization;
using DiffusionPeft.Adapters;

namespace DiffusionPeft.DreamBooth.Config;

/// <summary>The schedules of diffusers' <c>get_scheduler</c> (optimization.py), with its names.</summary>
public enum LrScheduleKind
{
    [EnumMember(Value = "constant")] Constant,
    [EnumMember(Value = "constant_with_warmup")] ConstantWithWarmup,
    [EnumMember(Value = "linear")] Linear,
    [EnumMember(Value = "cosine")] Cosine,
    [EnumMember(Value = "cosine_with_restarts")] CosineWithRestarts,
    [EnumMember(Value = "polynomial")] Polynomial,
}

public enum CropMode
{
    [EnumMember(Value = "center")] Center,
    [EnumMember(Value = "random")] Random,
}

/// <summary>What a run trains: an adapter (--method), or every weight of the UNet (full fine-tuning, kohya's "fine tune").</summary>
public enum TrainingMode
{
    [EnumMember(Value = "adapter")] Adapter,
    [EnumMember(Value = "full")] Full,
}

/// <summary>The dtype of the weight files a full fine-tuning run writes.</summary>
public enum SaveDType
{
    [EnumMember(Value = "fp32")] Fp32,
    [EnumMember(Value = "bf16")] Bf16,
    [EnumMember(Value = "fp16")] Fp16,
}

/// <summary>How training draws each sample's timestep.</summary>
public enum TimestepSampling
{
    /// <summary>DDPM's: every timestep equally often.</summary>
    [EnumMember(Value = "uniform")] Uniform,
    /// <summary>t = ⌊T · sigmoid(n)⌋, n ~ N(logit-mean, logit-std) (Esser et al. 2024, SD3): more samples at mid noise.</summary>
    [EnumMember(Value = "logit_normal")] LogitNormal,
}

public enum LatentCacheMode
{
    [EnumMember(Value = "memory")] Memory,
    [EnumMember(Value = "disk")] Disk,
    [EnumMember(Value = "none")] None,
}

/// <summary>Names an option: its YAML key, which is also its command-line flag (<c>--key</c>).</summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ConfigKeyAttribute(string key, string help) : Attribute
{
    public string Key { get; } = key;
    public string Help { get; } = help;
    /// <summary>May differ between a checkpoint and the run resuming from it without changing what is trained.</summary>
    public bool ResumeNeutral { get; init; }
}

/// <summary>
/// Every setting of a DreamBooth run. Defaults follow diffusers' train_dreambooth_lora.py where it has one
/// (lr 1e-4, rank 4, AdamW betas 0.9/0.999, eps 1e-8, weight decay 1e-2, max grad norm 1, resolution 512).
/// </summary>
public sealed record TrainConfig
{
    [ConfigKey("model", "base model: a diffusers folder or a single .safetensors checkpoint")] public string Model { get; init; } = "";
    [ConfigKey("configs-from", "for a single-file checkpoint: a diffusers folder with its configs and tokenizer")] public string? ConfigsFrom { get; init; }
    [ConfigKey("tokenizer", "for a single-file checkpoint: a tokenizer folder (vocab.json, merges.txt)")] public string? Tokenizer { get; init; }
    [ConfigKey("images", "folder of instance images (JPEG, PNG, WebP)")] public string Images { get; init; } = "";
    [ConfigKey("prompt", "instance prompt with a rare identifier, e.g. \"a photo of sks dog\"; an image with a NAME.txt beside it is trained on that caption instead")] public string Prompt { get; init; } = "";
    [ConfigKey("out", "run folder", ResumeNeutral = true)] public string Out { get; init; } = "";

    [ConfigKey("mode", "adapter: train an adapter (--method); full: fine-tune every UNet weight (and the text encoder's with --train-text-encoder), as diffusers' train_dreambooth.py; writes the diffusers folder RUN/model")] public TrainingMode Mode { get; init; } = TrainingMode.Adapter;
    [ConfigKey("caption-dropout", "probability of training a sample on the empty caption, for classifier-free guidance (kohya's caption_dropout_rate)")] public double CaptionDropout { get; init; }
    [ConfigKey("save-dtype", "full mode: dtype of the written weights, fp32|bf16|fp16")] public SaveDType SaveDType { get; init; } = SaveDType.Fp32;
    [ConfigKey("method", "lora|rslora|dora|loraplus|singlora|sdslora")] public AdapterMethod Method { get; init; } = AdapterMethod.Lora;
    [ConfigKey("rank", "adapter rank")] public int Rank { get; init; } = 4;
    [ConfigKey("alpha", "adapter alpha (default: the rank, i.e. scale 1)")] public double? Alpha { get; init; }
    [ConfigKey("steps", "optimizer steps (embedded toy model: 300)", ResumeNeutral = true)] public int Steps { get; init; } = 500;
    [ConfigKey("lr", "learning rate (embedded toy model: 3e-3)")] public double Lr { get; init; } = 1e-4;
    [ConfigKey("text-encoder-lr", "learning rate of text-encoder adapters (default: --lr)")] public double? TextEncoderLr { get; init; }
    [ConfigKey("batch", "images per micro-batch (embedded toy model: 2)")] public int Batch { get; init; } = 1;
    [ConfigKey("grad-accumulation", "micro-batches per optimizer step")] public int GradAccumulation { get; init; } = 1;

    [ConfigKey("resolution", "training resolution in pixels (multiple of 8; of 64 with buckets; embedded toy model: 64)")] public int Resolution { get; init; } = 512;
    [ConfigKey("crop", "center|random")] public CropMode Crop { get; init; } = CropMode.Center;
    [ConfigKey("flip", "random horizontal flip")] public bool Flip { get; init; }
    [ConfigKey("buckets", "aspect-ratio buckets (area about resolution^2, sides multiples of 64)")] public bool Buckets { get; init; }
    [ConfigKey("seed", "seed of noise, timesteps, data order and augmentation")] public long Seed { get; init; } = 0;

    [ConfigKey("checkpoint-every", "checkpoint every N optimizer steps (0: only at the end)", ResumeNeutral = true)] public int CheckpointEvery { get; init; } = 100;
    [ConfigKey("keep", "checkpoints to keep (0: all)", ResumeNeutral = true)] public int Keep { get; init; } = 3;
    [ConfigKey("resume", "latest, or a checkpoint folder", ResumeNeutral = true)] public string? Resume { get; init; }

    [ConfigKey("class-prompt", "prior preservation: class prompt, e.g. \"a photo of a dog\"")] public string? ClassPrompt { get; init; }
    [ConfigKey("class-images", "prior preservation: class image folder (missing images are generated)")] public string? ClassImages { get; init; }
    [ConfigKey("num-class-images", "prior preservation: class images wanted")] public int NumClassImages { get; init; } = 100;
    [ConfigKey("prior-weight", "prior preservation: weight of the class loss")] public double PriorWeight { get; init; } = 1.0;

    [ConfigKey("validation-prompt", "validation prompt (repeatable)", ResumeNeutral = true)] public EquatableList<string> ValidationPrompts { get; init; } = EquatableList<string>.Empty;
    [ConfigKey("validate-every", "validation images every N steps (0: never)", ResumeNeutral = true)] public int ValidateEvery { get; init; }
    [ConfigKey("validation-seed", "validation seed (repeatable; default: --seed)", ResumeNeutral = true)] public EquatableList<long> ValidationSeeds { get; init; } = EquatableList<long>.Empty;

    [ConfigKey("lr-scheduler", "constant|constant_with_warmup|linear|cosine|cosine_with_restarts|polynomial")] public LrScheduleKind LrScheduler { get; init; } = LrScheduleKind.Constant;
    [ConfigKey("lr-warmup-steps", "linear warm-up steps")] public int LrWarmupSteps { get; init; }
    [ConfigKey("lr-num-cycles", "hard restarts of cosine_with_restarts")] public int LrNumCycles { get; init; } = 1;
    [ConfigKey("lr-power", "power of the polynomial schedule")] public double LrPower { get; init; } = 1.0;
    [ConfigKey("lr-end", "final learning rate of the polynomial schedule")] public double LrEnd { get; init; } = 1e-7;

    [ConfigKey("snr-gamma", "min-SNR-gamma loss weighting (Hang et al. 2023; 5 is usual; unset: off)")] public double? SnrGamma { get; init; }
    [ConfigKey("ema-decay", "keep an exponential moving average of the trained weights and write it as the result, as diffusers' --use_ema (the first step taken as is, then decay min(D, (1+n)/(10+n)) after n steps; diffusers' D is 0.9999); validation images use it; checkpoints keep both; may be added or changed on a resume (unset: off)", ResumeNeutral = true)] public double? EmaDecay { get; init; }
    [ConfigKey("whiten-conditioning", "--mode full with a frozen text encoder: train the UNet on the text encoder's states whitened (ZCA over the training captions' states, kept in the run folder), folded into its cross-attention keys and values when written, so the model reads the text encoder as it is; preconditioning for words a contrastive encoder leaves faint (README)")] public bool WhitenConditioning { get; init; }
    [ConfigKey("whiten-strength", "whiten-conditioning: how far to whiten, α in (0, 1]: P = (E[h hᵀ] + εI)^(-α/2) (1: fully; 0.5: part-way, the strong directions kept stronger than the faint ones)")] public double WhitenStrength { get; init; } = 1.0;
    [ConfigKey("masked-loss", "weight each image's loss by its mask, NAME-masklabel.png beside NAME.png (white: counts, black: does not, grey between), averaged down to the latents, as kohya's --masked_loss and OneTrainer's masked training; images without a mask train on the whole image")] public bool MaskedLoss { get; init; }
    [ConfigKey("unmasked-weight", "masked loss: the weight of what the mask leaves out (0: ignored, as kohya; OneTrainer's default is 0.1)")] public double UnmaskedWeight { get; init; }
    [ConfigKey("noise-offset", "noise offset (0: off)")] public double NoiseOffset { get; init; }
    [ConfigKey("timestep-sampling", "uniform|logit_normal: how each sample's timestep is drawn (logit_normal: SD3's, t = T·sigmoid(N(logit-mean, logit-std)), more samples at mid noise)")] public TimestepSampling TimestepSampling { get; init; } = TimestepSampling.Uniform;
    [ConfigKey("logit-mean", "logit_normal: the mean (0: centred on T/2; positive: noisier)")] public double LogitMean { get; init; }
    [ConfigKey("logit-std", "logit_normal: the standard deviation")] public double LogitStd { get; init; } = 1.0;
    [ConfigKey("weight-decay", "AdamW weight decay")] public double WeightDecay { get; init; } = 1e-2;
    [ConfigKey("adam-beta1", "AdamW beta1")] public double AdamBeta1 { get; init; } = 0.9;
    [ConfigKey("adam-beta2", "AdamW beta2")] public double AdamBeta2 { get; init; } = 0.999;
    [ConfigKey("adam-epsilon", "AdamW epsilon")] public double AdamEpsilon { get; init; } = 1e-8;
    [ConfigKey("max-grad-norm", "gradient clipping norm (0: no clipping)")] public double MaxGradNorm { get; init; } = 1.0;
    [ConfigKey("loraplus-ratio", "LoRA+: lr of B = ratio x lr of A")] public double LoraPlusRatio { get; init; } = 16;
    [ConfigKey("singlora-ramp-steps", "SingLoRA: ramp length T of u(t) = min(t/T, 1) (0: off; with the small default init the ramp is not needed, docs/experiments/adapter-claims)")] public int SingLoraRampSteps { get; init; }
    [ConfigKey("sds-basis", "SDS-LoRA: polar (U·Vᵀ; always a descent direction, never slower in docs/experiments/adapter-claims) or qr (methods.md)")] public SdsBasis SdsBasis { get; init; } = SdsBasis.Polar;
    [ConfigKey("singlora-init-scale", "SingLoRA: multiplier of the kaiming-uniform init of A (0.01: the widest stable LR window in docs/experiments/adapter-claims; 1 is the paper's)")] public double SingLoraInitScale { get; init; } = 0.01;

    [ConfigKey("train-text-encoder", "also train text-encoder adapters")] public bool TrainTextEncoder { get; init; }
    [ConfigKey("dtype", "dtype of the frozen base: auto|fp32|bf16 (auto: bf16 on a GPU or a CPU with bf16 instructions, else fp32; config.yaml records the choice; adapters stay fp32; diffusers' --mixed_precision bf16 is --dtype bf16). In --mode full: fp32 (auto too), or bf16 compute on fp32 master weights")] public string DType { get; init; } = "auto";
    [ConfigKey("device", "cpu|cuda|cuda:N", ResumeNeutral = true)] public string Device { get; init; } = "cpu";
    [ConfigKey("cache-latents", "cache VAE latents and text embeddings: memory|disk|none")] public LatentCacheMode CacheLatents { get; init; } = LatentCacheMode.Memory;
    [ConfigKey("gradient-checkpointing", "recompute the UNet's transformer blocks in backward (measured: -0.6 GiB for +20% time in fp32, no saving in bf16; see README)", ResumeNeutral = true)] public bool GradientCheckpointing { get; init; }
    [ConfigKey("plot-every", "rewrite loss.png every N steps", ResumeNeutral = true)] public int PlotEvery { get; init; } = 25;

    /// <summary>Adapter scale numerator: alpha, or the rank when unset.</summary>
    public double EffectiveAlpha => Alpha ?? Rank;
    public double EffectiveTextEncoderLr => TextEncoderLr ?? Lr;
    public bool PriorPreservation => ClassPrompt is not null || ClassImages is not null;
    public IReadOnlyList<long> EffectiveValidationSeeds => ValidationSeeds.Count > 0 ? ValidationSeeds : [Seed];

    /// <summary>The trainer loop's settings of this run.</summary>
    public Training.TrainingLoop Loop => new()
    {
        Steps = Steps, Lr = Lr, GradAccumulation = GradAccumulation, MaxGradNorm = MaxGradNorm,
        AdamBeta1 = AdamBeta1, AdamBeta2 = AdamBeta2, AdamEpsilon = AdamEpsilon, WeightDecay = WeightDecay,
        LrScheduler = LrScheduler, LrWarmupSteps = LrWarmupSteps, LrNumCycles = LrNumCycles, LrPower = LrPower, LrEnd = LrEnd,
        Seed = Seed, CheckpointEvery = CheckpointEvery, Keep = Keep, Resume = Resume, PlotEvery = PlotEvery, ValidateEvery = ValidateEvery,
        EmaDecay = EmaDecay,
    };

    /// <summary>
    /// The defaults of a run on the embedded toy model (64 px images), where they were measured: the DreamBooth table
    /// (docs/experiments/dreambooth-toy) trained every method 300 steps at batch 2 and chose 3e-3 for LoRA, DoRA and
    /// SingLoRA from {3e-4, 1e-3, 3e-3}; 1e-4 barely moves this model. The file's and the command line's values override these.
    /// </summary>
    public static TrainConfig EmbeddedModelDefaults { get; } = new() { Resolution = 64, Lr = 3e-3, Steps = 300, Batch = 2 };

    /// <summary>The layer options of the run's adapters: method, rank, alpha, SingLoRA ramp and init scale, SDS basis, fp32 tensors.</summary>
    public AdapterOptions AdapterOptions => new()
    {
        Method = Method,
        Rank = Rank,
        Alpha = EffectiveAlpha,
        RampSteps = SingLoraRampSteps,
        InitScale = SingLoraInitScale,
        SdsBasis = SdsBasis,
        ParameterDType = TorchSharp.torch.ScalarType.Float32,
    };
}
