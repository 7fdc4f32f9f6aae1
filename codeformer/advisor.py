"""Recommended CodeFormer settings for an image, from the rules of "Best settings for CodeFormer for face restoration".

The article's rules, keyed on the kind of shot and on where the image comes from:

- close-up (a face fills a large share of the frame): fidelity 1.0, because lower values over-smooth the skin
  and change the eyes (how open they are, their colour);
- wide shot (small faces, much background, several people): fidelity matters little and enhancing the
  background pays off;
- real photo: fidelity above 0.6 (0.7 here) and face upsampling on, or the skin is over-smoothed;
- AI-generated image: CodeFormer does best here; the default 0.5 is fine unless it is a close-up.

The shot is classified by the *face share*: the area of the largest RetinaFace box (clipped to the image) over
the image area. The thresholds were measured on real photos and ComfyUI template images (docs/best_settings.md).
The rules work on boxes alone; ``advise_image`` runs the face detector first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError
from .faces import find_faces
from .geometry import Box
from .restore import Fidelity
from .types import FACE_UPSAMPLE_ABOVE, Face, FaceDetector, Faces

SOURCES = ("ai_generated", "photo")
SHOTS = ("close_up", "medium", "wide", "no_face")

# A RetinaFace box covers brow to chin; an aligned 512 crop of a face (hair and a margin included) has a box share
# of 0.34-0.39. At 0.15 the face crop CodeFormer repaints covers ~40% of the frame: head-and-shoulders and tighter.
CLOSE_UP_SHARE = 0.15
# A head is about 1/7-1/8 of a standing body, so a full-length figure gives a box side ~1/7 of the frame or less
# (share <= 0.02; the shares measured on real shots are in docs/best_settings.md).
WIDE_SHARE = 0.02
# "Several people": a group of this many faces is a wide shot even when the largest face is medium-sized.
GROUP_FACES = 3

CLOSE_UP_FIDELITY = 1.0  # close-ups: lower values over-smooth skin and change the eyes
PHOTO_FIDELITY = 0.7  # real photos need more than 0.6 or the skin is over-smoothed
DEFAULT_FIDELITY = 0.5  # AI-generated images: CodeFormer's default works well

DEFAULT_UPSCALE = 2  # CodeFormer's own default output scale
# Images whose long side is at least this are not enlarged: 2x would give >= 4096 px (beyond 4K UHD) at 4x the cost;
# native outputs of current image models (512-1536 px) still get 2x.
LARGE_IMAGE_SIDE = 2048
# Side of the aligned 512 crop over the side (sqrt of the area) of its RetinaFace box: median 1.61 (5-95%:
# 1.46-1.76) over 232 detected faces. Used to estimate the pasted face size from a box.
CROP_PER_BOX = 1.6


@dataclass(frozen=True)
class Advice:
    """Recommended restore settings for one image, with the measurements they come from."""

    faces: int  # faces detected
    face_share: float  # area of the largest face box / image area (0 without faces)
    shot: str  # close_up | medium | wide | no_face
    fidelity: float  # CodeFormer weight w: 0 = quality, 1 = fidelity to the input
    background_enhance: bool  # upscale the background with Real-ESRGAN
    face_upsample: bool  # upscale the restored faces with Real-ESRGAN before pasting
    upscale: int  # output scale of the whole image
    reason: str  # one line: why these settings

    def as_dict(self) -> dict:
        """JSON-ready dict of all fields (face share rounded to 4 decimals)."""
        return {
            "faces": self.faces,
            "shot": self.shot,
            "face_share": round(self.face_share, 4),
            "fidelity": self.fidelity,
            "background_enhance": self.background_enhance,
            "face_upsample": self.face_upsample,
            "upscale": self.upscale,
            "reason": self.reason,
        }


def face_share(box: Sequence[float], image_size: tuple[int, int]) -> float:
    """Area of ``box`` (x0, y0, x1, y1) clipped to the image over the image area; ``image_size`` is (height, width)."""
    h, w = _check_size(image_size, "image_size")
    x0, y0, x1, y1 = (float(v) for v in box)
    width = max(0.0, min(x1, w) - max(x0, 0.0))
    height = max(0.0, min(y1, h) - max(y0, 0.0))
    return width * height / (h * w)


def classify_shot(share: float, faces: int) -> str:
    """no_face | close_up (share >= CLOSE_UP_SHARE) | wide (share < WIDE_SHARE or GROUP_FACES+ faces) | medium."""
    if faces < 0:
        raise InputError(f"faces must be 0 or more, got {faces}")
    if faces == 0:
        return "no_face"
    if share >= CLOSE_UP_SHARE:
        return "close_up"
    if share < WIDE_SHARE or faces >= GROUP_FACES:
        return "wide"
    return "medium"


def advise(
    boxes: Sequence[Box],
    image_size: tuple[int, int],
    source: str = "ai_generated",
    *,
    source_size: tuple[int, int] | None = None,
) -> Advice:
    """Settings for an image with face ``boxes`` (x0, y0, x1, y1) in an image of ``image_size`` (height, width).

    ``source_size`` is the (height, width) of the image that will be restored when the boxes were found in a resized
    copy of it (the pipeline's working image); it sets the upscale and the pasted face size. Default: ``image_size``.
    """
    check_source(source)
    h, w = _check_size(image_size, "image_size")
    src_h, src_w = _check_size(source_size, "source_size") if source_size is not None else (h, w)
    upscale = 1 if max(src_h, src_w) >= LARGE_IMAGE_SIDE else DEFAULT_UPSCALE
    upscale_why = f"upscale 1: image is already {max(src_h, src_w)} px (>= {LARGE_IMAGE_SIDE})" \
        if upscale == 1 else f"upscale {upscale}"
    photo = source == "photo"
    if not boxes:
        return Advice(faces=0, face_share=0.0, shot="no_face",
                      fidelity=PHOTO_FIDELITY if photo else DEFAULT_FIDELITY,
                      background_enhance=True, face_upsample=False, upscale=upscale, reason="no face found")

    share = max(face_share(box, (h, w)) for box in boxes)
    shot = classify_shot(share, len(boxes))
    # Side in output pixels of the largest face's 512 crop once pasted back.
    largest_side = max(_box_side(box) for box in boxes)
    pasted = CROP_PER_BOX * largest_side * (src_w / w) * upscale

    if shot == "close_up":
        fidelity = CLOSE_UP_FIDELITY
        fidelity_why = "CodeFormer fidelity 1.0: lower values over-smooth the skin and change the eyes"
    elif photo:
        fidelity = PHOTO_FIDELITY
        fidelity_why = "CodeFormer fidelity 0.7: real photos need more than 0.6 or the skin is over-smoothed"
    elif shot == "wide":
        fidelity = DEFAULT_FIDELITY
        fidelity_why = "CodeFormer fidelity 0.5 (default; matters little in wide shots)"
    else:
        fidelity = DEFAULT_FIDELITY
        fidelity_why = "CodeFormer fidelity 0.5 (default): CodeFormer does best on AI-generated images"

    background_enhance = shot != "close_up"
    background_why = {
        "close_up": "background enhance off: little (usually blurred) background",
        "medium": "background enhance on: the background is a large part of the image",
        "wide": "background enhance on: much background, enhancing it pays off",
    }[shot]

    if photo:
        face_upsample = True
        upsample_why = "face upsample on: real photo, keeps the skin from looking over-smoothed"
    else:
        face_upsample = pasted > FACE_UPSAMPLE_ABOVE
        upsample_why = f"face upsample {'on' if face_upsample else 'off'}: largest face pasted at ~{pasted:.0f} px " \
            f"({'>' if face_upsample else '<='} {FACE_UPSAMPLE_ABOVE})"

    # the advice assumes CodeFormer (the only restorer with a fidelity): the reason names it, for GFPGAN users
    shot_why = _describe_shot(shot, share, len(boxes))
    reason = "; ".join((shot_why, fidelity_why, background_why, upsample_why, upscale_why))
    return Advice(faces=len(boxes), face_share=share, shot=shot, fidelity=fidelity,
                  background_enhance=background_enhance, face_upsample=face_upsample, upscale=upscale, reason=reason)


def advise_faces(faces: Faces, index: int, source: str = "ai_generated") -> Advice:
    """Settings for image ``index`` of the batch ``faces`` was found in (boxes are in working-image pixels)."""
    count = len(faces.source_sizes)
    if not 0 <= index < count:
        raise IndexError(f"image index {index} is out of range: these faces come from {count} image(s) "
                         f"(indices 0..{count - 1})")
    members = [face for _, face in faces.for_image(index)]
    source_size = faces.source_sizes[index]
    working = members[0].working_size if members else source_size
    return advise([face.box for face in members], working, source, source_size=source_size)


def advise_image(
    image: np.ndarray, detector: FaceDetector, source: str = "ai_generated", device: torch.device | str = "cpu"
) -> Advice:
    """Detect the faces of ``image`` ((H, W, 3) RGB uint8) with the official settings and advise on them."""
    check_source(source)
    return advise_faces(find_faces(detector, [image], device=device).faces, 0, source)


def auto_fidelity(face: Face, source: str = "ai_generated") -> float:
    """Fidelity for one face from its own share of the image: 1.0 for a close-up, else 0.7 (photo) or 0.5 (AI)."""
    return advise([face.box], face.working_size, source, source_size=face.source_size).fidelity


def fidelity_rule(fidelity: float, auto: bool, source: str = "ai_generated") -> Fidelity:
    """The fidelity to restore with: ``fidelity``, or with ``auto`` the best-settings rule applied to each face."""
    if not auto:
        return fidelity
    check_source(source)
    return functools.partial(auto_fidelity, source=source)


def face_upsample_mode(advice: Advice, source: str) -> str:
    """The pipeline's face_upsample mode for ``advice``: always (photo), auto (AI image, large faces) or off."""
    if not advice.face_upsample:
        return "off"
    # For an AI image the rule is "upsample when the face is pasted larger than FACE_UPSAMPLE_ABOVE": auto
    # applies it per face.
    return "always" if source == "photo" else "auto"


def _describe_shot(shot: str, share: float, faces: int) -> str:
    face = "the face" if faces == 1 else f"the largest of {faces} faces"
    if shot == "close_up":
        return f"close-up: {face} covers {share:.1%} of the image (>= {CLOSE_UP_SHARE:.0%})"
    if shot == "wide":
        why = f"< {WIDE_SHARE:.0%}" if share < WIDE_SHARE else f"several people: {GROUP_FACES}+ faces"
        return f"wide shot: {face} covers {share:.1%} of the image ({why})"
    return f"medium shot: {face} covers {share:.1%} of the image"


def _box_side(box: Sequence[float]) -> float:
    x0, y0, x1, y1 = (float(v) for v in box)
    return math.sqrt(max(0.0, x1 - x0) * max(0.0, y1 - y0))


def check_source(source: str) -> None:
    """Raise InputError unless ``source`` is one of ``SOURCES``."""
    if source not in SOURCES:
        raise InputError(f"source must be one of {', '.join(SOURCES)}, got {source!r}; "
                         "use 'photo' for camera photos and 'ai_generated' for generated images")


def _check_size(size: tuple[int, int], name: str) -> tuple[int, int]:
    h, w = size
    if h <= 0 or w <= 0:
        raise InputError(f"{name} must be a positive (height, width), got {tuple(size)}")
    return h, w


__all__ = [
    "SOURCES", "SHOTS", "CLOSE_UP_SHARE", "WIDE_SHARE", "GROUP_FACES", "LARGE_IMAGE_SIDE", "CROP_PER_BOX",
    "Advice", "face_share", "classify_shot", "advise", "advise_faces", "advise_image", "auto_fidelity",
    "check_source", "face_upsample_mode", "fidelity_rule",
]
