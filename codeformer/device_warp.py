"""Alignment warps and the paste-back as torch ops, so frames can stay on a GPU from detection to paste.

The twins of ``align.warp_face`` and ``paste.paste_faces``: the same geometry (``paste.background_inverse`` and
``paste.footprint`` themselves), the same masks and the same blend, on float32 tensors of any device. On the CPU
the OpenCV path stays the default (the official arithmetic, and faster there); these are for frames already on a
GPU. Agreement with OpenCV: bench/measured/device_warp.md (``bench/device_warp.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .align import BORDER_RGB
from .device_filters import erode, gaussian_blur, sample
from .paste import background_inverse, footprint
from .types import FACE_SIZE


def warp_faces_torch(images: torch.Tensor, affines: torch.Tensor | np.ndarray, index: torch.Tensor | Sequence[int]
                     ) -> torch.Tensor:
    """The aligned crops of N faces: ``cv2.warpAffine`` bilinear onto 512x512 with the grey border ``BORDER_RGB``.

    ``images`` [B, 3, H, W] RGB, uint8 or float 0..255, any device; ``affines`` [N, 2, 3] working image -> crop
    (as ``align.estimate_affine`` gives); ``index`` [N]: the image each face is in. Returns [N, 3, 512, 512]
    float32 0..255 on the images' device, not rounded (round it for the uint8 crop of the OpenCV path).
    """
    mats = _to_numpy(affines).reshape(-1, 2, 3)
    where = np.asarray(_to_numpy(index), np.int64).reshape(-1)
    if len(where) != len(mats):
        raise ValueError(f"{len(mats)} affines but {len(where)} image indices")
    out = torch.empty((len(mats), 3, FACE_SIZE, FACE_SIZE), dtype=torch.float32, device=images.device)
    border = torch.tensor(BORDER_RGB, dtype=torch.float32, device=images.device).view(3, 1, 1)
    inverses = np.stack([cv2.invertAffineTransform(m) for m in mats]) if len(mats) else mats
    for b in np.unique(where):
        faces = np.flatnonzero(where == b)
        # grid_sample pads with 0: sampling (image - border) and adding the border back gives OpenCV's constant
        # border, blended into the edge pixels as OpenCV blends it.
        shifted = images[int(b)].to(torch.float32) - border
        crops = sample(shifted, inverses[faces], (FACE_SIZE, FACE_SIZE)) + border
        out[torch.as_tensor(faces, device=images.device)] = crops
    return out


def paste_faces_torch(canvas: torch.Tensor, faces: Sequence[torch.Tensor], inverses: Sequence[np.ndarray],
                      parse_masks: Sequence[torch.Tensor | None], scale: float, scale_y: float | None,
                      visibility: float, feather: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``paste.paste_faces`` on one ``canvas`` [3, H, W] float32 0..255 (any device).

    ``faces[i]`` [3, S, S] RGB 0..255 (uint8 or float; S = 512, or larger when face-upsampled); ``inverses[i]``
    (2, 3) 512-crop -> working-image pixels (``Face.inverse``); ``parse_masks[i]`` [512, 512] 0..1 or None.
    Returns the image [3, H, W] float32 0..255 (a new tensor) and the pasted-area mask [H, W] float32 0..1.
    """
    if not len(faces) == len(inverses) == len(parse_masks):
        raise ValueError(f"{len(faces)} faces, {len(inverses)} inverses and {len(parse_masks)} parse masks")
    out = canvas.to(torch.float32, copy=True)
    total = torch.zeros(out.shape[1:], dtype=torch.float32, device=out.device)
    for face, inverse, parse in zip(faces, inverses, parse_masks, strict=True):
        _paste_one(out, total, face, inverse, parse, scale, scale_y, visibility, feather)
    return out, total


def _paste_one(out: torch.Tensor, total: torch.Tensor, face: torch.Tensor, inverse: np.ndarray,
               parse: torch.Tensor | None, scale: float, scale_y: float | None, visibility: float,
               feather: float) -> None:
    """One face of ``paste_faces_torch``, step for step ``paste._paste_one``."""
    size = face.shape[-1]
    m = background_inverse(np.asarray(inverse, np.float64), scale, size, scale_y)
    roi = footprint(m, (size, size), (out.shape[1], out.shape[2]))
    if roi is None:
        return
    x0, y0, x1, y1 = roi
    local = m.copy()
    local[:, 2] -= (x0, y0)
    back = cv2.invertAffineTransform(local)  # ROI pixel -> face pixel, what warpAffine samples with
    dsize = (y1 - y0, x1 - x0)

    # The face and the square mask warped together: one grid, two results (4 channels).
    square = torch.ones((1, size, size), dtype=torch.float32, device=out.device)
    warped = sample(torch.cat([face.to(out.device, torch.float32), square]), back, dsize)
    face_w, mask = warped[:3], warped[3]
    mask = erode(mask, int(2 * scale))
    pasted = mask * face_w
    # The official feather width from the eroded mask's area, in float32 as numpy sums it (one sync per face).
    w_edge = int(int(np.float32(mask.sum().item()) ** 0.5) // 20 * feather)
    if w_edge > 0:
        mask = erode(mask, w_edge * 2)
    soft = gaussian_blur(mask, w_edge * 2 + 1)
    if parse is not None:
        parse = parse.to(out.device, torch.float32)
        if size != FACE_SIZE:  # cv2.resize's default bilinear has the half-pixel centres of align_corners=False
            parse = F.interpolate(parse[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        # The official flags=3 is INTER_AREA, not cubic (2): warpAffine treats it as bilinear (measured: a point
        # moved 0.25 px gives 0.75 / 0.25; torch's bicubic, a = -0.75 as OpenCV's, would differ by up to 0.25).
        soft = torch.minimum(sample(parse[None], back, dsize)[0], soft)
    soft = soft * visibility
    region = out[:, y0:y1, x0:x1]
    region.copy_(soft * pasted + (1 - soft) * region)
    mask_region = total[y0:y1, x0:x1]
    mask_region.copy_(soft + (1 - soft) * mask_region)


def _to_numpy(x: torch.Tensor | np.ndarray | Sequence[int]) -> np.ndarray:
    """A small host-side array (affines, indices): the geometry is set up in float64 on the host."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


__all__ = ["paste_faces_torch", "warp_faces_torch"]
