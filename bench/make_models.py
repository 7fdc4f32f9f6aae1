"""Write a models folder with random weights of the official sizes, for benchmarks (speed ignores the values).

    python bench/make_models.py OUTDIR --detector PATH/TO/detection_mobilenet0.25_Final.pth

OUTDIR gets facerestore_models/codeformer.pth, facedetection/parsing_parsenet.pth,
facedetection/detection_mobilenet0.25_Final.pth (a copy of --detector: a real detector finds real faces)
and upscale_models/RealESRGAN_x2plus.pth (full size: 64 features, 23 blocks).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from weights import codeformer_state_dict, parsenet_state_dict, realesrgan_state_dict, save_pth  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--detector", type=Path, required=True)
    args = ap.parse_args()
    out = args.outdir
    save_pth(codeformer_state_dict(), out / "facerestore_models" / "codeformer.pth", wrap="params_ema")
    save_pth(parsenet_state_dict(), out / "facedetection" / "parsing_parsenet.pth")
    save_pth(realesrgan_state_dict(scale=2, nf=64, nb=23, gc=32), out / "upscale_models" / "RealESRGAN_x2plus.pth",
             wrap="params_ema")
    shutil.copy(args.detector, out / "facedetection" / "detection_mobilenet0.25_Final.pth")


if __name__ == "__main__":
    main()
