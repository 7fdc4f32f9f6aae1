"""Paste-back geometry at any upscale: the unrestored crops pasted back must give the plain upscaled background.

    python bench/paste_roundtrip.py [IMAGE ...] [--scales 1.37 1.5 2] [--detector PATH]

For each image and scale: find the faces (real RetinaFace mobilenet0.25), paste their aligned crops back unrestored
onto the bilinear-upscaled image, and compare with that background inside the pasted area (mask > 0.5; what is left
is the resampling of the two warps) and outside it (must be identical). Default images: whole_02.png cut to 1203 px
wide (a short side of 645 px: pasted on the background itself) and whole_00.jpg (491x310: pasted on the enlarged
working image, then brought back).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeformer.cli.images import read_image  # noqa: E402
from codeformer.models import load_detector  # noqa: E402
from codeformer.pipeline import find_faces, paste_back, upscale_backgrounds  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="*", type=Path)
    ap.add_argument("--scales", nargs="+", type=float, default=[1.37, 1.5, 2.0])
    ap.add_argument("--detector", type=Path, default=SHARED / "weights" / "retinaface_mobilenet0.25.pth")
    args = ap.parse_args()
    detector = load_detector(args.detector)
    if args.images:
        images = {path.name: read_image(path) for path in args.images}
    else:
        wide = read_image(SHARED / "images" / "whole_02.png")
        images = {"whole_02.png[:, :1203]": np.ascontiguousarray(wide[:, :1203]),
                  "whole_00.jpg": read_image(SHARED / "images" / "whole_00.jpg")}
    print(f"{'image':<24}{'scale':>6}{'output':>12}{'inside dB':>11}{'inside mean':>13}{'outside max':>13}")
    for name, image in images.items():
        found = find_faces(detector, [image])
        for scale in args.scales:
            background = upscale_backgrounds([image], scale)[0]
            result = paste_back([background], found.faces, found.crops)[0]
            inside, outside = result.mask > 0.5, result.mask == 0
            diff = result.image - background.astype(np.float32)
            psnr = 10 * np.log10(255**2 / float((diff[inside] ** 2).mean()))
            size = f"{background.shape[1]}x{background.shape[0]}"
            print(f"{name:<24}{scale:>6g}{size:>12}{psnr:>11.2f}{np.abs(diff[inside]).mean():>13.3f}"
                  f"{np.abs(diff[outside]).max():>13.3f}")


if __name__ == "__main__":
    main()
