"""Temporal landmark filters on synthetic face tracks with known ground truth: which one, at which sigma.

    python bench/landmark_smoothing.py [--seeds 40] [--out bench/measured/landmark_smoothing.md]

Each scenario moves a 5-point face (eye distance 30-80 px, yaw modelled with point depths) and adds detector-like
jitter (1 px shared by the 5 points plus 1 px per point, per axis): a still face, a constant-velocity pan, a fast
head turn (yaw 0 -> 50 degrees in 5 frames and back), an abrupt start and stop (0 -> 12 px/frame), a zoom (eye
distance x3) and a hand-held wobble with 15 % of the detections missing (gaps of 1-3 frames, filled by linear
interpolation before smoothing, as the tracker does). Every filter sees the same noisy tracks; the table gives the
RMS error against the truth (all frames, the frames around a sudden change of motion, the first and last 2 frames of
each track), the flicker (mean |second difference| of the error over time, px), the end lag of the pan (frames
behind at the last frame, ahead at the first) and the look-ahead each filter needs with ``max_gap=3``. The last row
runs ``codeformer.tracking.FaceTracker`` with its default options end to end and must match its filter's row.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codeformer.tracking import (  # noqa: E402
    RADIUS_SIGMAS,
    FaceTracker,
    TrackOptions,
    fit_weights,
    guard,
)

# Face template in eye distances: left eye, right eye, nose, mouth left, mouth right; depth toward the camera.
TEMPLATE = np.array([[-0.5, -0.3], [0.5, -0.3], [0.0, 0.25], [-0.4, 0.75], [0.4, 0.75]])
DEPTH = np.array([0.0, 0.0, 0.6, 0.15, 0.15])
MAX_GAP = 3


@dataclass
class Run:
    name: str
    truth: np.ndarray  # (T, 5, 2)
    seen: np.ndarray  # (T,) bool: detected
    noisy: np.ndarray  # (T, 5, 2): truth + jitter
    fast: np.ndarray  # (T,) bool: near a sudden change of motion


def face(center: np.ndarray, eye: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(T, 5, 2) landmarks of a face at ``center`` (T, 2), eye distance ``eye`` (T,), yaw in radians (T,)."""
    x = TEMPLATE[None, :, 0] * np.cos(yaw)[:, None] + DEPTH[None, :] * np.sin(yaw)[:, None]
    y = np.broadcast_to(TEMPLATE[None, :, 1], x.shape)
    return center[:, None, :] + eye[:, None, None] * np.stack([x, y], axis=-1)


def scenario(name: str, rng: np.random.Generator) -> Run:
    n = 90
    t = np.arange(n, dtype=np.float64)
    eye = np.full(n, rng.uniform(30, 80))
    center = np.tile(rng.uniform(200, 800, 2), (n, 1))
    yaw = np.zeros(n)
    seen = np.ones(n, dtype=bool)
    if name == "pan":
        angle = rng.uniform(0, 2 * math.pi)
        center = center + np.outer(t, rng.uniform(2, 6) * np.array([math.cos(angle), math.sin(angle)]))
    elif name == "head turn":
        start, sign = int(rng.integers(20, 35)), rng.choice([-1.0, 1.0])
        ramp = np.clip((t - start) / 5, 0, 1) - np.clip((t - start - 30) / 5, 0, 1)
        yaw = sign * math.radians(50) * ramp
        center = center + np.outer(ramp * sign * 0.5 * eye[0], [1.0, 0.0])
    elif name == "start-stop":
        start = int(rng.integers(20, 35))
        steps = np.where((t >= start) & (t < start + 25), 12.0, 0.0)
        center = center + np.outer(np.cumsum(steps), [1.0, 0.0])
    elif name == "zoom":
        eye = rng.uniform(25, 35) * 3 ** (t / (n - 1))
    elif name == "misses":
        for axis in range(2):
            period = rng.uniform(40, 100)
            center[:, axis] += 10 * np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi))
        frame = 1
        while frame < n - 4:
            if rng.random() < 0.15 / 2:
                gap = int(rng.integers(1, MAX_GAP + 1))
                seen[frame : frame + gap] = False
                frame += gap + 1
            else:
                frame += 1
    truth = face(center, eye, yaw)
    noise = rng.normal(0, 1.0, (n, 1, 2)) + rng.normal(0, 1.0, (n, 5, 2))
    accel = np.zeros(n)
    accel[1:-1] = np.abs(truth[2:] - 2 * truth[1:-1] + truth[:-2]).max(axis=(1, 2))
    fast = np.convolve((accel > 0.5).astype(float), np.ones(7), mode="same") > 0
    return Run(name, truth, seen, truth + noise, fast)


def filled(run: Run) -> np.ndarray:
    """The noisy track with its missed frames linearly interpolated (the scenarios' gaps are <= MAX_GAP)."""
    out = run.noisy.copy()
    known = np.flatnonzero(run.seen)
    for p in range(5):
        for c in range(2):
            out[:, p, c] = np.interp(np.arange(len(out)), known, run.noisy[known, p, c])
    return out


Filter = Callable[[np.ndarray], np.ndarray]


def windowed(sigma: float, radius: int, weights: Callable[[np.ndarray, float], np.ndarray], fraction: float) -> Filter:
    def apply(points: np.ndarray) -> np.ndarray:
        out = np.empty_like(points)
        n = len(points)
        for i in range(n):
            frames = np.arange(max(0, i - radius), min(n, i + radius + 1))
            smooth = np.tensordot(weights(frames - float(i), sigma), points[frames], axes=1)
            out[i] = guard(smooth, points[i], fraction) if fraction > 0 else smooth
        return out

    return apply


def gaussian_weights(offsets: np.ndarray, sigma: float) -> np.ndarray:
    w = np.exp(-0.5 * (offsets / sigma) ** 2)
    return w / w.sum()


def candidates() -> dict[str, tuple[int, Filter]]:
    """name -> (smoothing radius, filter)."""
    out: dict[str, tuple[int, Filter]] = {"raw": (0, lambda p: p)}
    for sigma in (1.5, 2.5, 5.0):
        r = math.ceil(3 * sigma)
        out[f"centred Gaussian, sigma {sigma:g}, radius {r}"] = (r, windowed(sigma, r, gaussian_weights, 0))
    out["centred Gaussian, sigma 2.5, radius 8, guard 0.1"] = (8, windowed(2.5, 8, gaussian_weights, 0.1))
    for sigma in (1.5, 2.5, 3.5, 5.0):
        r = math.ceil(RADIUS_SIGMAS * sigma)
        out[f"local linear, sigma {sigma:g}, radius {r}"] = (r, windowed(sigma, r, fit_weights, 0))
    for sigma, fraction in ((2.5, 0.05), (2.5, 0.1), (2.5, 0.2), (3.5, 0.1), (5.0, 0.1)):
        r = math.ceil(RADIUS_SIGMAS * sigma)
        name = f"local linear, sigma {sigma:g}, radius {r}, guard {fraction:g}"
        out[name] = (r, windowed(sigma, r, fit_weights, fraction))
    return out


def tracker_filter(points: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """FaceTracker's default options end to end on one track (boxes from the points; misses as empty frames)."""
    from codeformer.detect import Detection

    frames = []
    for i in range(len(points)):
        if not seen[i]:
            frames.append([])
            continue
        lo, hi = points[i].min(axis=0), points[i].max(axis=0)
        pad = (hi - lo).max() * 0.5
        box = (float(lo[0] - pad), float(lo[1] - pad), float(hi[0] + pad), float(hi[1] + pad))
        frames.append([Detection(box, 0.99, points[i].astype(np.float32))])
    tracker = FaceTracker(TrackOptions())
    out = [f for frame in frames for f in tracker.push(frame)] + tracker.finish()
    if any(len(f) != 1 or f[0].track != 0 for f in out):
        raise RuntimeError("the tracker lost or split the synthetic track")
    return np.stack([f[0].landmarks for f in out]).astype(np.float64)


def metrics(runs: list[Run], estimates: list[np.ndarray]) -> dict[str, float]:
    sq = {name: [] for name in ("all", "fast", "ends")} | {r.name: [] for r in runs}
    flicker, lag = [], []
    for run, est in zip(runs, estimates, strict=True):
        err = est - run.truth
        per_frame = (err**2).sum(axis=2).mean(axis=1)  # mean squared point error per frame
        sq["all"].append(per_frame)
        sq[run.name].append(per_frame)
        sq["fast"].append(per_frame[run.fast])
        sq["ends"].append(per_frame[[0, 1, -2, -1]])
        flicker.append(np.abs(err[2:] - 2 * err[1:-1] + err[:-2]).mean())
        if run.name == "pan":
            v = (run.truth[1] - run.truth[0]).mean(axis=0)
            speed2 = float(v @ v)
            lag.append((-(err[-1].mean(axis=0) @ v) + err[0].mean(axis=0) @ v) / (2 * speed2))
    out = {k: float(np.sqrt(np.concatenate(v).mean())) for k, v in sq.items()}
    out["flicker"] = float(np.mean(flicker))
    out["pan end lag"] = float(np.mean(lag))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "measured" / "landmark_smoothing.md")
    args = parser.parse_args()
    names = ["still", "pan", "head turn", "start-stop", "zoom", "misses"]
    rng = np.random.default_rng(0)
    runs = [scenario(name, rng) for name in names for _ in range(args.seeds)]
    inputs = [filled(run) for run in runs]
    rows = []
    for label, (radius, fn) in candidates().items():
        rows.append((label, radius + MAX_GAP, metrics(runs, [fn(p) for p in inputs])))
    default = TrackOptions()
    tracked = [tracker_filter(run.noisy, run.seen) for run in runs]
    look = FaceTracker(default).lookahead
    rows.append((f"FaceTracker default (sigma {default.landmark_sigma:g}, max_gap {default.max_gap})", look,
                 metrics(runs, tracked)))
    cols = ["all", "fast", "ends", *names, "flicker", "pan end lag"]
    lines = [
        f"# Landmark smoothing on synthetic tracks ({args.seeds} tracks per scenario, 90 frames each)",
        "",
        "Made by `python bench/landmark_smoothing.py` (scenarios and columns: its docstring). RMS point errors in px"
        " against the truth; flicker: mean |second difference over time| of the error, px; pan end lag in frames;"
        " look-ahead with max_gap 3.",
        "",
        "| filter | look-ahead | " + " | ".join(f"RMS {c}" if c in names or c in ("all", "fast", "ends") else c
                                          for c in cols) + " |",
        "|---|" + "---:|" * (len(cols) + 1),
    ]
    for label, look_ahead, m in rows:
        lines.append(f"| {label} | {look_ahead} | " + " | ".join(f"{m[c]:.2f}" for c in cols) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
