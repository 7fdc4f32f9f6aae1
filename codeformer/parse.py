"""Face-parsing masks with ParseNet, exactly as the official paste-back builds them."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

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
    *,
    device: torch.device | str = "cpu",
    batch_size: int | None = None,
    precision: str = "auto",
    check_interrupt: Interrupt | None = None,
) -> list[np.ndarray]:
    """Soft face masks ``(512, 512)`` float64 0..1 for restored faces (RGB uint8, any square size).

    ``precision`` as in ``runtime.use_bf16``; ``auto`` is fp32 on every device (``AUTO_NEVER``).
    ``batch_size``: faces per call; default ``runtime.auto_batch_size`` (CodeFormer's, which needs more memory).
    """
    bf16 = use_bf16(device, precision, auto_on=AUTO_NEVER)
    if batch_size is None:
        batch_size = auto_batch_size(device, bf16)
    fmt = memory_format(device, precision)
    net = parser.module.to(device).eval().to(memory_format=fmt)
    labels: list[np.ndarray | None] = [None] * len(faces)

    def run(batch: list[int]) -> None:
        x = torch.from_numpy(np.stack([resize(faces[i], (FACE_SIZE, FACE_SIZE)) for i in batch]))
        t = x.permute(0, 3, 1, 2).to(device)  # uint8 travels as is, scaled on the device (same float32 arithmetic)
        t = (t.float() / 255.0).contiguous(memory_format=fmt)
        with torch.inference_mode(), bf16_autocast(device, bf16):
            out = net((t - 0.5) / 0.5)[0]
        classes = out.float().argmax(dim=1).cpu().numpy()
        for i, c in zip(batch, classes, strict=True):
            labels[i] = c

    run_in_batches(run, list(range(len(faces))), batch_size, check_interrupt=check_interrupt, what="ParseNet")
    return [soft_mask(c) for c in labels if c is not None]


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
