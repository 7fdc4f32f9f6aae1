"""Host time of the face tracker (``tracking.FaceTracker``: matching, filling, landmark smoothing relative to the
camera's motion) and of the per-track selection (``temporal.select_tracked``) per frame, on a synthetic crowd:
``--faces`` faces on a grid with 1 px jitter, the camera moving every frame. A clip tracks every face whatever the
selection, so a crowd costs this much host time a frame even with ``max_faces 1``.

    python bench/tracking_crowd.py [--faces 85] [--frames 60] [--json out.json]

Numpy only (no networks); the detections are made before the clock starts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import print_and_save  # noqa: E402

from codeformer.detect import Detection  # noqa: E402
from codeformer.faces import DetectOptions  # noqa: E402
from codeformer.temporal import select_tracked  # noqa: E402
from codeformer.tracking import FaceTracker, TrackOptions  # noqa: E402

FRAME = (600, 600)


def crowd(faces: int, frames: int, seed: int = 0) -> list[list[Detection]]:
    """``faces`` 40 px faces on a 60 px grid, each frame's boxes and landmarks jittered by 1 px."""
    rng = np.random.default_rng(seed)
    places = [(x * 60.0, y * 60.0) for x in range(10) for y in range(10)][:faces]
    eyes_nose_mouth = np.array([[12, 15], [28, 15], [20, 22], [14, 30], [26, 30]], np.float32)
    clip = []
    for _ in range(frames):
        found = []
        for x, y in places:
            dx, dy = rng.normal(0, 1, 2)
            found.append(Detection((x + dx, y + dy, x + 40 + dx, y + 40 + dy), 0.9,
                                   eyes_nose_mouth + np.float32([x + dx, y + dy])))
        clip.append(found)
    return clip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=85, help="at most 100")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    clip = crowd(args.faces, args.frames)
    motion = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]])
    rows = []
    for label, options in (("all", DetectOptions()), ("max_faces 1", DetectOptions(max_faces=1))):
        tracker = FaceTracker(TrackOptions())
        selecting = 0.0
        start = time.perf_counter()
        for found in [*clip, None]:
            done = tracker.finish() if found is None else tracker.push(found, motion)
            for faces in done:
                began = time.perf_counter()
                select_tracked(faces, FRAME, options)
                selecting += time.perf_counter() - began
        seconds = time.perf_counter() - start
        rows.append({"selection": label, "ms_per_frame": round(1000 * seconds / args.frames, 2),
                     "select_ms_per_frame": round(1000 * selecting / args.frames, 3)})
        print(args.faces, "faces,", label, rows[-1], flush=True)
    print_and_save({"faces": args.faces, "frames": args.frames, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
