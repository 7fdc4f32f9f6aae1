#!/usr/bin/env bash
# Builds, in a checkout, what bench/gpu_run.sh needs on a lent GPU machine (which has torch but no registry):
#   .whl/        wheels of the pack's pure-Python dependencies the machine lacks
#   .benchdata/  the real detector and test photos for the benchmarks
#   .gpu_carry/  shared/data for the CUDA tests (tests read ../shared/data)
# Run here from the repository root; SHARED defaults to ../shared. The three folders are ignored by git
# (.git/info/exclude). Then, on the device (carry .whl .benchdata .gpu_carry):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && export PYTHONPATH=/tmp/site || exit; [ -e ../shared ] || ln -s "$PWD/.gpu_carry/shared" ../shared;
#   set -o pipefail; OUT=$OUT bash bench/gpu_run.sh 2>&1 | tee $OUT/gpu_run.log
set -eu
SHARED=${SHARED:-../shared}
PY=${PYTHON:-python3}
for d in .whl .benchdata .gpu_carry; do grep -qx "/$d/" .git/info/exclude || echo "/$d/" >> .git/info/exclude; done
mkdir -p .whl .benchdata .gpu_carry/shared/data/weights .gpu_carry/shared/data/images
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  facexlib==0.3.0 spandrel==0.4.2 spandrel_extra_arches==0.2.0
"$PY" -m pip wheel -q --no-deps -w .whl filterpy==1.4.5  # sdist only on PyPI: pure Python, built here
cp "$SHARED/data/weights/retinaface_mobilenet0.25.pth" .benchdata/
cp "$SHARED"/data/images/{whole_02.png,crowd.jpg,aligned_0143.png,aligned_0240.png,aligned_0342.png,aligned_Solvay_conference_1927_0018.png} .benchdata/
cp "$SHARED/data/weights/retinaface_mobilenet0.25.pth" .gpu_carry/shared/data/weights/
cp "$SHARED"/data/images/{whole_00.jpg,whole_01.jpg,whole_02.png,aligned_0143.png,aligned_0342.png} .gpu_carry/shared/data/images/
du -sh .whl .benchdata .gpu_carry
