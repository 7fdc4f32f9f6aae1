"""RetinaFace on a batch of same-size frames (a video batch), resized and detected on the device.

The frames go through what :func:`~codeformer.detect.detect_faces` does per image, with the resize done in torch:
shrinking is OpenCV's INTER_AREA written as two matrix products (each output pixel averages the input pixels it
covers, weighted by the overlap), enlarging is OpenCV's fixed-point bilinear on the pixel-centre grid. Both give
the whole numbers ``cv2.resize`` of a uint8 image gives. ``mode="area"`` (integer bins) and
antialiased bilinear (a triangle filter) differ from INTER_AREA by up to 61 and 20 levels on crowd.jpg, the
matrices by at most 1 on rounding ties (bench/measured/detect_batch.md).
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
        part = _resize_like_cv2(_to_uint8_range(frames[indices[0] : indices[-1] + 1]), height, width, scale < 1)
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


def _resize_like_cv2(frames: torch.Tensor, height: int, width: int, shrink: bool) -> torch.Tensor:
    """``cv2.resize`` of uint8 images to (``height``, ``width``): INTER_AREA if ``shrink`` else INTER_LINEAR (what
    detect_faces picks from its nominal scale), rounded to whole numbers."""
    in_height, in_width = frames.shape[2:]
    if (in_height, in_width) == (height, width):
        return frames
    if shrink:
        rows = _area_matrix(in_height, height, frames.device)
        cols = _area_matrix(in_width, width, frames.device)
        resized = rows @ frames @ cols.T
        if in_height % height == 0 and in_width % width == 0:  # OpenCV's integer path: (sum + n / 2) / n
            return torch.floor(resized + 0.5).clamp(0.0, 255.0)
        return resized.round().clamp(0.0, 255.0)  # else floats and cvRound, halves to even
    # OpenCV's uint8 bilinear in its own fixed point (11-bit weights, its SIMD path's shifts): float bilinear
    # (F.interpolate, align_corners=False) is off by one level on 10 % of the pixels, this on 0.03 %
    pixels = frames.int()
    first, second, weight_first, weight_second = _linear_taps(in_width, width, frames.device)
    rows = pixels[..., first] * weight_first + pixels[..., second] * weight_second  # x 2048
    first, second, weight_first, weight_second = _linear_taps(in_height, height, frames.device)
    top = (weight_first[:, None] * (rows[:, :, first] >> 4)) >> 16
    bottom = (weight_second[:, None] * (rows[:, :, second] >> 4)) >> 16
    return ((top + bottom + 2) >> 2).float()


def _linear_taps(size_in: int, size_out: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """OpenCV INTER_LINEAR along one axis: both source indices of each output pixel and their weights x 2048
    (pixel centres aligned: source position (j + 0.5) s - 0.5, clamped at the edges)."""
    position = (torch.arange(size_out, dtype=torch.float64) + 0.5) * (size_in / size_out) - 0.5
    first = position.floor()
    fraction = torch.where(first < 0, 0.0, position - first)
    first = first.clamp(min=0)
    fraction = torch.where(first >= size_in - 1, 0.0, fraction)
    first = first.clamp(max=size_in - 1)
    second = (first + 1).clamp(max=size_in - 1)
    weight = torch.round(fraction * 2048).int()
    return first.long().to(device), second.long().to(device), (2048 - weight).to(device), weight.to(device)


def _area_matrix(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """``[size_out, size_in]`` weights of INTER_AREA along one axis: output pixel j covers input span
    [j s, (j + 1) s] (s = size_in / size_out) and averages the pixels in it by their overlap with it."""
    step = size_in / size_out
    start = torch.arange(size_out, dtype=torch.float64)[:, None] * step
    pixel = torch.arange(size_in, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(pixel + 1, start + step) - torch.maximum(pixel, start)).clamp(min=0)
    return (overlap / step).float().to(device)


def _auto_chunk(device: torch.device, frame_pixels: int, input_pixels: int) -> int:
    """Frames per call that fit in half the free device memory (host memory on the CPU), 1 to ``MAX_CHUNK``."""
    free = free_cuda_memory(device) if device.type == "cuda" else available_host_memory()
    if free is None:
        return 1
    per_frame = frame_pixels * FRAME_BYTES_PER_PIXEL + input_pixels * NET_BYTES_PER_PIXEL
    return max(1, min(MAX_CHUNK, free // (2 * per_frame)))


__all__ = ["detect_batch"]
