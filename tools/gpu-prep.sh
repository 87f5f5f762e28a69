#!/usr/bin/env bash
# Prepares tools/gpu-check.sh's run on the device machine. Run HERE (the CPU machine), from the project root:
#   bash tools/gpu-prep.sh            (DIFFUSERS_SRC=dir adds the diffusers 0.25 anchor, see below)
# Writes .device/ (the .NET runtime and dpeft + Benchmarks published in Release without libtorch: the GPU machine's
# PyTorch supplies it through DPEFT_LIBTORCH) and .gpu-check/ (the golden tiny SD 1.5 folder, instance images, the tiny
# ONNX metric models, the diffusers script). Both are git-ignored and travel with carry: [".device", ".gpu-check"]
# (about 58 MiB with the tracked files, of the 64 MiB that travel; the total is printed at the end). The packing follows
# ../shared/device/pack.sh, which cannot run in a git worktree (its .git/info is not a folder there).
# DIFFUSERS_SRC: a folder holding diffusers/ (src/diffusers of huggingface/diffusers at v0.25.0) and huggingface_hub/
# (src/huggingface_hub at v0.20.1), e.g. from the search tool's fetch + git archive; packed compressed.
# SKIP_PACK=1: the data only (a dry run of gpu-check.sh on this machine uses the checkout's own build).
set -euo pipefail
shared=${DPEFT_SHARED:-}
for candidate in ../shared ../../shared /work/shared; do
  [[ -z "$shared" && -d "$candidate/golden" ]] && shared=$(cd "$candidate" && pwd)
done
[[ -n "$shared" ]] || { echo "set DPEFT_SHARED to the folder holding golden/ and device/" >&2; exit 2; }
golden=${DPEFT_GOLDEN_DIR:-$shared/golden}

if [[ "${SKIP_PACK:-0}" != 1 ]]; then
  out=.device; mkdir -p "$out"
  app=$(mktemp -d); trap 'rm -rf "$app"' EXIT
  for p in tools/DiffusionPeft.Cli tools/Benchmarks; do dotnet publish "$p" -c Release -o "$app" -nologo -v q >/dev/null; done
  # Bundled libtorch and ONNX Runtime's natives stay here (the GPU machine's PyTorch supplies libtorch).
  (cd "$app" && rm -rf cpu libtorch*.so libc10*.so libgomp*.so* libnnapi_backend.so libaoti_custom_ops.so libbackend_with_compiler.so \
     libjitbackend_test.so libtorchbind_test.so libshm.so)
  XZ_OPT=-9e tar -C "$app" -cJf "$out/app.tar.xz" .
  dn=$(dirname "$(readlink -f "$(command -v dotnet)")")
  [[ -f "$out/dotnet.tar.xz" ]] || XZ_OPT=-9e tar -C "$dn" -cJf "$out/dotnet.tar.xz" dotnet host shared/Microsoft.NETCore.App
  cat > "$out/env.sh" <<'ENV'
# Sourced on the GPU machine from the project root: unpacks .device/ into /tmp and names the machine's PyTorch libtorch.
mkdir -p /tmp/dn /tmp/app
[[ -x /tmp/dn/dotnet ]] || tar -xJf .device/dotnet.tar.xz -C /tmp/dn
tar -xJf .device/app.tar.xz -C /tmp/app
export DOTNET_ROOT=/tmp/dn PATH=/tmp/dn:$PATH DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
export DPEFT_LIBTORCH=$(python3 -c "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('torch').origin), 'lib'))")
ENV
fi

data=.gpu-check
rm -rf "$data"; mkdir -p "$data/metrics" "$data/images"
cp -r "$golden/tiny_sd15_diffusers/model" "$data/tiny-sd15"
rm -f "$data"/tiny-sd15/*/*.fp16.safetensors   # the variant is not used: 2 MiB less to carry
cp "$golden"/metrics_tiny/{dino_tiny,clip_vision_tiny,clip_text_tiny}.onnx "$data/metrics/"
cp -r "$golden/clip_tokenizer" "$data/metrics/clip_tokenizer"
cp "$golden"/metrics_tiny/images/* "$data/images/"
cp "$shared/device/bench_diffusers_gpu.py" "$data/"
if [[ -n "${DIFFUSERS_SRC:-}" ]]; then
  tar -C "$DIFFUSERS_SRC" -czf "$data/diffusers-src.tar.gz" diffusers huggingface_hub
fi
total=$(( $(git ls-files -z | xargs -0 cat | wc -c) + $(du -sb .device "$data" 2>/dev/null | awk '{s += $1} END {print s}') ))
echo "travels: $(( total / 1048576 )) MiB of 64 (tracked files + .device + $data)"
(( total < 64 * 1048576 )) || echo "WARNING: over the device tool's 64 MiB: drop DIFFUSERS_SRC or data" >&2
echo "next: run(command=\"bash tools/gpu-check.sh\", carry=[\".device\", \".gpu-check\"], timeout_s=600)"
