#!/usr/bin/env bash
# The GPU benchmark as one script (for a lent GPU machine): end to end (issue 15's targets) first, then the CUDA
# tests (the device path's parity on the GPU), network throughput, pipeline stages, precision; each step writes its
# JSON as it ends, so a run cut short keeps what was done. The steps' timeouts add up to 565 s, inside one device
# call's 600 s with the wheels' install; the last step (the official against the lean network forms, 30 s) runs only
# where the others took less than their limits.
# Needs in .benchdata/: retinaface_mobilenet0.25.pth, whole_02.png, crowd.jpg, aligned_*.png; for the CUDA tests
# a ../shared/data with the test detector and photos: bench/gpu_prepare.sh builds both (and the wheels) and gives the
# device command. Results go to $OUT (or bench/results).
set -u
OUT=${OUT:-bench/results}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
step() { echo; echo "=== $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
step models; python3 bench/make_models.py /tmp/bench_models --detector .benchdata/retinaface_mobilenet0.25.pth
step end-to-end
timeout 220 python3 bench/end_to_end.py --models-dir /tmp/bench_models --device cuda --compile \
  --json "$OUT/end_to_end.json"
step cuda-tests
# the device path on the GPU against the OpenCV path on the CPU: photos, and a clip with temporal processing
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/lib/test_device_path.py -k cuda
timeout 60 python3 -m pytest -q -p no:cacheprovider \
  "tests/nodes/test_restore_nodes.py::test_runs_on_gpu_and_models_stay_until_comfy_frees_memory" \
  "tests/lib/test_restore.py::test_compiled_network_is_kept_per_device"
step throughput
timeout 100 python3 bench/restore_throughput.py --device cuda --batches 1,8,16,32,64 --faces 256 --loop-faces 32 \
  --compile --json "$OUT/throughput.json"
step pipeline
run_pipeline() {  # name image flags...
  local name=$1 image=$2; shift 2
  timeout 25 python3 bench/pipeline.py "$image" --models-dir /tmp/bench_models --device cuda --repeat 3 \
    --json "$OUT/pipeline_$name.json" "$@"
}
run_pipeline plain .benchdata/whole_02.png
run_pipeline full_auto .benchdata/whole_02.png --background-enhance --face-upsample --face-upsample-mode auto
run_pipeline crowd_plain .benchdata/crowd.jpg
step precision; timeout 20 python3 bench/check_precision.py .benchdata/aligned_*.png --device cuda | tee "$OUT/precision.json"
step lean-networks; timeout 30 python3 bench/lean_networks.py --device cuda --batch 16 --json "$OUT/lean_networks.json"
