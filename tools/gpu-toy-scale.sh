#!/usr/bin/env bash
# Issue #12's open question in one device call: does the toy UNet draw the caption's shape when it gets several times
# the CPU recipe's compute? (The shipped model, 8,000 steps × 32 scenes on whitened text states, draws it in 45.5% of
# held-out images at its guidance 4, the one before it 21.8%; the target is 70%; the UNet underfits its own training
# scenes too: docs/experiments/toy-model-train-split.)
# It retrains only the UNet on the embedded default's tokenizer, VAE and text encoder (--components-from embedded) with
# the cross-attention block at the top level, times the stage on this machine, picks the step count that fills the
# budget, trains, and scores the model on the held-out and the training split with the scene judge.
# On the GPU machine (the device tool), after `bash tools/gpu-prep.sh` here:
#   run(command="bash tools/gpu-toy-scale.sh", carry=[".device"], timeout_s=600)
# Writes under $OUT: summary.md (steps, scenes seen against the recipe's, each split's scores), results.json,
# log.txt, heldout/ and train/ (evaluation.json/.md and the first 32 images), unet-log.jsonl, loss.png and model.tar
# (the model folder, bf16: `dpeft toy-model evaluate --model` and `compare` against the shipped model's evaluation run here on it).
# Dry run on a CPU machine (checks the script, not CUDA): DEV=cpu QUICK=1 OUT=/tmp/ts-out bash tools/gpu-toy-scale.sh
set -uo pipefail
OUT=${OUT:-/tmp/toy-scale-out}; mkdir -p "$OUT"
DEV=${DEV:-cuda}; QUICK=${QUICK:-0}; BUDGET=${BUDGET:-540}
BATCH=${BATCH:-256}; LR=${LR:-1.5e-3}; MAX_STEPS=${MAX_STEPS:-30000}; SCENES=${SCENES:-200}; CLASSIFIER=${CLASSIFIER:-96}
WHITEN=${WHITEN:-1}   # 1 (the recipe's default): the UNet on whitened text states (dpeft train --whiten-conditioning); 0: --unet-whiten-conditioning false
WHITEN_STRENGTH=${WHITEN_STRENGTH:-1}   # with WHITEN=1: --unet-whiten-strength (1: fully; 0.5: part-way)
EVAL_RESERVE=${EVAL_RESERVE:-150}   # seconds kept for the two evaluations and the copies
W=${WORK:-/tmp/toy-scale-work}; rm -rf "$W"; mkdir -p "$W"
T0=$(date +%s)
: > "$OUT/log.txt"
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/log.txt"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }

if [[ -f .device/env.sh ]]; then
  source .device/env.sh
  APP=/tmp/app
else
  APP=${APP:-tools/DiffusionPeft.Cli/bin/Release/net10.0/linux-x64}
fi
DPEFT="dotnet $APP/dpeft.dll"
TIME_STEPS=40
if (( QUICK )); then BATCH=4; TIME_STEPS=6; MAX_STEPS=12; SCENES=4; CLASSIFIER=2; EVAL_RESERVE=60; fi
# Checkpoints every 1,000 steps and no validation images: the timing run has neither, so the real run's steps cost what
# was timed (the work folder does not come back from the device anyway; the last step is always written).
TRAIN=(toy-model train --device "$DEV" --components-from embedded --unet-top-attention cross-only --unet-batch "$BATCH" --unet-lr "$LR"
       --checkpoint-every 1000 --validate-every 0 --quiet)
if (( WHITEN )); then TRAIN+=(--unet-whiten-strength "$WHITEN_STRENGTH"); else TRAIN+=(--unet-whiten-conditioning false); fi
(( QUICK )) && TRAIN+=(--miniature --latent-size 32)   # the embedded components have 32×32 latents
log "device $DEV, batch $BATCH, lr $LR, whitened text states $WHITEN (strength $WHITEN_STRENGTH), budget ${BUDGET}s; $(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"

# 1. The UNet's data and base, and a short run that times a step (the data and base are kept for the real run).
log "timing run: $TIME_STEPS steps"
t1=$(date +%s)
$DPEFT "${TRAIN[@]}" --out "$W/run" --unet-steps "$TIME_STEPS" >> "$OUT/log.txt" 2>&1 || { log "FAIL timing run"; exit 1; }
wall=$(( $(date +%s) - t1 ))
# Seconds a step, from the log's elapsed time after the first quarter (warm-up left out), and the run's time outside its
# steps (data, latent caching, loading and writing: the real run repeats all but the data), kept out of the budget; the
# steps fill 90% of what is left, a margin for a slower step than timed.
read -r rate overhead < <(python3 - "$W/run/unet/log.jsonl" "$wall" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
a, b = rows[len(rows) // 4], rows[-1]
print(f"{(b['elapsed_s'] - a['elapsed_s']) / (b['step'] - a['step']):.4f} {max(0, int(sys.argv[2]) - b['elapsed_s']):.0f}")
PY
) || { log "FAIL reading the timing run's log"; exit 1; }
[[ -n "${rate:-}" ]] || { log "FAIL reading the timing run's log"; exit 1; }
rm -rf "$W/run/unet" "$W/run/model" "$W/run/unet.done.json"
steps=$(python3 -c "print(max(1, min($MAX_STEPS, int(0.9 * ($(left) - $EVAL_RESERVE - $overhead) / $rate))))")
log "a step takes ${rate}s, the rest of a run ${overhead}s: $steps steps × $BATCH scenes ($(python3 -c "print(f'{$steps * $BATCH / (8000 * 32):.1f}')")× the recipe's 8,000 × 32)"

# 2. The real run on the same data and base.
s=$(date +%s)
$DPEFT "${TRAIN[@]}" --out "$W/run" --unet-steps "$steps" >> "$OUT/log.txt" 2>&1 || { log "FAIL training"; exit 1; }
log "trained $steps steps in $(( $(date +%s) - s ))s"
cp "$W/run/unet/log.jsonl" "$OUT/unet-log.jsonl"; cp "$W/run/unet/loss.png" "$OUT/" 2>/dev/null
tar -C "$W/run" -cf "$OUT/.model.tar.tmp" model && mv "$OUT/.model.tar.tmp" "$OUT/model.tar"

# The summary, rewritten after each split: a call cut short by the time limit keeps what was judged.
summarize() {
python3 - "$OUT" "$steps" "$BATCH" "$LR" "$rate" "$DEV" "$WHITEN" "$WHITEN_STRENGTH" <<'PY' >> "$OUT/log.txt"
import json, os, sys
out, steps, batch, lr, rate, dev, whiten, strength = sys.argv[1:]
result = {"device": dev, "steps": int(steps), "batch": int(batch), "lr": float(lr), "whiten_conditioning": whiten == "1",
          "whiten_strength": float(strength) if whiten == "1" else None, "seconds_per_step": float(rate),
          "scenes_seen_vs_recipe": int(steps) * int(batch) / (8000 * 32), "splits": {}}
lines = [f"# toy UNet at scale ({dev}): {steps} steps × {batch} scenes, lr {lr}{f', whitened text states (strength {strength})' if whiten == '1' else ''}, {float(rate):.3f} s a step",
         f"{result['scenes_seen_vs_recipe']:.1f}× the scenes the recipe's UNet sees; shipped model (held-out): shape 21.8%, colour 83.9%, position 74.1%", "",
         "| split | shape | colour | position | size | classifier, shape |", "|---|---|---|---|---|---|"]
for split in ("heldout", "train"):
    path = os.path.join(out, split, "evaluation.json")
    if not os.path.exists(path): continue
    ev = json.load(open(path))
    row = {k: ev["all"].get(k, {}).get("accuracy") for k in ("Shape", "Colour", "Position", "Size")}
    row["ClassifierShape"] = (ev.get("diffusion_classifier") or {}).get("Shape", {}).get("accuracy")
    result["splits"][split] = row
    cell = lambda v: f"{100 * v:.1f}%" if isinstance(v, (int, float)) else "–"
    lines.append(f"| {split} | " + " | ".join(cell(row[k]) for k in ("Shape", "Colour", "Position", "Size", "ClassifierShape")) + " |")
def write(name, text):   # atomically: a kill leaves the old file or the new one
    tmp = os.path.join(out, "." + name + ".tmp")
    with open(tmp, "w") as f: f.write(text)
    os.replace(tmp, os.path.join(out, name))
write("results.json", json.dumps(result, indent=2))
write("summary.md", "\n".join(lines) + "\n")
print("\n".join(lines))
PY
}

summarize   # the run's facts before any split is judged

# 3. The judge on both splits (the diffusion classifier on the held-out split only).
for split in held-out train; do
  dir=$OUT/${split/-/}; classifier=$CLASSIFIER; [[ $split == train ]] && classifier=0
  s=$(date +%s)
  $DPEFT toy-model evaluate --model "$W/run/model" --device "$DEV" --split "$split" --scenes "$SCENES" --classifier-scenes "$classifier" \
    --out "$W/eval-$split" >> "$OUT/log.txt" 2>&1 || { log "FAIL evaluate $split"; continue; }
  mkdir -p "$dir"; cp "$W/eval-$split"/evaluation.{json,md} "$dir/"
  ls "$W/eval-$split"/*.png | head -32 | xargs -I{} cp {} "$dir/"
  log "evaluated $split in $(( $(date +%s) - s ))s"
  summarize
done

cat "$OUT/summary.md" 2>/dev/null
log "done"
