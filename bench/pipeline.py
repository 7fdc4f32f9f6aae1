"""End-to-end time of the whole-image pipeline with a per-stage table.

    python bench/pipeline.py IMAGE [--fidelity 0.5] [--upscale 2] [--background-enhance] [--face-upsample]
        [--face-upsample-mode auto|always] [--detector retinaface_mobile0.25] [--models-dir DIR] [--device auto]
        [--precision auto|fp32|bf16] [--no-native-bf16] [--tile 0] [--batch-size N] [--repeat 1] [--json out.json]

Models come from --models-dir (e.g. the official harness's random weights laid out as facerestore_models/,
facedetection/, upscale_models/); without it, random weights in the official formats are built in a temp folder
(a small Real-ESRGAN is then NOT representative: pass real-size files to compare with the official timings).
Stages: detect (RetinaFace), align (working-size resize, face selection, affine warps), restore, parse,
background, face_upsample, paste (the rest of paste-back).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import common  # noqa: E402
from common import sync  # noqa: E402

from codeformer import faces as faces_module  # noqa: E402
from codeformer import models, pipeline, runtime  # noqa: E402
from codeformer.cli.images import read_image  # noqa: E402
from codeformer.runtime import PRECISIONS, resolve_device  # noqa: E402

TIMES: dict[str, float] = defaultdict(float)


def timing(name: str, fn, device: torch.device):
    return common.timing(fn, device, TIMES, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", type=Path)
    ap.add_argument("--fidelity", type=float, default=0.5)
    ap.add_argument("--upscale", type=float, default=2.0)
    ap.add_argument("--background-enhance", action="store_true")
    ap.add_argument("--face-upsample", action="store_true")
    ap.add_argument("--face-upsample-mode", choices=("auto", "always"), default="auto")
    ap.add_argument("--detector", default="retinaface_mobile0.25", choices=sorted(models.DETECTORS))
    ap.add_argument("--models-dir", type=Path, required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto")
    ap.add_argument("--no-native-bf16", action="store_true",
                    help="time 'auto' as on a CPU that runs bf16 no faster than fp32 (upscaler in fp32)")
    ap.add_argument("--tile", type=int, default=0, help="upscaler tile; 0 = auto (the library default)")
    ap.add_argument("--batch-size", type=int, default=None, help="CodeFormer batch; default: from free memory")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    device = resolve_device(args.device)
    if args.no_native_bf16:
        runtime.cpu_runs_bf16_fast = lambda: False
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    root = args.models_dir
    t0 = time.perf_counter()
    codeformer = models.load_codeformer(root / "facerestore_models" / "codeformer.pth")
    detector = models.load_detector(root / "facedetection" / models.DETECTORS[args.detector].file)
    parser = models.load_parser(root / "facedetection" / "parsing_parsenet.pth")
    upscaler = None
    if args.background_enhance or args.face_upsample:
        upscaler = models.load_upscaler(root / "upscale_models" / "RealESRGAN_x2plus.pth")
    load_s = time.perf_counter() - t0
    image = read_image(args.image)

    # time the stages by wrapping the functions the pipeline calls
    faces_module.detect_faces = timing("detect", faces_module.detect_faces, device)
    pipeline.find_faces = timing("find_faces", pipeline.find_faces, device)
    pipeline.restore_found_faces = timing("restore", pipeline.restore_found_faces, device)
    pipeline.parse_masks = timing("parse", pipeline.parse_masks, device)
    pipeline.image_canvas = timing("background", pipeline.image_canvas, device)
    pipeline.face_to_paste = timing("face_upsample", pipeline.face_to_paste, device)
    pipeline.paste_faces = timing("paste", pipeline.paste_faces, device)
    # the device path (CUDA): detection + alignment, canvases, and parse + paste + fit as one stage each
    pipeline.find_faces_on_device = timing("find_faces", pipeline.find_faces_on_device, device)
    pipeline.device_canvases = timing("background", pipeline.device_canvases, device)
    pipeline.paste_on_device = timing("parse_and_paste", pipeline.paste_on_device, device)

    mode = args.face_upsample_mode if args.face_upsample else "off"
    totals = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for run in range(args.repeat + (1 if device.type == "cuda" else 0)):  # one warm-up run on CUDA
        TIMES.clear()
        sync(device)
        start = time.perf_counter()
        settings = pipeline.RestoreSettings(args.fidelity, args.upscale, args.background_enhance,
                                            paste=pipeline.PasteOptions(face_upsample=mode))
        faces = pipeline.restore_images([image], pipeline.Networks(codeformer, detector, parser, upscaler), settings,
                                        tile=args.tile, batch_size=args.batch_size, device=device,
                                        precision=args.precision).faces
        sync(device)
        totals.append(time.perf_counter() - start)
    stages = dict(TIMES)
    stages["align"] = max(0.0, stages.pop("find_faces", 0.0) - stages.get("detect", 0.0))  # find_faces minus detect
    total = totals[-1]
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{args.image.name} {image.shape[1]}x{image.shape[0]}, {len(faces)} faces, -w {args.fidelity} -s {args.upscale}"
          f" background_enhance={args.background_enhance} face_upsample={mode} precision={args.precision}"
          f"{' (as without native bf16)' if args.no_native_bf16 else ''} on {card}")
    print(f"{'stage':<16}{'seconds':>10}")
    for name in ("detect", "align", "restore", "parse", "background", "face_upsample", "paste"):
        print(f"{name:<16}{stages.get(name, 0.0):>10.3f}")
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    print(f"{'total':<16}{total:>10.3f}   (model load {load_s:.2f} s, not included)")
    print(f"{len(faces) / total:.3g} faces/s end to end" + (f", peak GPU memory {peak:.2f} GiB" if peak else ""))
    if args.json:
        args.json.write_text(json.dumps({"image": str(args.image), "device": card, "faces": len(faces),
                                         "settings": vars(args) | {"image": str(args.image), "models_dir": str(root),
                                                                   "json": None, "face_upsample": mode},
                                         "stages": stages, "total_s": total, "runs_s": totals, "peak_gib": peak,
                                         "load_s": load_s}, indent=2, default=str))


if __name__ == "__main__":
    main()
