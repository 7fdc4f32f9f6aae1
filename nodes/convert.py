"""IMAGE / MASK tensors <-> the library's numpy images, converted once at the node boundary.

ComfyUI: IMAGE ``[B, H, W, C]`` float32 0..1 (C = 3; 1 and 4 are accepted), MASK ``[B, H, W]`` float32 0..1.
Library: ``(H, W, 3)`` RGB uint8 0..255, or float32 0..255 for paste-back results.

Bad pixel values: values outside 0..1 (and +-inf) are clamped, as every ComfyUI image node does. NaN is refused
with an InputError (a ValueError) naming the input: it comes from a broken step upstream (typically a VAE decode
in fp16), and restoring faces in an image that is partly undefined would hide that error instead of reporting it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from ..codeformer.canvas import PasteResult
from ..codeformer.errors import InputError
from ..codeformer.image import float_to_uint8
from ..codeformer.parts import Part
from ..codeformer.types import FACE_SIZE, Faces
from .device import output_device


def image_to_numpy(image: torch.Tensor, name: str = "IMAGE input") -> list[np.ndarray]:
    """IMAGE ``[B, H, W, C]`` 0..1 -> B arrays ``(H, W, 3)`` RGB uint8 (alpha dropped, gray repeated), copies.

    ``name`` (the node input, e.g. ``image``) is used in error messages. Raises InputError for a tensor that is
    not an IMAGE and for NaN values; other values are clamped to 0..1.
    """
    rgb = checked_rgb(image, name)
    # float_to_uint8 returns new arrays, so the (possibly shared) input tensor is never written to.
    array = float_to_uint8(rgb.detach().to("cpu", torch.float32).numpy())
    return list(array)


def checked_rgb(image: torch.Tensor, name: str = "IMAGE input") -> torch.Tensor:
    """``as_rgb(image)`` after the checks of ``image_to_numpy`` (an IMAGE tensor, not empty, no NaN)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"{name}: expected an IMAGE tensor [batch, height, width, channels], got {shape}; "
                         "connect an IMAGE output (e.g. Load Image)")
    if image.shape[-1] == 0 or 0 in image.shape[1:3]:
        raise InputError(f"{name}: the IMAGE is empty ({tuple(image.shape)}: height, width and channels must be "
                         "at least 1); connect an RGB image")
    rgb = as_rgb(image)
    _refuse_nan(rgb, name)
    return rgb


def as_rgb(image: torch.Tensor) -> torch.Tensor:
    """IMAGE ``[B, H, W, C]`` -> ``[B, H, W, 3]``: alpha dropped, gray repeated (a view, values unchanged)."""
    return image[..., :3] if image.shape[-1] >= 3 else image[..., :1].expand(*image.shape[:-1], 3)


def _refuse_nan(rgb: torch.Tensor, name: str) -> None:
    """Raise InputError naming ``name`` and the first bad batch entry when ``rgb`` has NaN values."""
    if not rgb.is_floating_point():
        return
    per_image = torch.isnan(rgb).flatten(1).sum(dim=1)
    bad = per_image.nonzero().flatten().tolist()
    if bad:
        first = bad[0]
        raise InputError(
            f"{name}: image {first} of the batch has {int(per_image[first])} NaN (not a number) value(s)"
            + (f", and {len(bad) - 1} more image(s) have NaN too" if len(bad) > 1 else "")
            + "; the node that made it produced invalid pixels (often a VAE decode in fp16: run ComfyUI with "
            "--fp32-vae or use another VAE), fix it there; values outside 0..1 would be clamped, NaN is refused")


def numpy_to_image(images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """``(H, W, 3)`` uint8 0..255 or float 0..255 arrays (same size) -> IMAGE ``[B, H, W, 3]`` float32 0..1.

    Each image is converted straight into its slot of the result (no stacked or temporary copies of the batch:
    a long batch of video frames needs the output's memory, not three times it).
    """
    out = np.empty((len(images), *np.shape(images[0])), np.float32)
    fill_image(out, images)
    return as_tensor(out)


def fill_image(slots: np.ndarray, images: np.ndarray | Sequence[np.ndarray]) -> None:
    """Write ``images`` (as in ``numpy_to_image``) into ``slots`` ``[B, H, W, 3]`` float32, 0..1."""
    for slot, image in zip(slots, images, strict=True):
        np.divide(image, np.float32(255.0), out=slot, dtype=np.float32)
        np.clip(slot, 0.0, 1.0, out=slot)


def fill_mask(slots: np.ndarray, masks: Sequence[np.ndarray]) -> None:
    """Write ``(H, W)`` float 0..1 masks into ``slots`` ``[B, H, W]`` float32, clipped to 0..1."""
    for slot, mask in zip(slots, masks, strict=True):
        np.clip(mask, 0.0, 1.0, out=slot, dtype=np.float32)


class ResultBatch:
    """The IMAGE and MASK outputs of a batch, filled from paste results part by part (a long batch is pasted a
    few images at a time: only the output and one part's results are in memory)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.images: np.ndarray | None = None
        self.masks: np.ndarray | None = None

    def fill(self, start: int, results: Sequence[PasteResult]) -> None:
        """Convert the results of images ``start, start + 1, ...`` into their slots."""
        if self.images is None or self.masks is None:
            self.images = np.empty((self.count, *results[0].image.shape), np.float32)
            self.masks = np.empty((self.count, *results[0].mask.shape), np.float32)
        fill_image(self.images[start : start + len(results)], [r.image for r in results])
        fill_mask(self.masks[start : start + len(results)], [r.mask for r in results])

    def fill_from(self, parts: Iterable[Part]) -> int:
        """Convert each part as it comes; returns the number of faces in all parts."""
        faces = 0
        for part in parts:
            self.fill(part.start, part.images)
            faces += len(part.faces)
            del part  # converted: not held while the next part is made
        return faces

    def outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.images is None or self.masks is None:
            raise ValueError("no results were filled in")
        return as_tensor(self.images), as_tensor(self.masks)


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A filled float32 array as a node output (shares memory on the CPU)."""
    return torch.from_numpy(array).to(output_device())


def placeholder_faces() -> torch.Tensor:
    """One black ``[1, 512, 512, 3]`` IMAGE, output instead of an empty batch (many nodes fail on empty batches)."""
    return torch.zeros((1, FACE_SIZE, FACE_SIZE, 3), dtype=torch.float32, device=output_device())


def box_masks(faces: Faces) -> torch.Tensor:
    """MASK ``[B, H, W]`` per source image: 1 inside each detected face box, 0 elsewhere (source pixels)."""
    h, w = faces.source_sizes[0] if faces.source_sizes else (1, 1)
    masks = np.zeros((max(1, len(faces.source_sizes)), h, w), np.float32)
    for face in faces.faces:
        x0, y0, x1, y1 = face.source_box
        left, top = int(np.clip(np.floor(x0), 0, w)), int(np.clip(np.floor(y0), 0, h))
        right, bottom = int(np.clip(np.ceil(x1), 0, w)), int(np.clip(np.ceil(y1), 0, h))
        masks[face.source_index, top:bottom, left:right] = 1.0
    return as_tensor(masks)
