"""The whole-image pipeline, top-down: find the faces -> restore them -> build each image's canvas -> paste back.

``restore_images`` runs it all (the one-node restore, the CLI); the modular ComfyUI nodes call the steps one by
one (``find_faces``, ``restore_found_faces``, ``upscale_backgrounds``, ``paste_back``); ``parts`` runs long
batches a few images at a time. Images are numpy ``(H, W, 3)`` RGB uint8 (the official pipeline's domain).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from spandrel import ImageModelDescriptor

from .canvas import Canvas, PasteResult, background_canvas, face_paste_size, face_to_paste, fit_output, image_canvas
from .device_paste import device_canvases, paste_on_device
from .device_path import DeviceFrames, find_faces_on_device, use_device_path
from .errors import InputError
from .faces import DetectOptions, find_faces
from .parse import parse_masks
from .paste import FacePlacement, paste_faces
from .restore import Fidelity, restore_found_faces
from .types import CodeFormerModel, FaceDetector, FaceParser, Faces, Interrupt, Progress
from .upsample import AUTO_TILE, upscale_image

FACE_UPSAMPLE_MODES = ("off", "auto", "always")


@dataclass(frozen=True)
class PasteOptions:
    """How restored faces are pasted back."""

    # off | auto (faces pasted larger than FACE_UPSAMPLE_ABOVE) | always (official --face_upsample)
    face_upsample: str = "off"
    visibility: float = 1.0  # opacity of the restored faces
    feather: float = 1.0  # width of the soft mask edge relative to the official one

    def __post_init__(self) -> None:
        if self.face_upsample not in FACE_UPSAMPLE_MODES:
            raise InputError(f"face_upsample must be one of {', '.join(FACE_UPSAMPLE_MODES)}, "
                             f"got {self.face_upsample!r}")

    @property
    def uses_upscaler(self) -> bool:
        """Whether faces are upscaled (with the upscaler, where one is given) before they are pasted."""
        return self.face_upsample != "off"


@dataclass(frozen=True)
class RestoreSettings:
    """What a whole-image restore does: the official options (fidelity, upscale, background enhance, face upsample)
    and ours (which faces, opacity, feathering)."""

    fidelity: Fidelity = 0.5  # CodeFormer w, or a rule giving it per face
    upscale: float = 2.0  # output = source x upscale
    background_enhance: bool = False  # upscale the background with the upscaler (else bilinear)
    detect: DetectOptions = DetectOptions()
    paste: PasteOptions = PasteOptions()

    @property
    def uses_upscaler(self) -> bool:
        """Whether these settings run an upscaler (background enhance or face upsample)."""
        return self.background_enhance or self.paste.uses_upscaler


@dataclass(frozen=True)
class Networks:
    """The networks of a whole-image restore; the parser and upscaler are optional."""

    restorer: CodeFormerModel
    detector: FaceDetector
    parser: FaceParser | None = None  # without it faces are blended with a feathered square
    upscaler: ImageModelDescriptor | None = None  # used where the settings ask for it

    def modules(self) -> list[torch.nn.Module]:
        """The torch modules of the networks present (to load them onto a device together)."""
        nets = [self.restorer.module, self.detector.module, self.parser.module if self.parser else None,
                self.upscaler.model if self.upscaler else None]
        return [net for net in nets if net is not None]


@dataclass(frozen=True)
class RestoreResult:
    """What ``restore_images`` made: one result per input image, and the faces behind them."""

    images: list[PasteResult] = field(repr=False)  # source x upscale, in input order
    faces: Faces
    crops: np.ndarray = field(repr=False)  # [N, 512, 512, 3] uint8 aligned crops, in ``faces`` order
    restored: np.ndarray = field(repr=False)  # [N, 512, 512, 3] uint8 restored crops


def restore_images(
    images: Sequence[np.ndarray],
    networks: Networks,
    settings: RestoreSettings = RestoreSettings(),
    *,
    device: torch.device | str = "cpu",
    precision: str | None = None,
    tile: int = AUTO_TILE,
    batch_size: int | None = None,
    on_progress: Progress | None = None,
    check_interrupt: Interrupt | None = None,
) -> RestoreResult:
    """Restore every face of every image and paste it back into the image enlarged by ``settings.upscale``.

    ``precision`` (``runtime.use_bf16``) applies to every network; default: the restorer's. ``on_progress(done,
    total)`` counts the steps after detection: each face restored, the canvases (one step per image), the paste.
    On CUDA (or with ``CODEFORMER_DEVICE_PATH=1``) a batch of one size takes the device path (``device_path``,
    ``device_paste``): the same steps with the frames kept on the device, within 1/255 of the OpenCV path.
    """
    # The device path (device_path.use_device_path: CUDA, or forced) keeps the frames on the device to the paste
    located = None
    if use_device_path(device) and len({image.shape for image in images}) == 1:
        located = find_faces_on_device(networks.detector, images, settings.detect, device=device,
                                       check_interrupt=check_interrupt)
    found = located.found if located else find_faces(networks.detector, images, settings.detect, device=device,
                                                     check_interrupt=check_interrupt)
    faces = found.faces
    precision = networks.restorer.precision if precision is None else precision
    steps = len(faces) + len(images) + 1

    def step(done: int, _total: int = 0) -> None:
        if on_progress is not None:
            on_progress(done, steps)

    restored = restore_found_faces(networks.restorer, faces, located.crops if located else found.crops,
                                   settings.fidelity, device=device, batch_size=batch_size, precision=precision,
                                   on_progress=step, check_interrupt=check_interrupt)
    on_device = None if located is None else DeviceFrames(located.frames, located.working)
    results = paste_restored(images, faces, restored, networks, settings, on_device=on_device,
                             on_canvases=lambda: step(len(faces) + len(images)), tile=tile, device=device,
                             precision=precision, check_interrupt=check_interrupt)
    step(steps)
    return RestoreResult(results, faces, found.crops, restored)


def paste_restored(
    images: Sequence[np.ndarray],
    faces: Faces,
    restored: np.ndarray,
    networks: Networks,
    settings: RestoreSettings,
    *,
    on_device: DeviceFrames | None = None,
    on_canvases: Callable[[], None] | None = None,
    **compute: Any,
) -> list[PasteResult]:
    """The canvases of ``images`` (upscaled, or the background enhanced), then the restored faces pasted on them:
    on the host with OpenCV, or on the device where the frames are there (``on_device``: ``device_paste``).
    ``on_canvases()`` is called between the two; ``compute``: tile, device, precision, check_interrupt."""
    if on_device is None:
        canvases = image_canvases(images, faces, networks, settings, **compute)
        if on_canvases is not None:
            on_canvases()
        return paste_on_canvases(canvases, faces, restored, settings.paste, parser=networks.parser,
                                 upscaler=networks.upscaler, **compute)
    bg_model = networks.upscaler if settings.background_enhance else None
    on = device_canvases(faces, on_device.frames, on_device.working, settings.upscale, bg_model, images, **compute)
    if on_canvases is not None:
        on_canvases()
    upsampler = networks.upscaler if settings.paste.uses_upscaler else None
    return paste_on_device(on, faces, restored, face_upsample=settings.paste.face_upsample,
                           visibility=settings.paste.visibility, feather=settings.paste.feather,
                           parser=networks.parser, upscaler=upsampler, **compute)


def image_canvases(images: Sequence[np.ndarray], faces: Faces, networks: Networks, settings: RestoreSettings,
                   **upscale_kwargs) -> list[Canvas]:
    """``image_canvas`` of every image of a batch, with the upscaler where the settings enhance the background."""
    bg_model = networks.upscaler if settings.background_enhance else None
    return [image_canvas(image, settings.upscale, bg_model, has_faces=bool(members), **upscale_kwargs)
            for image, members in zip(images, faces.by_image(), strict=True)]


def upscale_backgrounds(
    images: Sequence[np.ndarray],
    scale: float,
    upscaler: ImageModelDescriptor | None = None,
    *,
    tile: int = AUTO_TILE,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    on_progress: Progress | None = None,
    check_interrupt: Interrupt | None = None,
) -> list[np.ndarray]:
    """Each image upscaled to exactly ``round(W*scale) x round(H*scale)`` (model, else bilinear).

    ``on_progress(done, total)`` counts tiles over the whole batch (its images have one size, as in ComfyUI).
    """
    def tiles_of(index: int) -> Progress | None:
        if on_progress is None:
            return None
        return lambda done, total: on_progress(index * total + done, len(images) * total)

    return [upscale_image(upscaler, img, scale, tile=tile, device=device, precision=precision,
                          on_progress=tiles_of(i), check_interrupt=check_interrupt) for i, img in enumerate(images)]


def check_paste_inputs(backgrounds: int, faces: Faces, restored: int | None = None) -> None:
    """Raise InputError unless there is one background per image and (when given) one restored crop per face."""
    if backgrounds != len(faces.source_sizes):
        raise InputError(f"{backgrounds} background image(s) for faces from {len(faces.source_sizes)} image(s); "
                         "connect the same image batch the faces were detected in (or its upscaled version)")
    if restored is not None and restored != len(faces):
        raise InputError(f"{restored} restored face(s) for {len(faces)} detected face(s); "
                         "connect the restored crops of these FACES")


def paste_back(
    backgrounds: Sequence[np.ndarray],
    faces: Faces,
    restored: np.ndarray | Sequence[np.ndarray],
    options: PasteOptions = PasteOptions(),
    **paste_kwargs,
) -> list[PasteResult]:
    """Paste restored faces into each background (its source at any scale); each output has its background's size.

    ``paste_kwargs`` are those of ``paste_on_canvases`` (parser, upscaler, tile, device, precision, check_interrupt).
    """
    check_paste_inputs(len(backgrounds), faces, len(restored))
    canvases = [background_canvas(bg, faces.source_sizes[i], index=i, has_faces=bool(members))
                for i, (bg, members) in enumerate(zip(backgrounds, faces.by_image(), strict=True))]
    return paste_on_canvases(canvases, faces, restored, options, **paste_kwargs)


def paste_on_canvases(
    canvases: Sequence[Canvas],
    faces: Faces,
    restored: np.ndarray | Sequence[np.ndarray],
    options: PasteOptions = PasteOptions(),
    *,
    parser: FaceParser | None = None,
    upscaler: ImageModelDescriptor | None = None,
    tile: int = AUTO_TILE,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    check_interrupt: Interrupt | None = None,
) -> list[PasteResult]:
    """Face upsample -> parse -> paste, for the faces of every image onto its canvas (official paste-back)."""
    upsampler = upscaler if options.uses_upscaler else None
    pasted = []
    for position, face in enumerate(faces.faces):
        canvas = canvases[face.source_index]
        pasted.append(face_to_paste(upsampler, options.face_upsample, face, restored[position], canvas.scale,
                                    canvas_size=canvas.image.shape[:2], scale_y=canvas.scale_y, tile=tile,
                                    device=device, precision=precision, check_interrupt=check_interrupt))
    masks: Sequence[np.ndarray | None] = [None] * len(pasted)
    if parser is not None and pasted:
        masks = parse_masks(parser, pasted, device=device, precision=precision, check_interrupt=check_interrupt)
    results = []
    for canvas, members in zip(canvases, faces.by_image(), strict=True):
        placements = [FacePlacement(pasted[p], face.inverse, masks[p]) for p, face in members]
        image, mask = paste_faces(canvas.image, placements, canvas.scale, scale_y=canvas.scale_y,
                                  visibility=options.visibility, feather=options.feather)
        results.append(fit_output(PasteResult(image, mask), canvas))
    return results


__all__ = [
    "FACE_UPSAMPLE_MODES", "DetectOptions", "Networks", "PasteOptions", "PasteResult", "RestoreResult",
    "RestoreSettings", "check_paste_inputs", "face_paste_size", "find_faces", "image_canvases", "paste_back",
    "paste_on_canvases", "paste_restored", "restore_found_faces", "restore_images", "upscale_backgrounds",
]
