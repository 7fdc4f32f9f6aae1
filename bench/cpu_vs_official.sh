#!/usr/bin/env bash
# Issue 5's CPU comparison in one run: the official pipeline (tools/official/stage_times.py) beside ours
# (bench/pipeline.py) on the same image with the same random weights, plain and with background + face upsampling.
#   bench/cpu_vs_official.sh [IMAGE] > log      (default ../shared/data/images/whole_02.png; writes $OUT/*.json)
# Needs the official harness (tools/official/README.md: /tmp/codeformer-official, /tmp/official-venv, weights in
# $CF_WEIGHTS or /tmp/official-weights/seed0). Ours runs on those weights (bench/official_models.py).
# ISA=AVX512_CORE_BF16 (or AVX512_CORE, AVX2): both run as on a CPU without AMX (oneDNN's ONEDNN_MAX_CPU_ISA cap, which
# our runtime.cpu_has_amx reads too); the run 'as without native bf16' is then left out.
# NO_FP32=1 leaves out our fp32 runs (the official arithmetic: the official code's speed), where time is short.
# ROUNDS=N adds N interleaved rounds of the two 'full' runs at the end.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="${SHARED:-$HERE/../shared}"
IMAGE="$(realpath "${1:-$SHARED/data/images/whole_02.png}")"
WEIGHTS="$(realpath "${CF_WEIGHTS:-/tmp/official-weights/seed0}")"
PY="${PYTHON:-python3}"
OUT="${OUT:-$HERE/bench/results}"; mkdir -p "$OUT"
if [ -n "${ISA:-}" ]; then export ONEDNN_MAX_CPU_ISA="$ISA"; echo "## ONEDNN_MAX_CPU_ISA=$ISA"; fi
MODELS="$(mktemp -d)"; trap 'rm -rf "$MODELS"' EXIT
"$PY" "$HERE/bench/official_models.py" "$WEIGHTS" "$MODELS"
official() { "${CF_VENV:-/tmp/official-venv}/bin/python" "$SHARED/tools/official/stage_times.py" "$IMAGE" -w 0.5 -s 2 "$@"; }
ours() { "$PY" "$HERE/bench/pipeline.py" "$IMAGE" --models-dir "$MODELS" --detector retinaface_mobile0.25 \
  --fidelity 0.5 --upscale 2 "$@"; }
FULL=(--background-enhance --face-upsample --face-upsample-mode auto)
echo "## official full"; official --bg_upsampler realesrgan --face_upsample
echo "## ours full auto"; ours "${FULL[@]}" --json "$OUT/cpu_pipeline_full_auto.json"
if [ -z "${ISA:-}" ]; then
  echo "## ours full auto, as without native bf16"; ours "${FULL[@]}" --no-native-bf16 \
    --json "$OUT/cpu_pipeline_full_auto_no_native_bf16.json"
fi
[ -n "${NO_FP32:-}" ] || { echo "## ours full fp32"; ours "${FULL[@]}" --precision fp32 --json "$OUT/cpu_pipeline_full_fp32.json"; }
echo "## official plain"; official
echo "## ours plain auto"; ours --json "$OUT/cpu_pipeline_plain_auto.json"
[ -n "${NO_FP32:-}" ] || { echo "## ours plain fp32"; ours --precision fp32 --json "$OUT/cpu_pipeline_plain_fp32.json"; }
# ROUNDS=N: N more rounds of official full / ours full auto, interleaved, where one run each is too noisy (a shared VM)
for round in $(seq 1 "${ROUNDS:-0}"); do
  echo "## round $round official full"; official --bg_upsampler realesrgan --face_upsample
  echo "## round $round ours full auto"; ours "${FULL[@]}" --json "$OUT/cpu_pipeline_full_auto_round$round.json"
done
echo "## done"
