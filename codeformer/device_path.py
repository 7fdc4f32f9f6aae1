"""Finding faces with the frames on the device: one copy of the batch in, detection, alignment and crops there.

The twin of ``faces.find_faces`` for a batch of one size on a GPU: the frames go to the device once as a
``[B, 3, H, W]`` uint8 tensor; the working images (``image.to_working``) are made there with OpenCV's own
bilinear arithmetic (``device_resize``, on the fx/fy grid ``cv2.resize`` uses for it: within one level on
0.04 % of whole_01's pixels); RetinaFace runs on the whole batch (``detect_batch``); the affines are estimated on
the host (5 points a face); the crops are cut with ``grid_sample`` (``device_warp``) and stay on the device for
CodeFormer. Only the crops come back to the host (the caller's ``crops`` output, 0.8 MB a face).
A video's frames take the same steps a frame at a time once tracked (``DeviceFrames``, ``align_on_device``:
``temporal.track_frames``).

On the CPU the OpenCV path stays the default: it is the official arithmetic and the fastest there.
``use_device_path`` says which path a device takes; ``CODEFORMER_DEVICE_PATH=1`` forces the device path (tests
run it on the CPU), ``0`` the OpenCV path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .detect import Detection, select_faces
from .detect_batch import detect_batch
from .device_resize import resize_like_cv2
from .device_warp import warp_faces_torch
from .errors import InputError
from .faces import DetectOptions, FoundFaces, Located, faces_at
from .geometry import working_scale, working_size
from .gray import batch_is_gray
from .types import FACE_SIZE, Face, FaceDetector, Faces, Interrupt

ENV_SWITCH = "CODEFORMER_DEVICE_PATH"


def use_device_path(device: torch.device | str) -> bool:
    """Whether a restore on ``device`` takes the device path: on CUDA, unless ``CODEFORMER_DEVICE_PATH=0``; on any
    device with ``CODEFORMER_DEVICE_PATH=1``. MPS stays on the OpenCV path: grid_sample and the fixed-point resize
    have not been checked there, and MPS has no float64 for the gray test."""
    forced = os.environ.get(ENV_SWITCH, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return torch.device(device).type == "cuda"


@dataclass(frozen=True)
class FoundOnDevice:
    """What ``find_faces_on_device`` found, with the device tensors the later steps start from."""

    found: FoundFaces  # the faces and their crops on the host, as ``find_faces`` gives them
    crops: torch.Tensor = field(repr=False)  # [N, 3, 512, 512] uint8 on the device, in ``found.faces`` order
    frames: torch.Tensor = field(repr=False)  # [B, 3, H, W] uint8: the sources on the device
    working: torch.Tensor = field(repr=False)  # [B, 3, h, w] uint8: their working images (the frames at scale 1)


def find_faces_on_device(
    detector: FaceDetector,
    images: Sequence[np.ndarray],
    options: DetectOptions,
    *,
    device: torch.device | str,
    check_interrupt: Interrupt | None = None,
) -> FoundOnDevice:
    """``find_faces`` of ``(H, W, 3)`` RGB uint8 images of one size, on ``device`` (see the module's text)."""
    device = torch.device(device)
    sizes = {image.shape for image in images}
    if len(sizes) > 1:
        raise InputError(f"the device path takes images of one size, got {len(sizes)} sizes: {sorted(sizes)}")
    if not images:
        empty = torch.zeros((0, 3, FACE_SIZE, FACE_SIZE), dtype=torch.uint8, device=device)
        none = FoundFaces(Faces((), ()), np.zeros((0, FACE_SIZE, FACE_SIZE, 3), np.uint8))
        return FoundOnDevice(none, empty, empty, empty)
    frames = to_device(images, device)
    source_size = images[0].shape[:2]
    working, chosen = detect_on_device(detector, frames, options, check_interrupt=check_interrupt)
    with_faces = [i for i, dets in enumerate(chosen) if dets]
    # official is_gray, measured on each source with faces (before the enlargement), a frame of float64 at a time
    gray = dict(zip(with_faces, batch_is_gray(frames[with_faces], step=1), strict=True)) if with_faces else {}
    faces: list[Face] = []
    for index in with_faces:
        faces += faces_at(chosen[index], index, source_size, gray[index])
    crops = crops_on_device(working, faces)
    host = crops.permute(0, 2, 3, 1).cpu().numpy()
    return FoundOnDevice(FoundFaces(Faces(tuple(faces), tuple(image.shape[:2] for image in images)), host),
                         crops, frames, working)


@dataclass(frozen=True)
class DeviceFrames:
    """Frames of one size on the device, as the later steps of the device path start from them."""

    frames: torch.Tensor = field(repr=False)  # [B, 3, H, W] uint8: the sources
    working: torch.Tensor = field(repr=False)  # [B, 3, h, w] uint8: their working images

    def __getitem__(self, index: int) -> DeviceFrames:
        return DeviceFrames(self.frames[index : index + 1], self.working[index : index + 1])

    @staticmethod
    def cat(parts: Sequence[DeviceFrames]) -> DeviceFrames:
        return DeviceFrames(torch.cat([p.frames for p in parts]), torch.cat([p.working for p in parts]))


def to_device(images: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """``(H, W, 3)`` RGB uint8 images of one size as one ``[B, 3, H, W]`` tensor on ``device``: one copy."""
    return torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2)


def detect_on_device(detector: FaceDetector, frames: torch.Tensor, options: DetectOptions, *,
                     check_interrupt: Interrupt | None = None) -> tuple[torch.Tensor, list[list[Detection]]]:
    """The working images of ``[B, 3, H, W]`` uint8 frames and each one's selected detections (working-image
    pixels): ``faces.detect_image`` of a batch, on the frames' device."""
    working = working_images(frames)
    detections = detect_batch(detector, working, confidence=options.confidence, nms_threshold=options.nms_threshold,
                              min_eye_distance=options.min_eye_distance, check_interrupt=check_interrupt)
    work_size = (int(working.shape[2]), int(working.shape[3]))
    return working, [select_faces(found, work_size, options.selection, options.max_faces) for found in detections]


def align_on_device(frame: DeviceFrames, index: int, detections: Sequence[Located],
                    tracks: Sequence[int | None] | None = None) -> FoundFaces:
    """``faces.align_faces`` of one frame on the device: its faces (numbered ``index``) aligned there, the crops
    copied to the host."""
    source_size = (int(frame.frames.shape[2]), int(frame.frames.shape[3]))
    gray = batch_is_gray(frame.frames, step=1)[0] if detections else False
    faces = faces_at(detections, index, source_size, gray, tracks)
    crops = crops_on_device(frame.working, [replace(face, source_index=0) for face in faces])
    return FoundFaces(Faces(tuple(faces), (source_size,)), crops.permute(0, 2, 3, 1).cpu().numpy())


def working_images(frames: torch.Tensor) -> torch.Tensor:
    """``image.to_working`` of ``[B, 3, H, W]`` uint8 frames on their device: the frames themselves at scale 1,
    else OpenCV's bilinear with ``fx = fy = scale`` (sampled at 1 / scale, not at in / out)."""
    size = (int(frames.shape[2]), int(frames.shape[3]))
    scale = working_scale(size)
    if scale == 1.0:
        return frames
    height, width = working_size(size)
    return resize_like_cv2(frames, height, width, shrink=False, step=1 / scale).to(torch.uint8)


def crops_on_device(working: torch.Tensor, faces: Sequence[Face]) -> torch.Tensor:
    """The aligned crops ``[N, 3, 512, 512]`` uint8 of ``faces`` from their working images, rounded as
    ``cv2.warpAffine``'s uint8 output."""
    if not faces:
        return torch.zeros((0, 3, FACE_SIZE, FACE_SIZE), dtype=torch.uint8, device=working.device)
    affines = np.stack([face.affine for face in faces])
    warped = warp_faces_torch(working, affines, [face.source_index for face in faces])
    return warped.round().clamp(0, 255).to(torch.uint8)


__all__ = ["ENV_SWITCH", "DeviceFrames", "FoundOnDevice", "align_on_device", "crops_on_device", "detect_on_device",
           "find_faces_on_device", "to_device", "use_device_path", "working_images"]
