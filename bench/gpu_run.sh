#!/usr/bin/env bash
# The GPU benchmark as one script (for a lent GPU machine): throughput, precision, pipeline stages.
# Needs in .benchdata/: retinaface_mobilenet0.25.pth, whole_02.png, aligned_*.png. Results go to $OUT (or bench/results).
set -u
OUT=${OUT:-bench/results}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 bench/make_models.py /tmp/bench_models --detector .benchdata/retinaface_mobilenet0.25.pth
python3 bench/check_precision.py .benchdata/aligned_*.png --device cuda | tee "$OUT/precision.json"
python3 bench/restore_throughput.py --device cuda --batches 1,8,16,32,64 --faces 256 --loop-faces 32 --compile --json "$OUT/throughput.json"
for flags in "" "--background-enhance --face-upsample --face-upsample-mode auto" "--background-enhance --face-upsample --face-upsample-mode always"; do
  python3 bench/pipeline.py .benchdata/whole_02.png --models-dir /tmp/bench_models --device cuda --repeat 3 $flags
done
