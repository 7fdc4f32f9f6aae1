"""Face upsample of a restored 512 px face with Real-ESRGAN x2: the official 400 px tiles in fp32 (the official
arithmetic) against ``auto`` in 400 px tiles and ``auto`` as one tile (what ``upsample.auto_tile`` picks on the
CPU: whole up to ``CPU_LARGE_TILE`` in fp32 channels_last, ``CPU_WHOLE_SIDE`` in bf16): time, and the difference
to the official output.

    ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python bench/face_upsample_tile.py MODELS   # as on a CPU without AMX

MODELS: ``bench/make_models.py``'s folder (random weights). Faces: the shared aligned faces 0143 and 0240.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from weights import IMAGES  # noqa: E402

from codeformer import models, upsample  # noqa: E402
from codeformer.cli.images import read_image  # noqa: E402


def main() -> None:
    up = models.load_upscaler(Path(sys.argv[1]) / "upscale_models" / "RealESRGAN_x2plus.pth")
    for name in ["aligned_0143.png", "aligned_0240.png"]:
        path = IMAGES / name
        face = read_image(path)
        res = {}
        for label, tile, precision in [("official 400 fp32", 400, "fp32"), ("400 auto", 400, "auto"),
                                       ("whole auto", 512, "auto")]:
            start = time.perf_counter()
            res[label] = upsample.upscale_image(up, face, 2.0, tile=tile, precision=precision).astype(np.float64)
            print(path.name, label, f"{time.perf_counter() - start:.2f} s", flush=True)
        reference = res["official 400 fp32"]
        for label in ["400 auto", "whole auto"]:
            diff = np.abs(res[label] - reference)
            mse = (diff**2).mean()
            psnr = round(10 * np.log10(255**2 / mse), 1) if mse else "inf"
            print(path.name, label, "mean", diff.mean().round(4), "max", diff.max(), "psnr", psnr)


if __name__ == "__main__":
    main()
