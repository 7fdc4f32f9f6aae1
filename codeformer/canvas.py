"""The picture the faces of one image are pasted on, and the result brought back to the output's size.

The official pipeline pastes on its *working* image (the source enlarged to a 512 px short side) scaled by the
upscale factor. For sources with a short side of 512 or more that is the upscaled background itself; smaller
sources are pasted on an enlarged canvas and the result is resized (area) to source x upscale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from spandrel import ImageModelDescriptor

from .errors import InputError
from .geometry import PixelBox, canvas_size, target_size, working_size
from .image import resize, to_working
from .paste import background_inverse, footprint
from .types import FACE_SIZE, FACE_UPSAMPLE_ABOVE, Face
from .upsample import upscale_image

# px around the face crop's part under the canvas (taken to its far edge, w x h): the bilinear warp (OpenCV's, or
# grid_sample on the device) reads the pixel after the one a canvas pixel maps into, and OpenCV rounds that map to
# 1/32 px. test_canvas finds the far edge enough on its own (1 px less is not); 2 more for safety.
SAMPLING_MARGIN = 2


@dataclass(frozen=True)
class Canvas:
    """What the faces of one image are pasted on."""

    image: np.ndarray = field(repr=False)  # (H, W, 3) RGB uint8: the working image x scale
    scale: float  # canvas px per working-image px across (the official upscale factor)
    scale_y: float  # the same down: differs from ``scale`` where rounding made the canvas a pixel taller or shorter
    output_size: tuple[int, int]  # (height, width) of the result


@dataclass(frozen=True)
class PasteResult:
    """One output image: float32 0..255 (H, W, 3) and the pasted-area mask (H, W) 0..1."""

    image: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)


def plain_canvas(image: np.ndarray, upscale: float) -> Canvas:
    """The official canvas without a background upscaler: the working image resized bilinear."""
    return _canvas(to_working(image), image.shape[:2], target_size(image.shape[:2], upscale), cv2.INTER_LINEAR)


def background_canvas(background: np.ndarray, source_size: tuple[int, int], *, index: int = 0,
                      has_faces: bool = True) -> Canvas:
    """The canvas for ``background``, the source (of ``source_size``) at any scale: the background itself, or
    resized with Lanczos (as the official code resizes an upscaled background) for an enlarged source with faces.

    ``index`` names the image in the error raised when ``background`` is not the source at another scale.
    """
    src_h, src_w = source_size
    scale = background.shape[1] / src_w
    if abs(src_h * scale - background.shape[0]) > max(1.0, scale):
        raise InputError(
            f"background {index} is {background.shape[1]}x{background.shape[0]} but its source image is "
            f"{src_w}x{src_h}: not the same picture at another scale; connect the image the faces were detected in, "
            "or its upscaled version")
    if not has_faces:  # nothing is pasted: the output is the background
        return Canvas(background, scale, background.shape[0] / src_h, background.shape[:2])
    return _canvas(background, source_size, background.shape[:2], cv2.INTER_LANCZOS4)


def _canvas(picture: np.ndarray, source_size: tuple[int, int], output: tuple[int, int], interpolation: int) -> Canvas:
    """``picture`` (the source or its working image, at any scale) resized to the canvas of an ``output``."""
    size, scale, scale_y = canvas_geometry(source_size, output)
    return Canvas(resize(picture, size, interpolation), scale, scale_y, output)


def canvas_geometry(source_size: tuple[int, int], output: tuple[int, int]) -> tuple[tuple[int, int], float, float]:
    """The canvas of an ``output`` of a source: its (height, width) and its scales across and down."""
    size = canvas_size(source_size, output)
    work_h, work_w = working_size(source_size)
    return size, size[1] / work_w, size[0] / work_h


def image_canvas(image: np.ndarray, upscale: float, upscaler: ImageModelDescriptor | None, *, has_faces: bool,
                 **upscale_kwargs) -> Canvas:
    """The canvas of one image (official): its background upscaled by ``upscaler``, or without one the working
    image resized bilinear; an image without faces only gets its upscaled background (bilinear without a model)."""
    if has_faces and upscaler is None:
        return plain_canvas(image, upscale)
    background = upscale_image(upscaler, image, upscale, **upscale_kwargs)
    return background_canvas(background, image.shape[:2], has_faces=has_faces)


def face_paste_size(face: Face, scale: float) -> float:
    """Side in canvas pixels that the 512 crop of ``face`` covers when pasted at ``scale`` x the working image."""
    linear = face.inverse[:, :2]
    return FACE_SIZE * scale * float(np.sqrt(abs(np.linalg.det(linear))))


def upsamples_face(upscaler: ImageModelDescriptor | None, mode: str, face: Face, scale: float) -> bool:
    """Whether ``face`` is upscaled before it is pasted at ``scale``: with an upscaler, always, or in ``auto`` mode
    only when it is pasted larger than ``FACE_UPSAMPLE_ABOVE``."""
    return upscaler is not None and not (mode == "auto" and face_paste_size(face, scale) <= FACE_UPSAMPLE_ABOVE)


def face_to_paste(upscaler: ImageModelDescriptor | None, mode: str, face: Face, restored: np.ndarray, scale: float,
                  *, canvas_size: tuple[int, int] | None = None, scale_y: float | None = None,
                  **upscale_kwargs) -> np.ndarray:
    """The restored crop as it is pasted at ``scale``: upscaled where ``upsamples_face`` says, else the crop itself.
    With the ``canvas_size`` (and its ``scale_y``) the upscaler computes only the part the paste shows
    (``shown_part``; not in fp32, the official arithmetic)."""
    if not upsamples_face(upscaler, mode, face, scale):
        return restored
    shown = None if canvas_size is None else shown_part(face, scale, scale_y, canvas_size)
    return upscale_image(upscaler, restored, scale, shown=shown, **upscale_kwargs)


def shown_part(face: Face, scale: float, scale_y: float | None, canvas_size: tuple[int, int]) -> PixelBox | None:
    """The box of ``face``'s upscaled crop (``face_to_paste``) that its paste on a canvas of ``canvas_size`` reads:
    the warp samples the crop only where the canvas is (a face cut by the picture's edge, as in close-up portraits,
    is partly outside it); None when that is all of it (or none: a face off the canvas is computed as before)."""
    side = target_size((FACE_SIZE, FACE_SIZE), scale)[0]
    to_face = cv2.invertAffineTransform(background_inverse(face.inverse, scale, side, scale_y))
    box = footprint(to_face, canvas_size, (side, side), SAMPLING_MARGIN)
    return None if box is None or box == (0, 0, side, side) else box


def fit_output(result: PasteResult, canvas: Canvas) -> PasteResult:
    """``result`` (pasted on ``canvas``) resized (area) to the canvas's output size when it differs."""
    if result.image.shape[:2] == canvas.output_size:
        return result
    size = canvas.output_size
    return PasteResult(resize(result.image, size, cv2.INTER_AREA), resize(result.mask, size, cv2.INTER_AREA))


__all__ = ["Canvas", "PasteResult", "background_canvas", "canvas_geometry", "face_paste_size", "face_to_paste",
           "fit_output", "image_canvas", "plain_canvas", "shown_part", "upsamples_face"]
