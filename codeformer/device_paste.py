"""The paste-back with the canvases on the device: ParseNet masks, the paste and the fit to the output size there,
then one copy of a part's results back to the host.

The twin of ``pipeline.image_canvases`` + ``pipeline.paste_on_canvases`` for the device path (``device_path``):
the plain canvas is the working image resized with OpenCV's bilinear arithmetic on the device; a background made
by an upscaler is built on the host as on the OpenCV path (Real-ESRGAN's tiles come back as they are made, and
Lanczos has no torch twin) and copied up once. Faces that ``face_upsample`` enlarges are upscaled on the host too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from spandrel import ImageModelDescriptor

from .canvas import Canvas, PasteResult, canvas_geometry, face_to_paste, image_canvas, upsamples_face
from .device_resize import area_resize, resize_like_cv2
from .device_warp import paste_faces_torch
from .geometry import target_size
from .parse import parse_labels, soft_masks_torch
from .types import FaceParser, Faces


@dataclass(frozen=True)
class DeviceCanvas:
    """``canvas.Canvas`` with its picture on the device."""

    image: torch.Tensor = field(repr=False)  # [3, H, W] float32 0..255: the working image x scale
    scale: float
    scale_y: float
    output_size: tuple[int, int]


def device_canvases(faces: Faces, frames: torch.Tensor, working: torch.Tensor, upscale: float,
                    upscaler: ImageModelDescriptor | None, images: Sequence[np.ndarray],
                    **upscale_kwargs) -> list[DeviceCanvas]:
    """The canvas of every image (``pipeline.image_canvas``) of a batch whose sources ``images`` are on the device
    as ``frames`` ``[B, 3, H, W]`` uint8 with their working images ``working``: without ``upscaler`` made on the
    device from the working image (an image without faces: from the source, to the output size), else on the host
    and copied up."""
    canvases = []
    for index, members in enumerate(faces.by_image()):
        source_size = images[index].shape[:2]
        output = target_size(source_size, upscale)
        if upscaler is not None:
            host = image_canvas(images[index], upscale, upscaler, has_faces=bool(members), **upscale_kwargs)
            canvases.append(_copied_up(host, frames.device))
        elif members:
            size, scale, scale_y = canvas_geometry(source_size, output)
            image = resize_like_cv2(working[index : index + 1], *size, shrink=False)[0]
            canvases.append(DeviceCanvas(image, scale, scale_y, output))
        else:  # nothing is pasted: the source resized bilinear is the output (``upscale_image`` without a model)
            image = resize_like_cv2(frames[index : index + 1], *output, shrink=False)[0]
            canvases.append(DeviceCanvas(image, output[1] / source_size[1], output[0] / source_size[0], output))
    return canvases


def paste_on_device(
    canvases: Sequence[DeviceCanvas],
    faces: Faces,
    restored: np.ndarray,
    *,
    face_upsample: str,
    visibility: float,
    feather: float,
    parser: FaceParser | None = None,
    upscaler: ImageModelDescriptor | None = None,
    **compute,
) -> list[PasteResult]:
    """``pipeline.paste_on_canvases`` on device canvases: the restored ``[N, 512, 512, 3]`` uint8 faces go up in
    one copy, the results (one size: a batch of one size) come back in one. ``compute``: tile, device, precision,
    check_interrupt (for the upscaler and the parser)."""
    device = canvases[0].image.device if canvases else torch.device("cpu")
    up = torch.from_numpy(np.ascontiguousarray(restored)).to(device).permute(0, 3, 1, 2)
    pasted = []
    for position, face in enumerate(faces.faces):
        canvas = canvases[face.source_index]
        if upsamples_face(upscaler, face_upsample, face, canvas.scale):
            big = face_to_paste(upscaler, face_upsample, face, restored[position], canvas.scale,
                                canvas_size=(canvas.image.shape[1], canvas.image.shape[2]), scale_y=canvas.scale_y,
                                **compute)
            pasted.append(torch.from_numpy(big).to(device).permute(2, 0, 1))
        else:
            pasted.append(up[position])
    masks: list[torch.Tensor | None] = [None] * len(pasted)
    if parser is not None and pasted:
        labels = parse_labels(parser, pasted, device=device, precision=compute.get("precision", "auto"),
                              check_interrupt=compute.get("check_interrupt"))
        masks = list(soft_masks_torch(torch.stack(labels)))
    results = []
    for canvas, members in zip(canvases, faces.by_image(), strict=True):
        image, mask = paste_faces_torch(canvas.image, [pasted[p] for p, _ in members],
                                        [face.inverse for _, face in members], [masks[p] for p, _ in members],
                                        canvas.scale, canvas.scale_y, visibility, feather)
        results.append(_fit_output(torch.cat([image, mask[None]]), canvas.output_size))
    return _to_host(results)


def _copied_up(canvas: Canvas, device: torch.device) -> DeviceCanvas:
    image = torch.from_numpy(np.ascontiguousarray(canvas.image)).to(device).permute(2, 0, 1).float()
    return DeviceCanvas(image, canvas.scale, canvas.scale_y, canvas.output_size)


def _fit_output(pasted: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``canvas.fit_output`` of the image and its mask ``[4, H, W]``: INTER_AREA of floats to ``size``."""
    if tuple(pasted.shape[1:]) == size:
        return pasted
    return area_resize(pasted, *size)


def _to_host(results: list[torch.Tensor]) -> list[PasteResult]:
    """``[4, H, W]`` image + mask tensors as ``PasteResult``s, copied to the host together (when they have one
    size, as a batch of one size has)."""
    if not results:
        return []
    if len({tuple(r.shape) for r in results}) == 1:
        host = torch.stack(results).permute(0, 2, 3, 1).cpu().numpy()
        rows = list(host)
    else:
        rows = [r.permute(1, 2, 0).cpu().numpy() for r in results]
    return [PasteResult(np.ascontiguousarray(r[:, :, :3]), np.ascontiguousarray(r[:, :, 3])) for r in rows]


__all__ = ["DeviceCanvas", "device_canvases", "paste_on_device"]
