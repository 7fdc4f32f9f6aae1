"""Recommended settings for a video clip: the image rules of ``advisor`` on a few frames, plus what steadies video.

A clip is judged on frames sampled evenly across it (its shot rarely changes faster than that, and detection on
every frame would cost as much as a pass of the restore). The settings are those of the clip's typical frame (the
median face share among frames with faces), with two changes for video:

- fidelity at least ``VIDEO_FIDELITY``: a lower fidelity lets CodeFormer invent more detail per frame, and invented
  detail is what differs from frame to frame (the CodeFormer author advises w near 1 for steady video, CodeFormer
  issue #17);
- temporal processing on (tracked faces, smoothed landmarks, smoothed codes, ``temporal``).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from .advisor import Advice, advise_image, check_source
from .errors import InputError
from .temporal import TemporalOptions
from .types import FaceDetector

VIDEO_FIDELITY = 0.7  # the lowest fidelity advised for video (see the module docstring)
SAMPLE_FRAMES = 8  # frames of a clip the advice looks at


@dataclass(frozen=True)
class ClipAdvice:
    """Recommended restore settings for a clip, with the frames they were measured on."""

    advice: Advice  # the settings, as for an image; reason covers the clip
    frames_sampled: int
    frames_with_faces: int
    temporal: bool  # restore the frames as a clip (tracking, smoothing)
    code_window: int  # frames whose codes are averaged

    def as_dict(self) -> dict:
        """JSON-ready dict: the image advice's fields, then the clip's."""
        return {**self.advice.as_dict(), "temporal": self.temporal, "code_window": self.code_window,
                "frames_sampled": self.frames_sampled, "frames_with_faces": self.frames_with_faces}


def sample_indices(count: int, samples: int = SAMPLE_FRAMES) -> list[int]:
    """``samples`` frame numbers spread evenly over a clip of ``count`` frames (all of them when it is shorter)."""
    if count <= 0:
        return []
    if count <= samples:
        return list(range(count))
    return sorted({round(i * (count - 1) / (samples - 1)) for i in range(samples)})


def advise_clip(frames: Sequence[np.ndarray], detector: FaceDetector, source: str = "ai_generated",
                device: torch.device | str = "cpu") -> ClipAdvice:
    """Settings for the clip the ``frames`` ((H, W, 3) RGB uint8, sampled from it in order) come from."""
    check_source(source)
    return clip_advice([advise_image(frame, detector, source, device=device) for frame in frames])


def clip_advice(per_frame: Sequence[Advice]) -> ClipAdvice:
    """The clip's settings from the advice on each of its sampled frames."""
    if len(per_frame) == 0:
        raise InputError("no frames to advise on: the clip has no decodable frame")
    with_faces = [a for a in per_frame if a.faces]
    window = TemporalOptions.code_window
    if not with_faces:
        reason = f"no face in {len(per_frame)} sampled frame(s): the clip is only upscaled; {per_frame[0].reason}"
        return ClipAdvice(replace(per_frame[0], reason=reason), len(per_frame), 0, False, window)
    median = statistics.median_low(a.face_share for a in with_faces)
    typical = next(a for a in with_faces if a.face_share == median)
    fidelity = max(typical.fidelity, VIDEO_FIDELITY)
    fidelity_why = (f"CodeFormer fidelity raised to {fidelity:g} for video: lower values invent detail that changes "
                    "from frame to frame (flicker)" if fidelity > typical.fidelity else
                    f"CodeFormer fidelity {fidelity:g} (already steady enough for video)")
    reason = "; ".join((f"faces in {len(with_faces)} of {len(per_frame)} sampled frames, typical frame: "
                        f"{typical.reason}", fidelity_why,
                        f"temporal on: faces tracked, landmarks and codes smoothed over {window} frames"))
    return ClipAdvice(replace(typical, fidelity=fidelity, reason=reason), len(per_frame), len(with_faces), True,
                      window)


__all__ = ["SAMPLE_FRAMES", "VIDEO_FIDELITY", "ClipAdvice", "advise_clip", "clip_advice", "sample_indices"]
