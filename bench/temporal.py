"""Temporal processing on vs off on one clip, in the same run: flicker metrics, speed, the issue's targets.

    python bench/temporal.py --synthetic still|shake [--frames 24] [--fidelity 0.5] [--face-window 3] [--out F.json]
    python bench/temporal.py --clip VIDEO [--frames 24] ...

The same frames go through ``temporal.restore_clip`` twice in one process: temporal off (``None``: each frame as a
still image) and on (``TemporalOptions()`` defaults; ``--face-window 1``: without the face blend), with the same
networks: CodeFormer and ParseNet with RANDOM
weights in the official formats (real weights cannot be downloaded here), the real RetinaFace mobilenet0.25
detector, ``-s 1``, no upscaler. ``--synthetic`` builds the clip with ``bench/clips.py`` from one real aligned face
placed in a 480x640 frame on a blurred photo (ground truth known: landmark error is measured too).

Per face track (the off run's faces are linked by box overlap between consecutive frames): landmark jitter (the
landmarks used for alignment, source px), landmark error against the truth (synthetic clips), aligned-crop change,
restored-crop change, code flip rate (the off run's codes: its crops encoded once more by the same network, outside
the timing); per run: output flicker in the paste masks, frames/s of the restore, peak RSS (process-wide, so the
second run's figure includes the first's). With random weights, code flips and output flicker show the mechanism,
not the size of the effect with the real model.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from clips import IMAGES, Clip, face_in_frame, shake_clip, still_clip  # noqa: E402
from common import random_codeformer  # noqa: E402
from flicker import (  # noqa: E402
    code_flip_rate,
    crop_change,
    landmark_error,
    landmark_jitter,
    region_flicker,
    truth_landmarks,
)
from weights import parsenet_state_dict, save_pth  # noqa: E402

from codeformer import models  # noqa: E402
from codeformer.align import estimate_affine, warp_face  # noqa: E402
from codeformer.codes import encode, pick_codes  # noqa: E402
from codeformer.faces import find_faces  # noqa: E402
from codeformer.geometry import working_scale  # noqa: E402
from codeformer.image import to_working  # noqa: E402
from codeformer.pipeline import Networks, RestoreSettings  # noqa: E402
from codeformer.restore import network_input, placed_network, run_settings  # noqa: E402
from codeformer.runtime import PRECISIONS, bf16_autocast, resolve_device  # noqa: E402
from codeformer.temporal import TemporalOptions, restore_clip  # noqa: E402
from codeformer.types import Face  # noqa: E402

DETECTOR = IMAGES.parent / "weights" / "retinaface_mobilenet0.25.pth"
FRAME = (480, 640)  # synthetic frames (height, width)
FACE_PX = 240  # side of the aligned face photo in the synthetic frame
TARGETS = {"crop_change": 0.7, "region_flicker": 0.75, "code_flip_rate": 0.5, "seconds": 1.15}
STILL_FLICKER_TARGET = 0.5
MIN_IOU = 0.3  # off run: a face continues the track of the previous frame's face it overlaps this much
NOTE = ("The CodeFormer and ParseNet weights are RANDOM (the real weights cannot be downloaded here); the detector is "
        "the real RetinaFace mobilenet0.25. Landmark and aligned-crop figures are those of the real pipeline; code "
        "flip rate and output flicker show the mechanism of the code smoothing, not the size of its effect with the "
        "real CodeFormer (random weights pick codes far less stably).")


def synthetic_photo() -> np.ndarray:
    """One clear face: the aligned face photo scaled to FACE_PX on a blurred photo of FRAME size."""
    return face_in_frame(FRAME, FACE_PX)


def load_networks(detector: Path) -> Networks:
    with tempfile.TemporaryDirectory() as tmp:
        parser = models.load_parser(save_pth(parsenet_state_dict(), Path(tmp) / "parsing_parsenet.pth"))
    return Networks(random_codeformer(), models.load_detector(detector), parser, None)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_by_overlap(frames: list[list[Face]]) -> list[list[int]]:
    """Track numbers for untracked faces: each face continues the track of the previous frame's face it overlaps
    most (at least MIN_IOU, each previous face used once), else starts a new track."""
    out: list[list[int]] = []
    previous: list[tuple[int, tuple[float, ...]]] = []
    count = 0
    for faces in frames:
        free = list(previous)
        numbers = []
        for face in faces:
            best = max(free, key=lambda p: iou(p[1], face.box), default=None)
            if best is not None and iou(best[1], face.box) >= MIN_IOU:
                free.remove(best)
                numbers.append(best[0])
            else:
                numbers.append(count)
                count += 1
        out.append(numbers)
        previous = [(n, f.box) for n, f in zip(numbers, faces, strict=True)]
    return out


def run_clip(frames: list[np.ndarray], networks: Networks, settings: RestoreSettings,
             temporal: TemporalOptions | None, device: torch.device, precision: str) -> dict:
    """Consume ``restore_clip`` (timed) and keep what the metrics need."""
    kept: dict[str, list] = {"faces": [], "crops": [], "restored": [], "codes": [], "images": [], "masks": []}
    start = time.perf_counter()
    for frame in restore_clip(frames, networks, settings, temporal, device=device, precision=precision):
        kept["faces"].append(list(frame.faces.faces))
        kept["crops"].append(frame.crops)
        kept["restored"].append(frame.restored)
        kept["codes"].append(frame.codes)
        kept["images"].append(frame.image.image)
        kept["masks"].append(frame.image.mask)
    kept["seconds"] = time.perf_counter() - start
    kept["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return kept


def codes_of(networks: Networks, crops: np.ndarray, device: torch.device, precision: str) -> np.ndarray:
    """The codebook picks CodeFormer makes for ``crops`` [n, 512, 512, 3]: encoder + transformer, then the picks
    under the same precision and layout as the restore (``codes.encode`` / ``pick_codes``)."""
    run = run_settings(networks.restorer, device, precision, 1)
    net = placed_network(networks.restorer, run)
    out = np.empty((len(crops), 256), np.int64)
    with torch.inference_mode():
        for i, crop in enumerate(crops):
            x = network_input(torch.from_numpy(crop[None]).permute(0, 3, 1, 2).to(device), run.fmt)
            with bf16_autocast(run.device, run.bf16):
                out[i] = pick_codes(encode(net, x, keep_features=False).logits)[0, :, 0].cpu().numpy()
    return out


def track_metrics(run: dict, truth: np.ndarray | None) -> dict[int, dict]:
    """Per track: frames, landmark jitter / error (source px), aligned / restored crop change, code flip rate."""
    rows: dict[int, dict[str, list]] = {}
    for t, (faces, crops, restored, codes) in enumerate(zip(run["faces"], run["crops"], run["restored"],
                                                            run["codes"], strict=True)):
        for j, (face, number) in enumerate(zip(faces, run["tracks"][t], strict=True)):
            row = rows.setdefault(number, {"frames": [], "landmarks": [], "crops": [], "restored": [], "codes": []})
            row["frames"].append(t)
            row["landmarks"].append(face.source_landmarks)
            row["crops"].append(crops[j])
            row["restored"].append(restored[j])
            row["codes"].append(codes[j])
    out = {}
    for number, row in rows.items():
        n = len(row["frames"])
        landmarks = np.stack(row["landmarks"])
        metrics: dict = {"frames": n, "first_frame": row["frames"][0],
                         "gaps": int(row["frames"][-1] - row["frames"][0] + 1 - n)}
        if n >= 3:
            metrics["landmark_jitter"] = landmark_jitter(landmarks)
        if truth is not None:
            metrics["landmark_error"] = landmark_error(landmarks, truth[row["frames"]])
        if n >= 2:
            metrics["crop_change"] = crop_change(np.stack(row["crops"]))
            metrics["restored_change"] = crop_change(np.stack(row["restored"]))
            metrics["code_flip_rate"] = code_flip_rate(np.stack(row["codes"]))
        out[number] = metrics
    return out


def summary(run: dict, tracks: dict[int, dict], frames: int) -> dict:
    """The run's figures: track metrics averaged over tracks weighted by their frames, output flicker, speed."""
    out: dict = {}
    for key in ("landmark_jitter", "landmark_error", "crop_change", "restored_change", "code_flip_rate"):
        values = [(m[key], m["frames"]) for m in tracks.values() if key in m]
        if values:
            out[key] = sum(v * n for v, n in values) / sum(n for _, n in values)
    out["region_flicker"] = region_flicker(run["images"], run["masks"])
    out["seconds"] = run["seconds"]
    out["frames_per_s"] = frames / run["seconds"]
    out["peak_rss_mib"] = run["peak_rss_mib"]
    out["faces"] = sum(len(f) for f in run["faces"])
    out["tracks"] = len(tracks)
    return out


def truth_crop_change(frames: list[np.ndarray], truth: np.ndarray) -> float:
    """``crop_change`` of crops aligned on the ground-truth landmarks (no detector jitter at all): the floor that the
    clip's fresh noise, JPEG and resampling leave, which no landmark smoothing can remove."""
    crops = [warp_face(to_working(frame), estimate_affine(points * working_scale(frame.shape[:2])))
             for frame, points in zip(frames, truth, strict=True)]
    return crop_change(np.stack(crops))


def machine(device: torch.device) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    info = {"cpu": cpu, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--clip", type=Path, help="any video file (read with codeformer.video.read_frames)")
    source.add_argument("--synthetic", choices=("still", "shake"))
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--fidelity", type=float, default=0.5)
    ap.add_argument("--detector", type=Path, default=DETECTOR)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto")
    ap.add_argument("--seed", type=int, default=0, help="synthetic clip's noise and motion")
    ap.add_argument("--face-window", type=int, default=TemporalOptions.face_window,
                    help="temporal on: frames whose restored faces are blended per track (1 = no face blend)")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (e.g. bench/measured/NAME.json)")
    args = ap.parse_args()
    device = resolve_device(args.device)

    t0 = time.perf_counter()
    networks = load_networks(args.detector)
    load_s = time.perf_counter() - t0
    truth = None
    if args.synthetic:
        photo = synthetic_photo()
        make = still_clip if args.synthetic == "still" else shake_clip
        clip: Clip = make(photo, args.frames, seed=args.seed, size=FRAME)
        frames = clip.frames
        clean = find_faces(networks.detector, [photo], device=device).faces
        if len(clean) != 1:
            raise SystemExit(f"the synthetic photo should hold one face, the detector finds {len(clean)}")
        truth = truth_landmarks(clean.faces[0].source_landmarks, clip.transforms)
        name = f"synthetic {args.synthetic} (aligned_0143.png at {FACE_PX} px in {FRAME[1]}x{FRAME[0]})"
    else:
        from codeformer.video import read_frames

        frames = []
        for frame in read_frames(args.clip):
            frames.append(frame.image)
            if len(frames) == args.frames:
                break
        name = str(args.clip)
    settings = RestoreSettings(fidelity=args.fidelity, upscale=1.0)
    temporal = TemporalOptions(face_window=args.face_window)

    # warm-up (one frame, untimed): one-time costs (allocator, oneDNN kernels) would otherwise fall on the first run
    list(restore_clip(frames[:1], networks, settings, None, device=device, precision=args.precision))
    runs = {"off": run_clip(frames, networks, settings, None, device, args.precision),
            "on": run_clip(frames, networks, settings, temporal, device, args.precision)}
    off = runs["off"]
    off["tracks"] = link_by_overlap(off["faces"])
    off["codes"] = [codes_of(networks, crops, device, args.precision) for crops in off["crops"]]
    runs["on"]["tracks"] = [[face.track for face in faces] for faces in runs["on"]["faces"]]

    per_track = {key: track_metrics(run, truth) for key, run in runs.items()}
    results = {key: summary(run, per_track[key], len(frames)) for key, run in runs.items()}
    floor = None if truth is None else truth_crop_change(frames, truth)
    faces_per_frame = {key: [len(f) for f in run["faces"]] for key, run in runs.items()}
    targets = dict(TARGETS)
    if args.synthetic == "still":
        targets["region_flicker"] = STILL_FLICKER_TARGET
    ratios = {key: results["on"][key] / results["off"][key] for key in results["off"]
              if key in results["on"] and isinstance(results["off"][key], float) and results["off"][key] > 0}

    h, w = frames[0].shape[:2]
    print(f"{name}: {len(frames)} frames {w}x{h}, faces per frame off {sorted(set(faces_per_frame['off']))} "
          f"on {sorted(set(faces_per_frame['on']))}, -w {args.fidelity} -s 1, precision {args.precision}, "
          f"face window {temporal.face_window}, "
          f"random CodeFormer/ParseNet weights, real detector")
    print(f"{'metric':<22}{'off':>10}{'on':>10}{'on/off':>9}{'target':>9}  ok")
    rows = ("landmark_jitter", "landmark_error", "crop_change", "restored_change", "code_flip_rate", "region_flicker",
            "seconds", "frames_per_s", "peak_rss_mib")
    passed = {}
    for key in rows:
        if key not in results["off"] or key not in results["on"]:
            continue
        ratio = ratios.get(key)
        target = targets.get(key)
        ok = "" if target is None or ratio is None else ("yes" if ratio <= target else "NO")
        if target is not None and ratio is not None:
            passed[key] = ratio <= target
        print(f"{key:<22}{results['off'][key]:>10.4g}{results['on'][key]:>10.4g}"
              f"{'' if ratio is None else f'{ratio:.3f}':>9}{'' if target is None else f'<= {target}':>9}  {ok}")
    if floor is not None:
        print(f"crop change of crops aligned on the true landmarks (noise/JPEG floor): {floor:.4g}")
    print(f"(peak RSS is process-wide: the 'on' figure includes the 'off' run; model load {load_s:.1f} s)")
    print(NOTE)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "clip": name, "frames": len(frames), "size": [h, w], "note": NOTE,
            "settings": {"fidelity": args.fidelity, "upscale": 1.0, "upscaler": None, "precision": args.precision,
                         "device": str(device), "seed": args.seed, "synthetic": args.synthetic,
                         "clip_path": None if args.clip is None else str(args.clip), "detector": str(args.detector),
                         "temporal_on": {"code_window": temporal.code_window, "face_window": temporal.face_window,
                                         "frames_per_chunk": temporal.frames_per_chunk,
                                         "tracking": vars(temporal.tracking)},
                         "off_codes": "crops of the off run encoded again (codes.encode + pick_codes), not timed",
                         "off_tracks": f"faces linked by box overlap >= {MIN_IOU} between consecutive frames"},
            "machine": machine(device), "date": datetime.date.today().isoformat(), "load_s": load_s,
            "faces_per_frame": faces_per_frame, "results": results, "ratios_on_off": ratios,
            "crop_change_truth_aligned": floor, "targets": targets,
            "passed": passed, "per_track": {key: {str(k): v for k, v in t.items()} for key, t in per_track.items()},
            "peak_rss_note": "ru_maxrss is process-wide: the 'on' figure is the peak of both runs",
        }, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
