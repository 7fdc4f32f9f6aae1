"""RSS of ``restore_clip`` over a long 1080p clip, sampled as it runs (current and peak), in one process.

Frames: a noisy gradient with an aligned face pasted every 25th frame (cheap to restore: the point is whether
memory grows with the clip's length). Run it with and without glibc's fixed mmap threshold, as the CLI sets it
(``cli.memory.map_large_buffers``), to see the heap's creep:

    python bench/clip_rss.py 350                                   # glibc default
    MALLOC_MMAP_THRESHOLD_=1048576 python bench/clip_rss.py 350    # what the CLI sets
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import weights  # noqa: E402

from bench.clips import load_photo  # noqa: E402
from bench.common import random_codeformer  # noqa: E402
from codeformer.models import load_detector  # noqa: E402
from codeformer.pipeline import Networks, RestoreSettings  # noqa: E402
from codeformer.temporal import TemporalOptions, restore_clip  # noqa: E402


def memory_mb() -> tuple[int, int]:
    """(current, peak) resident memory of this process in MB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) // 1024
    return values["VmRSS"], values["VmHWM"]


def frames(count: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(0)
    base = np.linspace(40, 200, 1920, dtype=np.float32)[None, :, None] * np.ones((1080, 1, 3), np.float32)
    face = cv2.resize(load_photo("aligned_0143.png"), (200, 200), interpolation=cv2.INTER_AREA)
    for i in range(count):
        frame = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
        if i % 25 == 0:
            frame[200:400, 300 + i % 500 : 500 + i % 500] = face
        yield frame


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 350
    networks = Networks(random_codeformer(), load_detector(weights.REAL_DETECTOR))
    for frame in restore_clip(frames(count), networks, RestoreSettings(upscale=1.0), TemporalOptions()):
        if frame.index % 50 == 0:
            print(f"frame {frame.index}: RSS {memory_mb()[0]} MB, peak {memory_mb()[1]} MB", flush=True)


if __name__ == "__main__":
    main()
