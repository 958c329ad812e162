#!/usr/bin/env bash
# Every GPU figure in one go, within 10 minutes on one H100 / H200 (80+ GB).
#
#   bash benchmarks/gpu_check.sh          # JSON under benchmarks/results/gpu/ (OUT=dir to change)
#
# Needs the package with a GPU JAX: `pip install -e ".[cuda13,test]"`. For the PEFT side on the
# GPU, PyTorch with CUDA (without it the PEFT columns are skipped, not run on the CPU).
#   1. the memory-lever tests on the GPU (remat, scan, microbatching, bfloat16)      ~1 min
#   2. T5 1.1 XL, batch 32, 512 + 100 inputs, 16 targets, bfloat16: our step against
#      PEFT's (goal <= 0.5x), step time, MFU, peak device memory, XLA's plan          ~3 min
#   3. T5 1.1 XXL prompt tuning on this one GPU: bfloat16 frozen weights, full remat,
#      scanned layers; real peak memory beside XLA's plan (does it fit 80 GB?)        ~3 min
# A step that fails or runs out of time is reported and the next one still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
FAILED=()
step() {  # step SECONDS NAME COMMAND...
  local limit=$1 name=$2; shift 2
  echo "=== $name"
  if ! timeout "$limit" "$@"; then FAILED+=("$name"); echo "=== $name: FAILED or timed out"; fi
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python -c "import jax; d = jax.devices(); print(d); assert d[0].platform == 'gpu', d" || exit 1
SIDES=ours,peft
python -c "import torch; assert torch.cuda.is_available()" 2>/dev/null || {
  SIDES=ours; echo "PyTorch has no CUDA here: PEFT's side is skipped"; }
COMMON=(--batch 32 --inputs 512 --prompt_length 100 --targets 16 --dtype bfloat16 --scan)

step 120 "memory levers on GPU" python -m pytest -q -x -p no:cacheprovider \
  tests/test_memory_levers.py -k "every_lever or microbatch or bfloat16"
step 240 "XL vs PEFT" python benchmarks/vs_peft.py --size xl "${COMMON[@]}" --remat minimal \
  --sides "$SIDES" --rounds 1 --steps 5 --json_out "$OUT/vs_peft_xl.json"
step 240 "XXL on one GPU" python benchmarks/vs_peft.py --size xxl "${COMMON[@]}" --remat full \
  --sides ours --rounds 1 --steps 2 --json_out "$OUT/fit_xxl.json"

if [ ${#FAILED[@]} -gt 0 ]; then echo "failed: ${FAILED[*]}"; exit 1; fi
echo "all GPU checks done; figures in $OUT"
