"""The OpenCV image operations of the paste-back as device-agnostic torch ops (float32, any device).

Each one reproduces OpenCV's arithmetic, not just its idea: ``cv2.warpAffine``'s pixel-centre convention and
constant borders, ``cv2.erode``'s off-centre anchor for even kernels and its non-eroding border, and
``cv2.GaussianBlur``'s kernel (``sigma = 0`` picks it from the size) and BORDER_REFLECT_101. ``device_warp`` builds
the warps and the paste-back on them; tests/lib/test_device_warp.py checks each against OpenCV.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def sample(src: torch.Tensor, dst_to_src: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """``src`` [C, Hs, Ws] float32 resampled onto a (h, w) grid whose pixel (x, y) reads ``src`` at
    ``dst_to_src @ (x, y, 1)`` (pixel units, centres at integers): ``cv2.warpAffine`` with border 0 and the
    inverse of ``dst_to_src``. ``dst_to_src`` may be (2, 3) or (K, 2, 3): then K grids over the same ``src``
    and the result is [K, C, h, w] instead of [C, h, w]."""
    mats = np.asarray(dst_to_src, np.float64).reshape(-1, 2, 3)
    _, src_h, src_w = src.shape
    # Fold the pixel -> grid_sample unit conversion (align_corners=True: -1 and 1 are the outer pixel centres)
    # into the matrix, in float64 on the host, so the device does one float32 affine map per pixel.
    norm = np.array([[2 / max(src_w - 1, 1)], [2 / max(src_h - 1, 1)]])
    mats = mats * norm
    mats[:, :, 2] -= 1
    theta = torch.as_tensor(mats, dtype=torch.float32, device=src.device)
    h, w = size
    ys = torch.arange(h, dtype=torch.float32, device=src.device)[:, None]
    xs = torch.arange(w, dtype=torch.float32, device=src.device)[None, :]
    grids = [torch.stack([t[0, 0] * xs + t[0, 1] * ys + t[0, 2], t[1, 0] * xs + t[1, 1] * ys + t[1, 2]], -1)
             for t in theta]
    # The K grids stacked down one tall grid: one grid_sample call, and src is never copied K times.
    grid = torch.cat(grids, 0)[None]
    out = F.grid_sample(src[None], grid, mode=mode, padding_mode="zeros", align_corners=True)[0]
    if np.ndim(dst_to_src) == 2:
        return out
    return out.view(src.shape[0], len(mats), h, w).transpose(0, 1)


def erode(mask: torch.Tensor, k: int) -> torch.Tensor:
    """``cv2.erode(mask, np.ones((k, k)))`` of a [H, W] float mask: the anchor at (k // 2, k // 2) as OpenCV's
    default (off-centre for even k) and the border not eroding (OpenCV's default border value is +inf)."""
    if k <= 0:  # an empty kernel means 3x3 to OpenCV
        k = 3
    if k == 1:
        return mask
    before, after = k // 2, k - 1 - k // 2
    # A rectangle's minimum is separable: rows then columns, k comparisons a pixel instead of k * k.
    neg = F.pad(-mask[None, None], (before, after, 0, 0), value=-torch.inf)
    neg = F.max_pool2d(neg, (1, k), stride=1)
    neg = F.pad(neg, (0, 0, before, after), value=-torch.inf)
    return -F.max_pool2d(neg, (k, 1), stride=1)[0, 0]


@lru_cache(maxsize=64)
def _gaussian_weights(k: int, sigma: float) -> np.ndarray:
    # OpenCV's own kernel: for k <= 7 with sigma 0 it is a fixed table, not the sigma formula.
    return cv2.getGaussianKernel(k, sigma, ktype=cv2.CV_32F).ravel()


def gaussian_blur(mask: torch.Tensor, k: int, sigma: float = 0.0) -> torch.Tensor:
    """``cv2.GaussianBlur(mask, (k, k), sigma)`` of a [..., H, W] float mask (k odd), BORDER_REFLECT_101."""
    if k == 1:
        return mask
    weights = torch.as_tensor(_gaussian_weights(k, sigma), device=mask.device)
    pad = k // 2
    *lead, h, w = mask.shape
    mask = mask.reshape(-1, 1, h, w)  # masks as a batch of one-channel images
    # Reflection by index rather than F.pad(mode="reflect"): the kernel may be wider than a small region, where
    # OpenCV keeps reflecting and F.pad refuses.
    rows = mask.index_select(3, _reflect101(w, pad, mask.device))
    rows = F.conv2d(rows, weights.view(1, 1, 1, k))
    cols = rows.index_select(2, _reflect101(h, pad, mask.device))
    return F.conv2d(cols, weights.view(1, 1, k, 1)).reshape(*lead, h, w)


def _reflect101(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of 0..n-1 padded by ``pad`` on both sides, mirrored without repeating the edge (gfedcb|abcdefgh|gfedcba),
    as often as needed."""
    index = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(index)
    period = 2 * (n - 1)
    index = index.remainder(period)
    return torch.where(index >= n, period - index, index)


__all__ = ["erode", "gaussian_blur", "sample"]
