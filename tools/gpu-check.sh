#!/usr/bin/env bash
# Every command on CUDA, resume exactness, cross-device resume, then the speed and memory measurements, in one
# device call of about 8 minutes. On the GPU machine (the device tool), after `bash tools/gpu-prep.sh` here:
#   run(command="bash tools/gpu-check.sh", carry=[".device", ".gpu-check"], timeout_s=600)
# It runs dpeft and the benchmarks on the machine's PyTorch through DPEFT_LIBTORCH (no LD_LIBRARY_PATH), and writes
# under $OUT: summary.md (the README's CUDA table, filled), results.jsonl (one JSON object per check or figure),
# log.txt (everything), doctor.json, runs.tar.gz (logs and configs of the runs). A stage that would overrun the
# budget is skipped and says so; the correctness stages come first.
# Dry run on a CPU machine (checks the script, not CUDA): DEV=cpu QUICK=1 OUT=/tmp/gc-out bash tools/gpu-check.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check-out}; mkdir -p "$OUT"
DEV=${DEV:-cuda}; QUICK=${QUICK:-0}; BUDGET=${BUDGET:-480}
W=${WORK:-/tmp/gpu-check-work}; rm -rf "$W"; mkdir -p "$W"
T0=$(date +%s)
: > "$OUT/results.jsonl"; : > "$OUT/log.txt"
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/log.txt"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
emit() { echo "$1" >> "$OUT/results.jsonl"; }

# --- the app and its libtorch ---------------------------------------------------------------------------------
if [[ -f .device/env.sh ]]; then
  source .device/env.sh                       # unpacks .NET and the apps into /tmp, DPEFT_LIBTORCH = python's torch/lib
  APP=/tmp/app
else
  APP=${APP:-tools/DiffusionPeft.Cli/bin/Debug/net10.0/linux-x64}   # dry run: this checkout's build
fi
DPEFT="dotnet $APP/dpeft.dll"
BENCH="dotnet ${BENCH_APP:-$APP}/DiffusionPeft.Benchmarks.dll"
[[ -f ${BENCH_APP:-$APP}/DiffusionPeft.Benchmarks.dll ]] || BENCH="dotnet tools/Benchmarks/bin/Debug/net10.0/linux-x64/DiffusionPeft.Benchmarks.dll"
D=$(pwd)/.gpu-check; M=$D/tiny-sd15; IMG=$D/images   # absolute: eval-run resolves a run's relative --images against the run folder
export DOTNET_gcServer=0 DPEFT_DEBUG=1

# run NAME SECONDS CMD...: a correctness check (exit code decides), logged and recorded
run() {
  local name=$1 t=$2; shift 2
  if (( $(left) < t / 2 )); then log "SKIP $name (budget)"; emit "{\"check\": \"$name\", \"status\": \"skipped\"}"; return 1; fi
  log "RUN  $name: $*"
  local s=$(date +%s); timeout "$t" "$@" >> "$OUT/log.txt" 2>&1; local rc=$?
  local took=$(( $(date +%s) - s ))
  if (( rc == 0 )); then log "PASS $name (${took}s)"; emit "{\"check\": \"$name\", \"status\": \"pass\", \"seconds\": $took}"
  else log "FAIL $name rc=$rc (${took}s)"; emit "{\"check\": \"$name\", \"status\": \"fail\", \"rc\": $rc, \"seconds\": $took}"; fi
  return $rc
}

# sampled NAME FILE CMD...: runs CMD in the background, sampling GPU memory used (nvidia-smi) and its RSS twice a second
sampled() {
  local name=$1 file=$2; shift 2
  "$@" >> "$OUT/log.txt" 2>&1 & local pid=$!
  while kill -0 $pid 2>/dev/null; do
    local gpu=0; command -v nvidia-smi >/dev/null && gpu=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 2>/dev/null | head -1)
    echo "$(date +%s.%N) ${gpu:-0} $(ps -o rss= -p $pid 2>/dev/null | tr -d ' ')" >> "$file"; sleep 0.5
  done
  wait $pid
}

# Python helpers: tensor-byte comparison of two safetensors files; memory-trace analysis.
cat > "$W/st_diff.py" <<'PY'
import json, struct, sys, array
def load(p):
    with open(p, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
    return {k: (v['dtype'], data[v['data_offsets'][0]:v['data_offsets'][1]]) for k, v in h.items() if k != '__metadata__'}
a, b = load(sys.argv[1]), load(sys.argv[2])
same = sorted(a) == sorted(b); bitwise = same and all(a[k][1] == b[k][1] for k in a); worst = 0.0; ref = 0.0
if same:
    for k in a:
        if a[k][0] != 'F32': continue
        x, y = array.array('f', a[k][1]), array.array('f', b[k][1])
        worst = max([worst] + [abs(u - v) for u, v in zip(x, y)]); ref = max([ref] + [abs(u) for u in x])
print(json.dumps({"same_keys": same, "bitwise": bitwise, "max_abs_diff": worst, "max_abs": ref}))
PY
cat > "$W/trace.py" <<'PY'
import json, sys
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 3 and l.split()[2].isdigit()]
if len(rows) < 8: print(json.dumps({"samples": len(rows)})); sys.exit()
gpu = [float(r[1]) for r in rows]; rss = [int(r[2]) / 1024 for r in rows]; n = len(rows); a, b = n // 5, n // 20
print(json.dumps({"samples": n, "gpu_mib_peak": max(gpu), "gpu_mib_at_20pct": max(gpu[:a] or gpu), "gpu_mib_last5pct": max(gpu[-b:] or gpu),
                  "rss_mib_at_20pct": max(rss[:a] or rss), "rss_mib_last5pct": max(rss[-b:] or rss)}))
PY
diff_json() { python3 "$W/st_diff.py" "$1" "$2" 2>>"$OUT/log.txt" || echo '{"error": "compare failed"}'; }

log "device $DEV, budget ${BUDGET}s, DPEFT_LIBTORCH=${DPEFT_LIBTORCH:-unset}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >> "$OUT/log.txt"
$DPEFT doctor --json > "$OUT/doctor.json" 2>> "$OUT/log.txt" && log "doctor written" || log "FAIL doctor"
STEPS=6; (( QUICK )) && STEPS=2
# bf16 where the device runs it fast; a CPU dry run takes what auto picks there (bf16 is 60x slower without AVX512-BF16/AMX).
LOW=${LOW_DTYPE:-bf16}; [[ $DEV == cpu ]] && LOW=${LOW_DTYPE:-auto}
COMMON=(--model "$M" --images "$IMG" --prompt "a photo of sks dog" --rank 4 --resolution 64 --quiet)

# --- correctness: every method, every training feature, resume, cross-device ------------------------------------
if (( ! ${SKIP_CHECKS:-0} )); then   # SKIP_CHECKS=1: the measurements alone (a dry run of their plumbing)
for m in lora rslora dora loraplus singlora sdslora; do
  run "train-$m" 90 $DPEFT train "${COMMON[@]}" --out "$W/m-$m" --method $m --steps $STEPS --checkpoint-every 2 --device $DEV --dtype fp32
done
run "train-sdslora-polar" 90 $DPEFT train "${COMMON[@]}" --out "$W/m-polar" --method sdslora --sds-basis polar --steps $STEPS --device $DEV --dtype fp32

# Prior preservation (class images generated on the device), disk caches, validation, text encoder, checkpointing, bf16.
FULL=("${COMMON[@]}" --method sdslora --checkpoint-every 2 --class-prompt "a photo of a dog" --class-images "$W/class"
      --num-class-images 2 --cache-latents disk --train-text-encoder --gradient-checkpointing --noise-offset 0.05 --snr-gamma 5
      --validation-prompt "a sks dog in the snow" --validate-every 4 --device $DEV --dtype $LOW)
run "train-every-feature" 150 $DPEFT train "${FULL[@]}" --out "$W/full-a" --steps $STEPS
run "train-every-feature-split" 100 $DPEFT train "${FULL[@]}" --out "$W/full-b" --steps $(( STEPS / 2 )) &&
run "train-every-feature-resume" 100 $DPEFT train "${FULL[@]}" --out "$W/full-b" --steps $STEPS --resume latest
if [[ -f $W/full-a/adapter.safetensors && -f $W/full-b/adapter.safetensors ]]; then
  r=$(diff_json "$W/full-a/adapter.safetensors" "$W/full-b/adapter.safetensors"); log "resume on $DEV: $r"
  emit "{\"check\": \"resume-exact-$DEV\", \"result\": $r}"
fi

# Cross-device: the same fp32 LoRA run on each device, and checkpoints written on one device resumed on the other.
X=("${COMMON[@]}" --method lora --checkpoint-every 2 --dtype fp32)
run "xdev-cpu" 120 $DPEFT train "${X[@]}" --out "$W/x-cpu" --steps 4 --device cpu
run "xdev-gpu" 90 $DPEFT train "${X[@]}" --out "$W/x-gpu" --steps 4 --device $DEV
run "xdev-cpu-then-gpu" 120 bash -c "$DPEFT train ${X[*]@Q} --out $W/x-c2g --steps 2 --device cpu && $DPEFT train ${X[*]@Q} --out $W/x-c2g --steps 4 --device $DEV --resume latest"
run "xdev-gpu-then-cpu" 120 bash -c "$DPEFT train ${X[*]@Q} --out $W/x-g2c --steps 2 --device $DEV && $DPEFT train ${X[*]@Q} --out $W/x-g2c --steps 4 --device cpu --resume latest"
for pair in "x-cpu x-gpu" "x-cpu x-c2g" "x-gpu x-c2g" "x-cpu x-g2c" "x-gpu x-g2c"; do
  set -- $pair
  [[ -f $W/$1/adapter.safetensors && -f $W/$2/adapter.safetensors ]] || continue
  r=$(diff_json "$W/$1/adapter.safetensors" "$W/$2/adapter.safetensors"); log "$1 vs $2: $r"; emit "{\"check\": \"compare $1 $2\", \"result\": $r}"
done

# Generation: every sampler, three adapters stacked (ours, its kohya and diffusers exports), bf16; merge on the device.
A=$W/full-a/adapter.safetensors
run "export" 60 bash -c "$DPEFT adapter export $A --format diffusers --out $W/peft.safetensors && $DPEFT adapter export $A --format kohya --out $W/kohya.safetensors"
for s in ddim pndm lms euler euler_a dpm++2m dpm++2m_karras ddpm; do echo "{\"prompt\": \"a sks dog, $s\", \"sampler\": \"$s\", \"eta\": 0.5}"; done > "$W/prompts.jsonl"
run "generate-samplers-adapters" 120 $DPEFT generate --model "$M" --prompts "$W/prompts.jsonl" --steps 4 --width 64 --height 64 --batch 2 --device $DEV --dtype $LOW \
    --adapter "$A:0.8" --adapter "$W/kohya.safetensors:0.5" --adapter "$W/peft.safetensors:0.3" --out "$W/gen" --quiet
run "merge-on-device" 90 $DPEFT adapter merge --model "$M" --adapter "$A:0.9" --out "$W/merged-dev" --device $DEV
run "merge-on-cpu" 90 $DPEFT adapter merge --model "$M" --adapter "$A:0.9" --out "$W/merged-cpu" --device cpu
[[ -f $W/merged-dev/unet/diffusion_pytorch_model.safetensors ]] && { r=$(diff_json "$W/merged-cpu/unet/diffusion_pytorch_model.safetensors" "$W/merged-dev/unet/diffusion_pytorch_model.safetensors"); emit "{\"check\": \"merge cpu vs $DEV\", \"result\": $r}"; }
MET=(--dino $D/metrics/dino_tiny.onnx --clip-vision $D/metrics/clip_vision_tiny.onnx --clip-text $D/metrics/clip_text_tiny.onnx --clip-tokenizer $D/metrics/clip_tokenizer)
run "eval-run" 90 $DPEFT eval-run "$W/full-a" --metric dino "${MET[@]}"
mkdir -p "$W/adapters/dog" "$W/real/dog" && cp "$A" "$W/adapters/dog/" && cp "$IMG"/* "$W/real/dog/"
run "bench-dreambooth" 150 bash -c "$DPEFT bench-dreambooth --model $M --adapters $W/adapters --subject dog --n 1 --steps 2 --size 64 --device $DEV --out $W/bench --quiet --shard 1/6 && $DPEFT bench-dreambooth --subject dog --score-only --out $W/bench --real $W/real ${MET[*]@Q}"

fi

# --- measurements ---------------------------------------------------------------------------------------------
bench() { local name=$1 t=$2; shift 2; if (( $(left) < t / 2 )); then log "SKIP $name (budget)"; emit "{\"measure\": \"$name\", \"status\": \"skipped\"}"; return; fi
  log "MEASURE $name: $*"; timeout "$t" $BENCH "$@" > "$W/$name.txt" 2>&1; local rc=$?; cat "$W/$name.txt" >> "$OUT/log.txt"
  grep '^RESULT ' "$W/$name.txt" | sed "s/^RESULT \([a-z]*\) {/{\"measure\": \"$name\", \"bench\": \"\1\", /" >> "$OUT/results.jsonl"; (( rc == 0 )) || log "bench $name rc=$rc"; }
FLAT_STEPS=2000; FLAT_IMAGES=400
if (( QUICK )); then
  bench train-fp32 300 train --device $DEV --dtype fp32 --methods lora,sdslora --tiny --steps 2 --warmup 1
  FLAT_STEPS=30; FLAT_IMAGES=4
else
  bench unet-fp32 90 unet --device $DEV --dtype fp32 --iters 20 --warmup 3
  bench unet-bf16 90 unet --device $DEV --dtype bf16 --iters 20 --warmup 3
  bench train-fp32 120 train --device $DEV --dtype fp32 --methods lora,singlora,sdslora --steps 20 --warmup 3
  bench train-bf16 120 train --device $DEV --dtype bf16 --methods lora,singlora,sdslora --steps 20 --warmup 3

  # A 512 px DreamBooth LoRA run with prior preservation in bf16 on a full-size SD 1.5 through dpeft, GPU memory sampled.
  if (( $(left) > 120 )) && timeout 120 $BENCH sd15-random --out "$W/sd15" --like "$M" >> "$OUT/log.txt" 2>&1; then
    log "MEASURE dreambooth-512-prior-bf16"
    timeout 180 bash -c "$(declare -f sampled log); OUT=$OUT T0=$T0; sampled db $W/db.mem $DPEFT train --model $W/sd15 --images $IMG --prompt 'a photo of sks dog' --out $W/db --method lora --rank 4 --resolution 512 --steps 30 --checkpoint-every 0 --class-prompt 'a photo of a dog' --class-images $W/class512 --num-class-images 4 --device $DEV --dtype bf16 --quiet"
    python3 - "$W/db/log.jsonl" "$W/db.mem" >> "$OUT/results.jsonl" 2>> "$OUT/log.txt" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1])] if __import__('os').path.exists(sys.argv[1]) else []
mem = [l.split() for l in open(sys.argv[2])] if __import__('os').path.exists(sys.argv[2]) else []
gpu = [float(r[1]) for r in mem if len(r) == 3]
print(json.dumps({"measure": "dreambooth-512-prior-bf16", "steps": len(steps), "it_s_last": steps[-1]["it_s"] if steps else None,
                  "gpu_mib_peak_nvidia_smi": max(gpu) if gpu else None}))
PY
  else log "SKIP dreambooth-512 (budget or sd15-random failed)"; fi
fi

# Memory over long runs: thousands of tiny training steps with checkpoints, then hundreds of images.
if (( $(left) > 100 )); then
  log "MEASURE flat-train"; timeout 120 bash -c "$(declare -f sampled); OUT=$OUT; sampled flat $W/flat-train.mem $DPEFT train ${COMMON[*]@Q} --out $W/flat --method sdslora --steps $FLAT_STEPS --checkpoint-every $(( FLAT_STEPS / 4 )) --keep 1 --plot-every $(( FLAT_STEPS / 4 )) --device $DEV --dtype $LOW"
  emit "{\"measure\": \"flat-train-$FLAT_STEPS-steps\", \"trace\": $(python3 "$W/trace.py" "$W/flat-train.mem"), \"steps_done\": $(wc -l < "$W/flat/log.jsonl" 2>/dev/null || echo 0)}"
fi
if (( $(left) > 60 )); then
  log "MEASURE flat-generate"; timeout 90 bash -c "$(declare -f sampled); OUT=$OUT; sampled flatg $W/flat-gen.mem $DPEFT generate --model $M --prompt 'a dog' --n $FLAT_IMAGES --steps 2 --width 64 --height 64 --device $DEV --dtype $LOW --out $W/flat-gen --quiet"
  emit "{\"measure\": \"flat-generate-images\", \"trace\": $(python3 "$W/trace.py" "$W/flat-gen.mem"), \"images\": $(find "$W/flat-gen" -name '*.png' ! -name grid.png | wc -l)}"
fi

if (( ! QUICK )); then
  # The diffusers 0.25 anchor on the same PyTorch, when gpu-prep.sh packed its sources.
  if [[ -f $D/diffusers-src.tar.gz ]] && (( $(left) > 60 )); then
    mkdir -p "$W/dsrc" && tar -xzf $D/diffusers-src.tar.gz -C "$W/dsrc"
    log "MEASURE diffusers"; PYTHONPATH="$W/dsrc" timeout 120 python3 $D/bench_diffusers_gpu.py > "$W/diffusers.txt" 2>&1; cat "$W/diffusers.txt" >> "$OUT/log.txt"
    grep '^RESULT diffusers ' "$W/diffusers.txt" | sed 's/^RESULT diffusers {/{"measure": "diffusers-0.25", /' >> "$OUT/results.jsonl"
  fi

  # Last, as time allows: TF32 matmuls, a prior-preservation-shaped step alone, the adapter layers alone.
  bench unet-fp32-tf32 90 unet --device $DEV --dtype fp32 --iters 20 --warmup 3 --tf32
  bench train-bf16-prior 60 train --device $DEV --dtype bf16 --batch 2 --steps 10 --warmup 2
  bench adapters 60 adapters --device $DEV --ranks 4,16 --reps 10
fi

# --- summary ----------------------------------------------------------------------------------------------------
python3 - "$OUT/results.jsonl" > "$OUT/summary.md" 2>> "$OUT/log.txt" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
checks = [r for r in rows if "check" in r]; measures = [r for r in rows if "measure" in r]
print("# gpu-check results\n\n## correctness\n\n| check | status | detail |\n| --- | --- | --- |")
for r in checks:
    detail = json.dumps(r["result"]) if "result" in r else f'{r.get("seconds", "")} s' + (f' rc={r["rc"]}' if "rc" in r else "")
    print(f'| {r["check"]} | {r.get("status", "measured")} | {detail} |')
print("\n## measurements\n\n| what | figures |\n| --- | --- |")
for r in measures:
    print(f'| {r["measure"]} | {json.dumps({k: v for k, v in r.items() if k != "measure"})} |')
def ms(name, method=None):
    for r in measures:
        if r["measure"] == name and (method is None or r.get("method") == method): return r.get("best_ms") or r.get("mean_ms")
lora = {d: ms(f"train-{d}", "lora") for d in ("fp32", "bf16")}
print("\n## ratios\n")
for d in ("fp32", "bf16"):
    for m in ("singlora", "sdslora"):
        v = ms(f"train-{d}", m)
        if v and lora[d]: print(f"- {m} / lora step, {d}: {v / lora[d]:.3f} (target <= 1.05)")
fails = [r["check"] for r in checks if r.get("status") == "fail"]
print(f"\n{len(checks)} checks, {len(fails)} failed" + (f": {', '.join(fails)}" if fails else ""))
PY
tar -czf "$OUT/runs.tar.gz" -C "$W" --exclude='*.safetensors' --exclude='*.png' --exclude='sd15' --exclude='cache' --exclude='dsrc' . 2>/dev/null
log "done in $(( $(date +%s) - T0 ))s"
cat "$OUT/summary.md"
