"""Output flicker with each track's paste mask averaged over time, against today's per-frame masks, in one run.

    python bench/mask_smoothing.py [--synthetic still|shake] [--frames 12] [--windows 1 3 5] [--json F]

The clip of ``bench/temporal.py`` (its synthetic clips, the real RetinaFace, random CodeFormer / ParseNet weights,
``-s 1``) is restored once with the temporal defaults. Then the restored crops are pasted again onto the frames
with their ParseNet masks (aligned 512 space) averaged over a centred window of ``w`` frames of the same track
(fewer at the track's ends); window 1 must give exactly the restore's own output (checked). A second row averages
the restored crops themselves over the window (output-space smoothing, a deviation from per-frame restoration;
shown as a bound, it ghosts real motion). Reported: output flicker in the face region (``flicker.region_flicker``)
and the mean difference to the per-frame-mask output. Random weights: the figures compare schemes, they do not
predict the size of the effect with the real weights (a trained ParseNet's masks of one face hardly change).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from clips import shake_clip, still_clip  # noqa: E402
from common import print_and_save  # noqa: E402
from flicker import region_flicker  # noqa: E402
from temporal import DETECTOR, FRAME, load_networks, synthetic_photo  # noqa: E402

from codeformer.canvas import PasteResult, fit_output  # noqa: E402
from codeformer.parse import parse_masks  # noqa: E402
from codeformer.paste import FacePlacement, paste_faces  # noqa: E402
from codeformer.pipeline import RestoreSettings, image_canvases  # noqa: E402
from codeformer.temporal import TemporalOptions, restore_clip  # noqa: E402


def centred_means(values: list[np.ndarray], tracks: list[int], window: int) -> list[np.ndarray]:
    """Each value averaged with those of the same track within ``window // 2`` positions (a list in frame order)."""
    reach = window // 2
    out = []
    for i, track in enumerate(tracks):
        near = [values[j] for j in range(max(0, i - reach), min(len(values), i + reach + 1)) if tracks[j] == track]
        out.append(np.mean(near, axis=0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", choices=("still", "shake"), default="still")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--fidelity", type=float, default=0.5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    networks = load_networks(DETECTOR)
    make = still_clip if args.synthetic == "still" else shake_clip
    frames = make(synthetic_photo(), args.frames, seed=0, size=FRAME).frames
    settings = RestoreSettings(fidelity=args.fidelity, upscale=1.0)
    done = list(restore_clip(frames, networks, settings, TemporalOptions()))
    if any(len(frame.faces) != 1 for frame in done):
        raise SystemExit(f"expected one face per frame, got {[len(frame.faces) for frame in done]}")
    tracks = [frame.faces.faces[0].track for frame in done]
    restored = [frame.restored[0] for frame in done]
    masks = parse_masks(networks.parser, restored)
    own = [frame.image.image for frame in done]
    canvases = [image_canvases([source], frame.faces, networks, settings)[0]
                for source, frame in zip(frames, done, strict=True)]

    def pasted(crops: list[np.ndarray], parse: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        images, regions = [], []
        for frame, canvas, crop, mask in zip(done, canvases, crops, parse, strict=True):
            placement = FacePlacement(crop, frame.faces.faces[0].inverse, mask)
            image, region = paste_faces(canvas.image, [placement], canvas.scale, scale_y=canvas.scale_y)
            result = fit_output(PasteResult(image, region), canvas)
            images.append(result.image)
            regions.append(result.mask)
        return images, regions

    rows: dict[str, dict[str, float]] = {}
    for window in args.windows:
        for what in ("masks", "masks + crops"):
            if what == "masks + crops" and window == 1:
                continue
            crops = restored if what == "masks" else [np.rint(c).astype(np.uint8)
                                                     for c in centred_means(restored, tracks, window)]
            images, regions = pasted(crops, centred_means(masks, tracks, window))
            if window == 1 and any(not np.array_equal(a, b) for a, b in zip(images, own, strict=True)):
                worst = max(float(np.abs(a - b).max()) for a, b in zip(images, own, strict=True))
                raise SystemExit(f"window 1 does not reproduce the restore's own output (max difference {worst})")
            rows[f"{what}, window {window}"] = {
                "flicker": round(region_flicker(images, regions), 3),
                "mean_change_vs_per_frame": round(float(np.mean([np.abs(a - b).mean() for a, b in
                                                                 zip(images, own, strict=True)])), 3),
                "mask_flicker": round(float(np.mean([np.abs(a - b).mean() for a, b in
                                                     zip(regions[1:], regions[:-1], strict=True)])), 4),
            }
    print_and_save({"clip": args.synthetic, "frames": args.frames, "fidelity": args.fidelity, "rows": rows},
                   args.json)


if __name__ == "__main__":
    main()
