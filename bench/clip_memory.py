"""Peak memory of the CLI on a long 1080p clip against a short one: streaming must not grow with the clip's length.

Builds two 1080p H.264 clips of N and 4N frames (a noisy gradient with a small aligned face on every
``--face-every``-th frame, so that the frames are cheap to restore: the point is the growth, not the restore),
runs ``python -m codeformer restore CLIP -o OUT -s 1`` on each in a fresh process and reports the peak RSS of each
run (the child's ``ru_maxrss``) and their ratio. Target (issue 14): the 4N-frame clip <= 1.2x the N-frame clip.

    python bench/clip_memory.py --models-dir /path/with/facerestore_models+facedetection [--frames 150]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.clips import Clip, load_photo, write_clip  # noqa: E402

SIZE = (1080, 1920)  # height, width
FACE_SIDE = 200  # px of the pasted aligned face


def make_clip(frames: int, face_every: int, seed: int = 0) -> Clip:
    """1080p frames: a noisy gradient, and every ``face_every``-th frame an aligned face drifting across."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    ramp = np.linspace(40, 200, w, dtype=np.float32)[None, :, None]
    base = np.broadcast_to(ramp, (h, w, 3)).astype(np.float32)
    face = cv2.resize(load_photo("aligned_0143.png"), (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)
    images, transforms = [], []
    for i in range(frames):
        frame = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
        if i % face_every == 0:
            x = 200 + (i * 7) % (w - FACE_SIDE - 400)
            frame[400 : 400 + FACE_SIDE, x : x + FACE_SIDE] = face
        images.append(frame)
        transforms.append(np.eye(2, 3))
    return Clip(images, transforms, 25)


# Runs its arguments as a child and prints the child's exit code and peak RSS (ru_maxrss, KB). Linux starts a
# child's peak RSS at its parent's (fork copies the counters; vfork + exec records the parent's peak), and this
# script held the whole clip in memory to write it: measured from here, the CLI's peak was this script's (600
# frames: 4671 MB). Forked from this small launcher, the CLI's peak is its own.
LAUNCHER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mb(clip: Path, out: Path, models_dir: Path) -> tuple[float, float]:
    """Peak RSS (MB) and wall time (s) of the CLI restoring ``clip`` in a child process."""
    cmd = [sys.executable, "-m", "codeformer", "restore", str(clip), "-o", str(out), "-s", "1",
           "--models-dir", str(models_dir), "--detector", "retinaface_mobile0.25", "--offline", "--overwrite"]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          stdout=subprocess.PIPE, text=True, check=True)
    code, peak_kb = (int(word) for word in done.stdout.split()[-2:])
    if code != 0:
        raise SystemExit(f"the CLI failed on {clip} (exit {code})")
    return peak_kb / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=150, help="frames of the short clip (the long one: 4x)")
    parser.add_argument("--face-every", type=int, default=25)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "measured" / "cpu_clip_memory.json")
    args = parser.parse_args()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for frames in (args.frames, 4 * args.frames):
            path = write_clip(make_clip(frames, args.face_every), Path(tmp) / f"clip_{frames}.mp4")
            rss, wall = peak_rss_mb(path, Path(tmp) / "out", args.models_dir)
            runs[frames] = {"peak_rss_mb": round(rss, 1), "wall_s": round(wall, 1),
                            "faces": len(range(0, frames, args.face_every))}
            print(f"{frames} frames of 1920x1080 ({runs[frames]['faces']} faces): peak RSS {rss:.0f} MB, "
                  f"{wall:.0f} s", flush=True)
    short, long = runs[args.frames], runs[4 * args.frames]
    ratio = long["peak_rss_mb"] / short["peak_rss_mb"]
    print(f"peak RSS {4 * args.frames} / {args.frames} frames: {ratio:.3f}x (target <= 1.2x)")
    result = {"runs": runs, "ratio": round(ratio, 3), "target": 1.2, "command": "restore CLIP -o OUT -s 1",
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d")}
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
