"""End-to-end throughput (detect -> paste) through the library's public calls: issue 15's GPU targets.

    python bench/end_to_end.py --models-dir DIR [--device auto] [--group whole_02.png] [--group-side 1024]
        [--group-frames 64] [--batches 8,16,32] [--loop-frames 8] [--clip-frames 120] [--clip-size 1080x1920]
        [--face-px 400] [--compile] [--json out.json]

Rows, each after a warm-up call (its time is ``first_call_s``; with ``--compile`` that is the compile):
- ``loop``: one-face frames (``--clip-size`` frames of ``bench/clips.face_in_frame``) through ``restore_images``
  one at a time in fp32: the baseline the issue's ">= 8x" is measured against;
- ``group bN``: a group photo (4+ faces) scaled to ``--group-side`` px (the issue's "batches of 512-1024 px
  frames"), ``--group-frames`` noisy copies through ``restore_images`` N frames per call, precision ``auto``
  (bf16 on GPUs): faces/s end to end (the issue: >= 250 on an H100/H200);
- ``group bN compiled``: the largest batch again with the network compiled (``compile_on_gpu``);
- ``clip off`` / ``clip on``: a one-face clip of ``--clip-size`` (the issue: 1080p, >= 60 frames/s) through
  ``temporal.restore_clip``, temporal processing off (each frame as a still image) and on (the defaults);
- ``stages``: the group batch and the clip with temporal on once more, each stage timed (device synchronised
  around every call, so the sum is a little above the plain run).
Every row has its peak device memory (CUDA). Models from ``--models-dir`` (``bench/make_models.py``: random
CodeFormer / ParseNet weights, the real detector); speed does not depend on the weights' values, but how many
faces are found does: the real detector is needed. ParseNet masks are on (the pack's default), -s 1, no upscaler.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from clips import face_in_frame, load_photo, still_clip  # noqa: E402
from common import print_and_save, sync, timing  # noqa: E402

from codeformer import codes, face_blend, models, pipeline, temporal  # noqa: E402
from codeformer.pipeline import Networks, RestoreSettings, restore_images  # noqa: E402
from codeformer.runtime import resolve_device  # noqa: E402
from codeformer.temporal import TemporalOptions, restore_clip  # noqa: E402

DETECTOR = "retinaface_mobile0.25"  # the detector bench/make_models.py copies (the real one)
# (module, function name, stage): what the stages pass wraps; a stage adds up every call
STAGES = [
    (pipeline, "find_faces_on_device", "detect+align"), (pipeline, "find_faces", "detect+align"),
    (pipeline, "restore_found_faces", "restore"), (pipeline, "paste_restored", "parse+paste"),
    (temporal, "detect_on_device", "detect"), (temporal, "detect_image", "detect"),
    (temporal, "align_on_device", "align"), (temporal, "align_faces", "align"),
    (temporal, "paste_restored", "parse+paste"), (codes, "encode", "restore"), (codes, "decode_codes", "restore"),
    (face_blend, "blend_face", "face blend"), (face_blend, "blend_face_torch", "face blend"),
]


def timed(run: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - start


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def stage_timers(device: torch.device) -> tuple[dict[str, float], Callable[[], None]]:
    """Wrap every ``STAGES`` function (synchronised, timed); returns the totals and the undo."""
    totals: dict[str, float] = {}
    saved = [(module, name, getattr(module, name)) for module, name, _ in STAGES]

    for (module, name, fn), (_, _, stage) in zip(saved, STAGES, strict=True):
        setattr(module, name, timing(fn, device, totals, stage))

    def undo() -> None:
        for module, name, fn in saved:
            setattr(module, name, fn)

    return totals, undo


def parse_size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", type=Path, required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--group", default="whole_02.png", help="a photo with 4+ faces in shared/data/images")
    ap.add_argument("--group-side", type=int, default=1024, help="the group photo's long side, px")
    ap.add_argument("--group-frames", type=int, default=64)
    ap.add_argument("--batches", default="8,16,32", help="frames per restore_images call")
    ap.add_argument("--loop-frames", type=int, default=8)
    ap.add_argument("--clip-frames", type=int, default=120)
    ap.add_argument("--clip-size", type=parse_size, default=(1080, 1920), help="HEIGHTxWIDTH")
    ap.add_argument("--face-px", type=int, default=400, help="the clip's face, px")
    ap.add_argument("--fidelity", type=float, default=0.5)
    ap.add_argument("--compile", action="store_true", help="also the largest group batch with the network compiled")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    root = args.models_dir
    codeformer = models.load_codeformer(root / "facerestore_models" / "codeformer.pth")
    networks = Networks(codeformer, models.load_detector(root / "facedetection" / models.DETECTORS[DETECTOR].file),
                        models.load_parser(root / "facedetection" / "parsing_parsenet.pth"))
    settings = RestoreSettings(args.fidelity, 1.0)

    group_photo = load_photo(args.group)
    factor = args.group_side / max(group_photo.shape[:2])
    group_size = (round(group_photo.shape[0] * factor), round(group_photo.shape[1] * factor))
    group = still_clip(cv2.resize(group_photo, group_size[::-1], interpolation=cv2.INTER_AREA),
                       args.group_frames, seed=1).frames
    clip = still_clip(face_in_frame(args.clip_size, args.face_px, blur=0.05 * args.clip_size[0]), args.clip_frames,
                      seed=2).frames
    rows: list[dict[str, Any]] = []

    def record(name: str, frames: list[np.ndarray], per_call: int, run_all: Callable[[], int], first: float,
               extra: dict | None = None) -> None:
        reset_peak(device)
        faces = 0

        def counted() -> None:
            nonlocal faces
            faces = run_all()

        seconds = timed(counted, device)
        row = {"row": name, "frames": len(frames), "frame_size": list(frames[0].shape[:2]), "per_call": per_call,
               "faces": faces, "seconds": seconds, "frames_per_s": len(frames) / seconds,
               "faces_per_s": faces / seconds, "first_call_s": first, "peak_gib": peak_gib(device)} | (extra or {})
        rows.append(row)
        print(json.dumps(row), flush=True)

    def images_run(frames: list[np.ndarray], batch: int, model=codeformer, precision: str | None = None) -> int:
        nets = dataclasses.replace(networks, restorer=model)
        return sum(len(restore_images(frames[i : i + batch], nets, settings, device=device,
                                      precision=precision).faces) for i in range(0, len(frames), batch))

    def clip_run(frames: list[np.ndarray], options: TemporalOptions | None) -> int:
        return sum(len(frame.faces) for frame in restore_clip(iter(frames), networks, settings, options,
                                                              device=device))

    # the baseline: one one-face frame per call, fp32
    loop = clip[: args.loop_frames]
    first = timed(lambda: images_run(loop[:1], 1, precision="fp32"), device)
    record("loop fp32", loop, 1, lambda: images_run(loop, 1, precision="fp32"), first)
    batches = [int(b) for b in args.batches.split(",")]
    for batch in batches:
        first = timed(lambda b=batch: images_run(group[:b], b), device)
        record(f"group b{batch}", group, batch, lambda b=batch: images_run(group, b), first)
    for name, options in (("clip off", None), ("clip on", TemporalOptions())):
        first = timed(lambda o=options: clip_run(clip[:16], o), device)
        record(name, clip, TemporalOptions.frames_per_chunk, lambda o=options: clip_run(clip, o), first)

    for name, run, frames in ((f"stages group b{batches[-1]}", lambda: images_run(group, batches[-1]), group),
                              ("stages clip on", lambda: clip_run(clip, TemporalOptions()), clip)):
        totals, undo = stage_timers(device)
        try:
            record(name, frames, 0, run, 0.0)
        finally:
            undo()
        rows[-1]["stages_s"] = dict(totals)

    if args.compile:
        compiled = dataclasses.replace(codeformer, compile=True, compiled={})
        batch = batches[-1]
        first = timed(lambda: images_run(group[:batch], batch, compiled), device)
        record(f"group b{batch} compiled", group, batch, lambda: images_run(group, batch, compiled), first)

    loop_rate = rows[0]["faces_per_s"]
    for row in rows:
        row["x_loop"] = row["faces_per_s"] / loop_rate if loop_rate else None
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"\nend to end on {card}, torch {torch.__version__}: -w {args.fidelity} -s 1, ParseNet masks, no upscaler")
    print(f"{'row':<26}{'frames':>7}{'faces':>7}{'seconds':>9}{'frames/s':>10}{'faces/s':>9}{'x loop':>8}"
          f"{'1st s':>8}{'peak GiB':>9}")
    for r in rows:
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        print(f"{r['row']:<26}{r['frames']:>7}{r['faces']:>7}{r['seconds']:>9.2f}{r['frames_per_s']:>10.1f}"
              f"{r['faces_per_s']:>9.1f}{r['x_loop']:>8.1f}{r['first_call_s']:>8.1f}{peak:>9}")
        if "stages_s" in r:
            print("    " + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(r["stages_s"].items())))
    if args.json:
        print_and_save({"device": card, "torch": torch.__version__, "settings": vars(args) | {
            "models_dir": str(root), "json": None, "clip_size": list(args.clip_size)}, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
