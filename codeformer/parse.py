"""Face-parsing masks with ParseNet, exactly as the official paste-back builds them."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from .device_filters import gaussian_blur
from .device_resize import resize_like_cv2
from .image import resize
from .runtime import AUTO_NEVER, auto_batch_size, bf16_autocast, memory_format, run_in_batches, use_bf16
from .types import FACE_SIZE, FaceParser, Interrupt

# ParseNet classes kept in the paste mask (official MASK_COLORMAP): 1-13 (skin, brows, eyes, nose, lips...) and 15.
KEEP_CLASSES = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
BLUR_KERNEL = (101, 101)
BLUR_SIGMA = 11
BORDER = 10


def parse_masks(
    parser: FaceParser,
    faces: Sequence[np.ndarray],
    **kwargs,
) -> list[np.ndarray]:
    """Soft face masks ``(512, 512)`` float64 0..1 for restored faces (RGB uint8, any square size); ``kwargs`` are
    those of ``parse_labels``. The masks are made on the host with OpenCV (the official arithmetic)."""
    return [soft_mask(classes.cpu().numpy()) for classes in parse_labels(parser, faces, **kwargs)]


def parse_labels(
    parser: FaceParser,
    faces: Sequence[np.ndarray] | Sequence[torch.Tensor],
    *,
    device: torch.device | str = "cpu",
    batch_size: int | None = None,
    precision: str = "auto",
    check_interrupt: Interrupt | None = None,
) -> list[torch.Tensor]:
    """ParseNet's class map ``[512, 512]`` (int64, on ``device``) of each face: ``(S, S, 3)`` RGB uint8 arrays, or
    ``[3, S, S]`` uint8-valued tensors (the device path), any square size S.

    ``precision`` as in ``runtime.use_bf16``; ``auto`` is fp32 on every device (``AUTO_NEVER``).
    ``batch_size``: faces per call; default ``runtime.auto_batch_size`` (CodeFormer's, which needs more memory).
    """
    bf16 = use_bf16(device, precision, auto_on=AUTO_NEVER)
    if batch_size is None:
        batch_size = auto_batch_size(device, bf16)
    fmt = memory_format(device, precision)
    net = parser.module.to(device).eval().to(memory_format=fmt)
    labels: list[torch.Tensor] = []

    def run(batch: list[int]) -> None:
        t = _network_faces([faces[i] for i in batch], device)
        t = (t.float() / 255.0).contiguous(memory_format=fmt)
        with torch.inference_mode(), bf16_autocast(device, bf16):
            out = net((t - 0.5) / 0.5)[0]
        labels.extend(out.float().argmax(dim=1))

    run_in_batches(run, list(range(len(faces))), batch_size, check_interrupt=check_interrupt, what="ParseNet")
    return labels


def _network_faces(faces: Sequence[np.ndarray | torch.Tensor], device: torch.device | str) -> torch.Tensor:
    """Faces as ParseNet's ``[B, 3, 512, 512]`` input on ``device``, resized with OpenCV's bilinear: on the host
    for arrays (then in one copy: uint8 travels as is and is scaled on the device), on the device for tensors."""
    if all(isinstance(face, np.ndarray) for face in faces):
        x = torch.from_numpy(np.stack([resize(np.asarray(face), (FACE_SIZE, FACE_SIZE)) for face in faces]))
        return x.permute(0, 3, 1, 2).to(device)
    tensors = [torch.from_numpy(face).permute(2, 0, 1) if isinstance(face, np.ndarray) else face for face in faces]
    return torch.cat([resize_like_cv2(face[None].to(device), FACE_SIZE, FACE_SIZE, shrink=False) for face in tensors])


def soft_mask(classes: np.ndarray) -> np.ndarray:
    """Official mask from a class map: kept classes at 255, blurred twice, 10-px border zeroed, scaled to 0..1."""
    mask = np.where(KEEP_CLASSES[classes], 255.0, 0.0)
    mask = cv2.GaussianBlur(mask, BLUR_KERNEL, BLUR_SIGMA)
    mask = cv2.GaussianBlur(mask, BLUR_KERNEL, BLUR_SIGMA)
    mask[:BORDER, :] = 0
    mask[-BORDER:, :] = 0
    mask[:, :BORDER] = 0
    mask[:, -BORDER:] = 0
    return mask / 255.0


def soft_masks_torch(classes: torch.Tensor) -> torch.Tensor:
    """``soft_mask`` of ``[B, 512, 512]`` class maps on their device, in float32 (MPS has no float64)."""
    keep = torch.as_tensor(KEEP_CLASSES, device=classes.device)
    mask = torch.where(keep[classes], 255.0, 0.0)
    mask = gaussian_blur(gaussian_blur(mask, BLUR_KERNEL[0], BLUR_SIGMA), BLUR_KERNEL[0], BLUR_SIGMA)
    inside = torch.zeros_like(mask)
    inside[:, BORDER:-BORDER, BORDER:-BORDER] = 1.0
    return mask * inside / 255.0
