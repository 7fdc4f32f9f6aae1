"""RetinaFace on a batch of same-size frames (a video batch), resized and detected on the device.

The frames go through what :func:`~codeformer.detect.detect_faces` does per image, with the resize done in torch
(``device_resize``: the whole numbers ``cv2.resize`` of a uint8 image gives; bench/measured/detect_batch.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .detect import (
    CONFIDENCE,
    MIN_EYE_DISTANCE,
    NMS_THRESHOLD,
    Detection,
    detection_size,
    retinaface_rows,
    to_detections,
)
from .device_resize import resize_like_cv2
from .errors import InputError
from .runtime import available_host_memory, free_cuda_memory, run_in_batches
from .types import FaceDetector, Interrupt

# Device bytes per network-input pixel: the sum of every RetinaFace mobilenet0.25 layer's output in fp32 (355 B,
# measured with forward hooks at 640x1138), an upper bound of the peak since inference frees them as it goes.
NET_BYTES_PER_PIXEL = 360
# Bytes per frame pixel: the chunk's float copy and the half-resized image (3 channels x fp32 each).
FRAME_BYTES_PER_PIXEL = 24
# Frames per network call at most: past a few frames a batch only adds memory, not speed.
MAX_CHUNK = 16


def detect_batch(
    detector: FaceDetector,
    images: torch.Tensor | Sequence[np.ndarray],
    *,
    confidence: float = CONFIDENCE,
    nms_threshold: float = NMS_THRESHOLD,
    min_eye_distance: float = MIN_EYE_DISTANCE,
    device: torch.device | str = "cpu",
    chunk: int = 0,
    check_interrupt: Interrupt | None = None,
) -> list[list[Detection]]:
    """``detect_faces`` of every frame, for frames of one size: a ``[B, 3, H, W]`` RGB tensor (uint8, or float in
    0..1 rounded to uint8 as ``image.float_to_uint8`` does), used on its own device, or ``(H, W, 3)`` RGB uint8
    arrays, moved to ``device`` once. Per frame: detections in its pixels, highest score first.

    ``chunk``: frames per network call (0: from the free memory); it halves on out-of-memory.
    """
    frames = _as_batch(images, device)
    if len(frames) == 0:
        return []
    size = frames.shape[2:]
    scale, (width, height) = detection_size((int(size[0]), int(size[1])))
    results: list[list[Detection]] = []

    @torch.inference_mode()
    def run(indices: list[int]) -> None:
        part = resize_like_cv2(_to_uint8_range(frames[indices[0] : indices[-1] + 1]), height, width, scale < 1)
        rows = retinaface_rows(detector, part.flip(1), confidence, nms_threshold)  # RGB -> BGR
        results.extend(to_detections(found.cpu().numpy(), scale, min_eye_distance) for found in rows)

    size_auto = _auto_chunk(frames.device, frames.shape[2] * frames.shape[3], height * width)
    run_in_batches(run, range(len(frames)), chunk or size_auto, check_interrupt=check_interrupt,
                   what="face detection")
    return results


def _as_batch(images: torch.Tensor | Sequence[np.ndarray], device: torch.device | str) -> torch.Tensor:
    """The frames as one ``[B, 3, H, W]`` tensor: a tensor as it is, arrays stacked and moved in one copy."""
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"detect_batch takes frames as [B, 3, H, W], got a tensor of shape {tuple(images.shape)}")
        return images
    sizes = {image.shape for image in images}
    if len(sizes) > 1:
        raise InputError(f"detect_batch takes frames of one size, got {len(sizes)} sizes: {sorted(sizes)}")
    if not images:
        return torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
    stacked = torch.from_numpy(np.stack(images)).to(device)
    return stacked.permute(0, 3, 1, 2)


def _to_uint8_range(frames: torch.Tensor) -> torch.Tensor:
    """float32 frames in 0..255 holding whole numbers: uint8 as they are, floats in 0..1 rounded."""
    if frames.dtype == torch.uint8:
        return frames.float()
    return (torch.nan_to_num(frames.float(), nan=0.0).clamp(0.0, 1.0) * 255.0).round()


def _auto_chunk(device: torch.device, frame_pixels: int, input_pixels: int) -> int:
    """Frames per call that fit in half the free device memory (host memory on the CPU), 1 to ``MAX_CHUNK``."""
    free = free_cuda_memory(device) if device.type == "cuda" else available_host_memory()
    if free is None:
        return 1
    per_frame = frame_pixels * FRAME_BYTES_PER_PIXEL + input_pixels * NET_BYTES_PER_PIXEL
    return max(1, min(MAX_CHUNK, free // (2 * per_frame)))


__all__ = ["detect_batch"]
