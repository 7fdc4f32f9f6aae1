"""``restore`` on one machine: a single process against ``--ray`` (a local Ray cluster) with 1 and 2 workers, on the
same photos and clip, in one script: wall time per run and whether the outputs are the single run's bytes.

    python bench/ray_overhead.py --models-dir MODELS [--photos 8] [--frames 96] [-s 2] [--out bench/results/ray.json]

MODELS: ``bench/make_models.py``'s folder (random weights, the real detector). Photos: copies of the shared
``whole_*`` photos, ``--max-faces 1 -s S`` (one CodeFormer face each; ``-s 2``: the background upscaled too). Clip:
``--frames`` frames of a panned 192x256 cut of whole_00 (two faces, one restored in every frame, temporal smoothing
on), cut by ``--ray`` into parts of ``--part-frames``. A 2-core machine has nothing to gain from more workers: the
figure is the fixed cost of a Ray run (starting the cluster, the workers loading the models) and that the split clip
is still the single run's clip.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "lib"))  # test_cli_video.make_clip

from common import print_and_save  # noqa: E402
from weights import IMAGES  # noqa: E402

from codeformer.cli.images import read_image  # noqa: E402
from codeformer.video import read_frames  # noqa: E402


def make_inputs(folder: Path, photos: int, frames: int) -> None:
    from test_cli_video import make_clip

    sources = sorted(IMAGES.glob("whole_*"))
    for i in range(photos):
        shutil.copy(sources[i % len(sources)], folder / f"p{i:02d}{sources[i % len(sources)].suffix}")
    base = read_image(sources[0])[:192, :256]
    make_clip(folder / "clip.mp4", [np.roll(np.roll(base, i, axis=1), i // 2, axis=0) for i in range(frames)])


def run(inputs: Path, out: Path, models: Path, scale: float, extra: list[str]) -> float:
    command = [sys.executable, "-m", "codeformer", "restore", str(inputs), "-o", str(out), "--models-dir",
               str(models), "--offline", "--device", "cpu", "--detector", "retinaface_mobile0.25", "-s", str(scale),
               "--max-faces", "1", *extra]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - start


def same(out: Path, single: Path) -> dict[str, bool]:
    said = {}
    for path in sorted(single.iterdir()):
        if path.suffix == ".mp4":
            a, b = list(read_frames(out / path.name)), list(read_frames(path))
            said[path.name] = len(a) == len(b) and all(
                np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
        else:
            said[path.name] = (out / path.name).read_bytes() == path.read_bytes()
    return said


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, required=True)
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--part-frames", type=int, default=32)
    ap.add_argument("-s", "--scale", type=float, default=2.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in"
        inputs.mkdir()
        make_inputs(inputs, args.photos, args.frames)
        runs = {"single process": [], "--ray, 1 worker (2 CPUs)": ["--ray", "--ray-workers", "1"],
                "--ray, 2 workers (1 CPU each)": ["--ray", "--ray-workers", "2"]}
        result: dict = {"cpus": os.cpu_count(), "photos": args.photos, "clip_frames": args.frames,
                        "part_frames": args.part_frames, "scale": args.scale, "runs": {}}
        single = Path(tmp) / "single"
        for name, extra in runs.items():
            out = Path(tmp) / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
            seconds = run(inputs, out, args.models_dir, args.scale, [*extra, "--part-frames", str(args.part_frames)])
            same_bytes = same(out, single) if extra else None
            result["runs"][name] = {"seconds": round(seconds, 1), "outputs_equal_single": same_bytes}
            print(f"{name}: {seconds:.1f} s" + ("" if same_bytes is None else
                  f", outputs equal to the single run: {sum(same_bytes.values())}/{len(same_bytes)}"), flush=True)
            if not extra:
                single = out
    print_and_save(result, args.out)


if __name__ == "__main__":
    main()
