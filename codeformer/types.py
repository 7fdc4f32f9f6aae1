"""Typed data passed between the pipeline steps (and between ComfyUI nodes).

Image conventions used across the library: numpy ``(H, W, 3)`` RGB ``uint8`` in ``[0, 255]``,
the domain the official CodeFormer pipeline works in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .geometry import Box, working_scale, working_size

FACE_SIZE = 512
# face_upsample "auto": a face is upscaled before its paste only when pasted larger than this. A face pasted at most
# 1/8 larger than its 512 crop gains nothing visible: the upscaler's 1024 px face is shrunk to about half again by
# the paste (bilinear: 3 of its 4 pixels are never read), and the detail it could add lies in the top 1/9 of the
# pasted face's frequency band. Upscaling such a face (pasted at 520 px) took 13 of 96 s on a CPU without AMX
# (whole_02.png, bench/measured/README.md).
FACE_UPSAMPLE_ABOVE = FACE_SIZE * 9 // 8

Progress = Callable[[int, int], None]  # on_progress(done, total)
Interrupt = Callable[[], None]  # check_interrupt(): raises to cancel (ComfyUI's Cancel, Ctrl+C)


@dataclass(frozen=True)
class CodeFormerModel:
    """A loaded CodeFormer network (spandrel descriptor) and the file it came from."""

    descriptor: object = field(repr=False)
    path: Path
    precision: str = "auto"  # auto | fp32 | bf16 (runtime.use_bf16)
    compile: bool = False  # torch.compile the network on CUDA (a few compiles at most: restore._network)
    compiled: dict = field(default_factory=dict, repr=False, compare=False)  # device -> compiled network

    @property
    def module(self) -> torch.nn.Module:
        return self.descriptor.model  # type: ignore[attr-defined]


@dataclass(frozen=True)
class FaceDetector:
    """A facexlib RetinaFace network with its name (``retinaface_resnet50`` / ``retinaface_mobile0.25``)."""

    name: str
    module: torch.nn.Module = field(repr=False)
    path: Path


@dataclass(frozen=True)
class FaceParser:
    """A facexlib ParseNet face-parsing network (19 classes, 512x512 input in [-1, 1]); ``module(x)[0]`` are the class
    logits (the loader gives ``models.parsenet.ParseNetLogits``, which computes nothing else)."""

    module: torch.nn.Module = field(repr=False)
    path: Path


@dataclass(frozen=True)
class Face:
    """One detected face and how it maps between its source image and the 512x512 aligned crop.

    Coordinates are in the *working* image: the source enlarged so that its short side is at least
    512 px (``working_scale`` >= 1), as the official pipeline does before detection, unless that would make its
    long side exceed 4096 px (see :func:`~codeformer.geometry.working_scale`).
    """

    source_index: int
    box: Box
    score: float
    landmarks: np.ndarray = field(repr=False)  # (5, 2) float: left eye, right eye, nose, mouth left, mouth right
    affine: np.ndarray = field(repr=False)  # (2, 3) working image -> 512 crop
    inverse: np.ndarray = field(repr=False)  # (2, 3) 512 crop -> working image
    source_size: tuple[int, int]  # (height, width) of the source image
    is_gray: bool
    track: int | None = None  # the face's track across consecutive frames (temporal processing), else None

    @property
    def source_box(self) -> Box:
        """``box`` in source-image pixels (x0, y0, x1, y1)."""
        f = self.working_scale
        x0, y0, x1, y1 = self.box
        return x0 / f, y0 / f, x1 / f, y1 / f

    @property
    def source_landmarks(self) -> np.ndarray:
        """``landmarks`` in source-image pixels, (5, 2)."""
        return self.landmarks / self.working_scale

    @property
    def working_scale(self) -> float:
        """Working image = source x working_scale."""
        return working_scale(self.source_size)

    @property
    def working_size(self) -> tuple[int, int]:
        """(height, width) of the working image."""
        return working_size(self.source_size)


@dataclass(frozen=True)
class Faces:
    """All faces found in an IMAGE batch, in order (source image, then detection order)."""

    faces: tuple[Face, ...]
    source_sizes: tuple[tuple[int, int], ...]  # (height, width) of every image in the batch

    def __len__(self) -> int:
        return len(self.faces)

    def __str__(self) -> str:
        return f"Faces({len(self.faces)} faces in {len(self.source_sizes)} images)"

    def for_image(self, index: int) -> list[tuple[int, Face]]:
        """(position in ``faces``, face) for the faces of source image ``index``."""
        return [(i, f) for i, f in enumerate(self.faces) if f.source_index == index]

    def by_image(self) -> list[list[tuple[int, Face]]]:
        """``for_image`` of every source image, in one pass over the faces (a long batch asks for all of them)."""
        groups: list[list[tuple[int, Face]]] = [[] for _ in self.source_sizes]
        for i, face in enumerate(self.faces):
            groups[face.source_index].append((i, face))
        return groups

    def of_images(self, start: int, stop: int) -> tuple[Faces, list[int]]:
        """The faces of source images ``start..stop-1`` as a batch of their own (images numbered from 0), and
        their positions in ``faces``."""
        positions = [i for i, f in enumerate(self.faces) if start <= f.source_index < stop]
        part = tuple(replace(self.faces[i], source_index=self.faces[i].source_index - start) for i in positions)
        return Faces(part, self.source_sizes[start:stop]), positions

