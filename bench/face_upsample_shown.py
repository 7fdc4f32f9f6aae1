"""Face upsample of faces cut by the picture's edge: the upscaler over the whole restored face against only the part
the paste shows (``canvas.shown_part``, the default outside fp32): time of the face upsample, how much of each face
the upscaler computes, and the difference of the final images (the ParseNet mask reads the whole upsampled face:
outside the part shown it sees a Lanczos resize instead of the upscaler's output).

    python bench/face_upsample_shown.py MODELS IMAGE... [--upscale 2] [--precision auto] [--no-parser] [--json F]

MODELS: ``bench/make_models.py``'s folder (random weights, the real detector). Face upsample ``always`` (every face
upscaled), -w 0.5, ParseNet masks, no background enhance (it does not change with this); CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from common import print_and_save  # noqa: E402
from helpers import psnr  # noqa: E402

from codeformer import canvas, models  # noqa: E402
from codeformer.cli.images import read_image  # noqa: E402
from codeformer.pipeline import (  # noqa: E402
    Networks,
    PasteOptions,
    RestoreSettings,
    find_faces,
    image_canvases,
    paste_restored,
    restore_found_faces,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", type=Path)
    ap.add_argument("images", type=Path, nargs="+")
    ap.add_argument("--upscale", type=float, default=2.0)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--no-parser", action="store_true", help="square masks: the difference from the upscaler alone")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    root = args.models
    parser = None if args.no_parser else models.load_parser(root / "facedetection" / "parsing_parsenet.pth")
    networks = Networks(models.load_codeformer(root / "facerestore_models" / "codeformer.pth"),
                        models.load_detector(root / "facedetection" / "detection_mobilenet0.25_Final.pth"), parser,
                        models.load_upscaler(root / "upscale_models" / "RealESRGAN_x2plus.pth"))
    settings = RestoreSettings(0.5, args.upscale, paste=PasteOptions(face_upsample="always"))
    compute = dict(device="cpu", precision=args.precision)
    rows = []
    for path in args.images:
        image = read_image(path)
        found = find_faces(networks.detector, [image], settings.detect)
        restored = restore_found_faces(networks.restorer, found.faces, found.crops, settings.fidelity,
                                       device="cpu", precision=args.precision)
        board = image_canvases([image], found.faces, networks, settings, **compute)[0]
        shown = [canvas.shown_part(face, board.scale, board.scale_y, board.image.shape[:2])
                 for face in found.faces.faces]
        side = round(512 * board.scale)
        share = [1.0 if box is None else (box[2] - box[0]) * (box[3] - box[1]) / side**2 for box in shown]
        results, seconds = {}, {}
        for label, part in (("whole", lambda *a: None), ("shown part", canvas.shown_part)):
            saved = canvas.shown_part
            canvas.shown_part = part
            upsample_s = 0.0
            upscale = canvas.upscale_image

            def timed(*a, **k):
                nonlocal upsample_s
                start = time.perf_counter()
                try:
                    return upscale(*a, **k)
                finally:
                    upsample_s += time.perf_counter() - start

            canvas.upscale_image = timed
            try:
                results[label] = paste_restored([image], found.faces, restored, networks, settings,
                                                **compute)[0].image
            finally:
                canvas.shown_part, canvas.upscale_image = saved, upscale
            seconds[label] = round(upsample_s, 2)
            print(path.name, label, f"face upsample {upsample_s:.2f} s", flush=True)
        diff = np.abs(results["whole"] - results["shown part"])
        rows.append({"image": path.name, "size": list(image.shape[:2]), "faces": len(found.faces.faces),
                     "shown_box_share": [round(s, 3) for s in share], "face_upsample_s": seconds,
                     "psnr_db": round(psnr(results["whole"], results["shown part"]), 1),
                     "mean_abs": round(float(diff.mean()), 5), "max_abs": round(float(diff.max()), 2),
                     "pixels_changed": round(float((diff > 0.5).any(-1).mean()), 5)})
        print(rows[-1], flush=True)
    print_and_save({"cpu": f"{torch.get_num_threads()} threads", "torch": torch.__version__,
                    "settings": {"upscale": args.upscale, "precision": args.precision, "face_upsample": "always",
                                 "parser": not args.no_parser},
                    "rows": rows}, args.json)


if __name__ == "__main__":
    main()
