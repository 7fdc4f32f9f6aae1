"""Batched RetinaFace (``codeformer.detect_batch``) against the per-image ``detect_faces``, frame by frame.

    python bench/detect_batch.py [--frames 4] [--device cpu] [--out bench/measured/detect_batch.md]

Per case: a batch of frames of one photo at one size (frame 0 the photo, the others shifted by a fraction of a
pixel with Gaussian noise), detected once as a batch and once per frame; the table gives the faces found, whether
count and order agree, the largest box, landmark and score deviations, and both wall times. Also the resize itself:
levels by which the torch resizes (ours, F.interpolate's) differ from ``cv2.resize`` (see ``detect_batch.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench.clips import load_photo  # noqa: E402
from codeformer.detect import Detection, detect_faces, detection_size  # noqa: E402
from codeformer.detect_batch import detect_batch  # noqa: E402
from codeformer.device_resize import resize_like_cv2  # noqa: E402
from codeformer.image import to_working  # noqa: E402

# (photo, frame size (height, width) or None for the photo's working image): both resizes, an exact halving
# (OpenCV's integer INTER_AREA path), a crowd of 85 faces.
CASES = [
    ("whole_02.png", None),  # 645x1204: shrunk by 0.992
    ("whole_02.png", (1280, 2390)),  # shrunk by exactly 0.5
    ("crowd.jpg", None),  # 898x1600: shrunk by 0.713
    ("whole_00.jpg", None),  # working 512x811: enlarged by 1.25
    ("whole_01.jpg", None),  # working 512x672: enlarged by 1.25
]


def batch_frames(photo: np.ndarray, count: int, size: tuple[int, int] | None = None, seed: int = 0) -> list[np.ndarray]:
    """``count`` frames of ``photo`` (resized to ``size``, else its working image): the first as it is, the others
    shifted by up to 1.5 px with Gaussian noise (sigma 3 levels), as consecutive video frames."""
    if size is None:
        base = to_working(photo)
    else:
        grow = size[0] > photo.shape[0]
        base = cv2.resize(photo, size[::-1], interpolation=cv2.INTER_LINEAR if grow else cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    frames = [base]
    for _ in range(count - 1):
        shift = np.float32([[1, 0, rng.uniform(-1.5, 1.5)], [0, 1, rng.uniform(-1.5, 1.5)]])
        moved = cv2.warpAffine(base, shift, base.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
        frames.append(np.clip(moved + rng.normal(0, 3, moved.shape), 0, 255).round().astype(np.uint8))
    return frames


def deviation(batch: list[Detection], single: list[Detection]) -> dict[str, float]:
    """Largest differences between two detection lists of the same length, face by face in their order."""
    if len(batch) != len(single):
        raise ValueError(f"{len(batch)} faces in the batch, {len(single)} alone")
    box = points = score = 0.0
    for a, b in zip(batch, single, strict=True):
        box = max(box, float(np.abs(np.subtract(a.box, b.box)).max()))
        points = max(points, float(np.abs(a.landmarks - b.landmarks).max()))
        score = max(score, abs(a.score - b.score))
    return {"box": box, "landmarks": points, "score": score}


def resize_levels(image: np.ndarray) -> dict[str, tuple[int, float]]:
    """(max, mean) |torch - cv2| in levels for each candidate resize of ``image`` to its detection size."""
    scale, (width, height) = detection_size(image.shape[:2])
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    if scale < 1:
        ref = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        candidates = {
            "area matrices (ours)": resize_like_cv2(x, height, width, True),
            "F.interpolate area": F.interpolate(x, (height, width), mode="area"),
            "bilinear antialias": F.interpolate(x, (height, width), mode="bilinear", antialias=True),
        }
    else:
        ref = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        candidates = {
            "fixed-point bilinear (ours)": resize_like_cv2(x, height, width, False),
            "F.interpolate bilinear": F.interpolate(x, (height, width), mode="bilinear", align_corners=False),
        }
    out = {}
    for name, y in candidates.items():
        got = y.round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
        diff = np.abs(got - ref.astype(np.float32))
        out[name] = (int(diff.max()), float(diff.mean()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "measured" / "detect_batch.md")
    args = parser.parse_args()
    from weights import REAL_DETECTOR

    from codeformer.models import load_detector

    detector = load_detector(REAL_DETECTOR)
    device = torch.device(args.device)
    lines = [
        "# Batched RetinaFace vs per-image detect_faces",
        "",
        f"Made by `python bench/detect_batch.py --frames {args.frames} --device {args.device}` (torch "
        f"{torch.__version__}, OpenCV {cv2.__version__}); real RetinaFace mobilenet0.25. Deviations are maxima "
        "over all frames and faces (px in frame pixels; score in 0..1).",
        "",
        "| photo | frame size | faces per frame | count + order | box | landmarks | score | batch s | per frame s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    resize_rows = []
    for name, size in CASES:
        frames = batch_frames(load_photo(name), args.frames, size)
        start = time.perf_counter()
        batched = detect_batch(detector, frames, device=device)
        middle = time.perf_counter()
        single = [detect_faces(detector, frame, device=device) for frame in frames]
        end = time.perf_counter()
        worst = {"box": 0.0, "landmarks": 0.0, "score": 0.0}
        agree = all(len(a) == len(b) for a, b in zip(batched, single, strict=True))
        if agree:
            for a, b in zip(batched, single, strict=True):
                worst = {k: max(v, deviation(a, b)[k]) for k, v in worst.items()}
        counts = ",".join(str(len(found)) for found in single)
        lines.append(f"| {name} | {frames[0].shape[0]}x{frames[0].shape[1]} | {counts} | {'yes' if agree else 'NO'} "
                     f"| {worst['box']:.4f} | {worst['landmarks']:.4f} | {worst['score']:.2e} | {middle - start:.2f} "
                     f"| {end - middle:.2f} |")
        for method, (top, mean) in resize_levels(frames[0]).items():
            size_text = f"{frames[0].shape[0]}x{frames[0].shape[1]}"
            resize_rows.append(f"| {name} | {size_text} | {method} | {top} | {mean:.4f} |")
        print(lines[-1], flush=True)
    lines += ["", "Resize of frame 0 to the detection size against `cv2.resize` (uint8 levels):", "",
              "| photo | frame size | resize | max | mean |", "|---|---|---|---|---|", *resize_rows, ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
