"""Synthetic test clips made from real photos, for the video (temporal) work.

Every clip keeps, per frame, the affine that maps source-photo pixels to frame pixels (pixel centres at integer
coordinates, as ``cv2.warpAffine``): the ground truth for landmark jitter (``bench.flicker.truth_landmarks``).

- ``still_clip``: the same photo every frame with fresh noise and a fresh JPEG round trip per frame.
- ``shake_clip``: a hand-held camera: smooth drift, per-frame shake, a slow zoom in and a short fast pan.
- ``write_clip``: H.264 mp4 through PyAV, optionally with an AAC sine tone (the audio path's test clip).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

# The shared test data beside the repository: the same place as tests/weights.py IMAGES.
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "images"

RATE = 25
WINDOW = 0.8  # shake_clip: the crop window at zoom 1, as a share of the photo (margin for shake, pan and drift)
PAN_FRAMES = 4  # shake_clip: frames of the fast pan
PAN_STEP = 0.05  # shake_clip: its motion per frame, as a share of the frame width
TONE_HZ = 440.0
AUDIO_RATE = 48000
AAC_FRAME = 1024  # samples per AAC frame


@dataclass(frozen=True)
class Clip:
    frames: list[np.ndarray]  # (H, W, 3) RGB uint8
    transforms: list[np.ndarray]  # per frame the (2, 3) float64 affine: source-photo pixels -> frame pixels
    rate: int  # frames per second

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames."""
        return self.frames[0].shape[:2]


def load_photo(name: str) -> np.ndarray:
    """A real photo from shared/data/images as RGB uint8 (as the CLI reads it: ``read_image``)."""
    from codeformer.cli.images import read_image

    return read_image(IMAGES / name)


def face_in_frame(size: tuple[int, int], face_px: int, *, blur: float = 12.0, face: str = "aligned_0143.png",
                  background: str = "whole_00.jpg") -> np.ndarray:
    """One clear face: a real aligned face photo scaled to ``face_px``, feathered onto a photo of ``size`` (height,
    width) blurred by ``blur`` px (sigma), a little above the centre. The background photo has a face of its own:
    above 480 px frames it takes a blur of about 5 % of the height for the detector not to find it."""
    h, w = size
    back = cv2.resize(load_photo(background), (w, h), interpolation=cv2.INTER_AREA)
    back = cv2.GaussianBlur(back, (0, 0), blur).astype(np.float32)
    photo = cv2.resize(load_photo(face), (face_px, face_px), interpolation=cv2.INTER_AREA).astype(np.float32)
    ramp = np.minimum(np.arange(face_px), np.arange(face_px)[::-1]) / (0.12 * face_px)
    alpha = np.clip(np.minimum.outer(ramp, ramp), 0, 1)[..., None]
    y0, x0 = (h - face_px) // 2 - 10, (w - face_px) // 2
    region = back[y0 : y0 + face_px, x0 : x0 + face_px]
    back[y0 : y0 + face_px, x0 : x0 + face_px] = alpha * photo + (1 - alpha) * region
    return np.clip(np.rint(back), 0, 255).astype(np.uint8)


def still_clip(photo: np.ndarray, frames: int, *, noise: float = 4.0, jpeg: int | None = 70, seed: int = 0,
               size: tuple[int, int] | None = None, rate: int = RATE) -> Clip:
    """The photo in every frame, with fresh Gaussian noise (sigma in 0..255 units) and a fresh JPEG round trip at
    quality ``jpeg`` (None: none) per frame: the "still face with fresh noise" case.

    ``size`` (height, width): the photo is resized to it; None keeps the photo's size cut down to even sides (what
    yuv420p needs) by dropping the last row / column.
    """
    h, w = photo.shape[:2]
    if size is None:
        base = photo[: h - h % 2, : w - w % 2]
        affine = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    else:
        oh, ow = size
        sx, sy = ow / w, oh / h
        # cv2.resize maps pixel centres: x_out = (x_in + 0.5) * s - 0.5
        affine = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
        base = cv2.resize(photo, (ow, oh), interpolation=cv2.INTER_AREA if sx < 1 and sy < 1 else cv2.INTER_LINEAR)
    rng = np.random.default_rng(seed)
    out = [_degrade(base, rng, noise, jpeg) for _ in range(frames)]
    return Clip(out, [affine.copy() for _ in range(frames)], rate)


def shake_clip(photo: np.ndarray, frames: int, *, shake_px: float = 3.0, zoom: float = 0.15, noise: float = 2.0,
               jpeg: int | None = 80, seed: int = 0, size: tuple[int, int] | None = None, rate: int = RATE) -> Clip:
    """A hand-held camera filming the photo: a crop window warped to a fixed output size (``cv2.warpAffine``,
    border reflect) that moves with a smooth random drift (about 4 x ``shake_px``) plus an independent shake of
    ``shake_px`` (sigma, frame pixels) per frame, zooms in slowly from 1 to ``1 + zoom`` and, somewhere in the
    middle, pans fast (``PAN_FRAMES`` frames of ``PAN_STEP`` = 5 % of the width each: the fast head turn case).
    Then noise and JPEG as ``still_clip``.

    The window at zoom 1 covers ``WINDOW`` (80 %) of the photo; ``size`` (height, width) defaults to that window's
    size made even, so faces keep about their size in the photo.
    """
    ph, pw = photo.shape[:2]
    if size is None:
        size = (int(ph * WINDOW) // 2 * 2, int(pw * WINDOW) // 2 * 2)
    oh, ow = size
    scale0 = max(ow / (pw * WINDOW), oh / (ph * WINDOW))  # frame px per photo px at zoom 1
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float64)
    drift = _drift(rng, frames, 4.0 * shake_px)  # (T, 2) frame px
    shake = rng.normal(0.0, shake_px, (frames, 2))
    pan = np.zeros(frames)
    n_pan = min(PAN_FRAMES, max(frames - 1, 0))
    if n_pan:
        lo = max(1, frames // 3)
        start = int(rng.integers(lo, max(lo, frames - n_pan - frames // 3) + 1))
        start = min(start, frames - n_pan)
        steps = np.clip(t - start + 1, 0, n_pan)  # 0 before the pan, n_pan after it
        pan = (steps - n_pan / 2) * PAN_STEP * ow  # centred: the window stays within the photo's margins
    zooms = 1.0 + zoom * t / max(frames - 1, 1)
    photo_centre = np.array([(pw - 1) / 2, (ph - 1) / 2])
    frame_centre = np.array([(ow - 1) / 2, (oh - 1) / 2])
    out, transforms = [], []
    for i in range(frames):
        s = scale0 * zooms[i]
        move = drift[i] + shake[i] + np.array([pan[i], 0.0])  # camera motion in frame px at zoom 1
        centre = photo_centre + move / scale0  # window centre in photo px
        affine = np.array([[s, 0.0, frame_centre[0] - s * centre[0]], [0.0, s, frame_centre[1] - s * centre[1]]])
        frame = cv2.warpAffine(photo, affine, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        out.append(_degrade(frame, rng, noise, jpeg))
        transforms.append(affine)
    return Clip(out, transforms, rate)


def write_clip(clip: Clip, path: Path, *, audio: bool = False) -> Path:
    """Write the clip as H.264 mp4 (libx264, yuv420p, crf 18) with PyAV; ``audio``: add an AAC track of a sine
    tone lasting the clip's duration. The frames' sides must be even (yuv420p)."""
    import av

    path = Path(path)
    h, w = clip.size
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even frame sides, the clip is {w}x{h}")
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=clip.rate)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"crf": "18"}
        sound = None
        if audio:
            sound = container.add_stream("aac", rate=AUDIO_RATE)
            sound.layout = "mono"
        for frame in clip.frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(video.encode())
        if sound is not None:
            total = round(len(clip.frames) / clip.rate * AUDIO_RATE)
            tone = (0.2 * np.sin(2 * np.pi * TONE_HZ * np.arange(total) / AUDIO_RATE)).astype(np.float32)
            for start in range(0, total, AAC_FRAME):
                chunk = av.AudioFrame.from_ndarray(tone[None, start : start + AAC_FRAME], format="fltp", layout="mono")
                chunk.sample_rate = AUDIO_RATE
                chunk.pts = start
                chunk.time_base = Fraction(1, AUDIO_RATE)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


def _degrade(image: np.ndarray, rng: np.random.Generator, noise: float, jpeg: int | None) -> np.ndarray:
    """Fresh Gaussian noise (sigma, 0..255 units) and a JPEG round trip at quality ``jpeg`` (None: none)."""
    out = image
    if noise > 0:
        out = np.clip(np.rint(image + rng.normal(0.0, noise, image.shape)), 0, 255).astype(np.uint8)
    if jpeg is not None:
        ok, data = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        out = cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(out)


def _drift(rng: np.random.Generator, frames: int, amplitude: float) -> np.ndarray:
    """A smooth random path (T, 2) in px: three slow sinusoids per axis (periods of 1.5 to 6 seconds at 25 fps),
    their sum scaled to about ``amplitude`` at most."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    path = np.zeros((frames, 2))
    for axis in range(2):
        periods = rng.uniform(38.0, 150.0, 3)
        phases = rng.uniform(0.0, 2 * np.pi, 3)
        weights = rng.uniform(0.5, 1.0, 3)
        path[:, axis] = (weights * np.sin(2 * np.pi * t / periods + phases)).sum(1) / weights.sum()
    return amplitude * path
