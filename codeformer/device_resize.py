"""OpenCV's ``cv2.resize`` of uint8 images as torch ops (any device), to the whole numbers OpenCV gives.

Shrinking is OpenCV's INTER_AREA written as two matrix products (each output pixel averages the input pixels it
covers, weighted by the overlap), bilinear is OpenCV's fixed-point INTER_LINEAR on the pixel-centre grid.
``mode="area"`` (integer bins) and antialiased bilinear (a triangle filter) differ from INTER_AREA by up to 61 and
20 levels on crowd.jpg, the matrices by at most 1 on rounding ties; float bilinear (F.interpolate) is off by one
level on 10 % of the pixels, the fixed point on 0.03 % (bench/measured/detect_batch.md).
"""

from __future__ import annotations

import torch


def resize_like_cv2(frames: torch.Tensor, height: int, width: int, shrink: bool, step: float | None = None
                    ) -> torch.Tensor:
    """``cv2.resize`` of ``[B, C, H, W]`` uint8-valued images to (``height``, ``width``): INTER_AREA if ``shrink``
    else INTER_LINEAR, rounded to whole numbers (float32).

    ``step``: source pixels per output pixel of a bilinear resize called with ``fx = fy = 1 / step`` instead of a
    size (``image.to_working``): OpenCV then samples at ``1 / fx``, not at ``in / out``.
    """
    in_height, in_width = frames.shape[2:]
    if (in_height, in_width) == (height, width):
        return frames.float()
    if shrink:
        resized = area_resize(frames.float(), height, width)
        if in_height % height == 0 and in_width % width == 0:  # OpenCV's integer path: (sum + n / 2) / n
            return torch.floor(resized + 0.5).clamp(0.0, 255.0)
        return resized.round().clamp(0.0, 255.0)  # else floats and cvRound, halves to even
    # OpenCV's uint8 bilinear in its own fixed point (11-bit weights, its SIMD path's shifts)
    pixels = frames.int()
    first, second, weight_first, weight_second = linear_taps(in_width, width, frames.device, step)
    rows = pixels[..., first] * weight_first + pixels[..., second] * weight_second  # x 2048
    first, second, weight_first, weight_second = linear_taps(in_height, height, frames.device, step)
    top = (weight_first[:, None] * (rows[:, :, first] >> 4)) >> 16
    bottom = (weight_second[:, None] * (rows[:, :, second] >> 4)) >> 16
    return ((top + bottom + 2) >> 2).float()


def area_resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """INTER_AREA of float ``[..., H, W]`` images to (``height``, ``width``), not rounded (``cv2.resize`` of a
    float image, shrinking)."""
    rows = area_matrix(images.shape[-2], height, images.device)
    cols = area_matrix(images.shape[-1], width, images.device)
    return rows @ images @ cols.T


def linear_taps(size_in: int, size_out: int, device: torch.device, step: float | None = None
                ) -> tuple[torch.Tensor, ...]:
    """OpenCV INTER_LINEAR along one axis: both source indices of each output pixel and their weights x 2048
    (pixel centres aligned: source position (j + 0.5) s - 0.5, clamped at the edges; s = ``step`` or in / out)."""
    scale = size_in / size_out if step is None else step
    position = (torch.arange(size_out, dtype=torch.float64) + 0.5) * scale - 0.5
    first = position.floor()
    fraction = torch.where(first < 0, 0.0, position - first)
    first = first.clamp(min=0)
    fraction = torch.where(first >= size_in - 1, 0.0, fraction)
    first = first.clamp(max=size_in - 1)
    second = (first + 1).clamp(max=size_in - 1)
    weight = torch.round(fraction * 2048).int()
    return first.long().to(device), second.long().to(device), (2048 - weight).to(device), weight.to(device)


def area_matrix(size_in: int, size_out: int, device: torch.device) -> torch.Tensor:
    """``[size_out, size_in]`` weights of INTER_AREA along one axis: output pixel j covers input span
    [j s, (j + 1) s] (s = size_in / size_out) and averages the pixels in it by their overlap with it."""
    step = size_in / size_out
    start = torch.arange(size_out, dtype=torch.float64)[:, None] * step
    pixel = torch.arange(size_in, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(pixel + 1, start + step) - torch.maximum(pixel, start)).clamp(min=0)
    return (overlap / step).float().to(device)


__all__ = ["area_matrix", "area_resize", "linear_taps", "resize_like_cv2"]
