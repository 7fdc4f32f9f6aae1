"""The whole-image pipeline (detect -> align -> restore -> upsample -> paste), as composable steps.

The ComfyUI nodes call these steps one by one; the one-node restore and the CLI call ``restore_images``.
Images are numpy (H, W, 3) RGB uint8 (the official pipeline's domain).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from .align import estimate_affine, invert_affine, warp_face
from .detect import CONFIDENCE, MIN_EYE_DISTANCE, NMS_THRESHOLD, detect_faces, select_faces
from .image import is_gray, resize, to_working
from .parse import parse_masks
from .paste import FacePlacement, paste_faces
from .restore import restore_faces
from .geometry import target_size, working_scale, working_size
from .types import FACE_SIZE, CodeFormerModel, Face, FaceDetector, FaceParser, Faces
from .upsample import AUTO_TILE, upscale_image

log = logging.getLogger(__name__)

FACE_UPSAMPLE_MODES = ("off", "auto", "always")
Fidelity = float | Callable[[Face], float]


@dataclass(frozen=True)
class DetectOptions:
    """How faces are found and which are kept."""

    confidence: float = CONFIDENCE
    nms_threshold: float = NMS_THRESHOLD
    min_eye_distance: float = MIN_EYE_DISTANCE
    selection: str = "all"  # all | largest | center | index list "0,2"
    max_faces: int = 0  # 0 = no limit


@dataclass(frozen=True)
class PasteResult:
    """One output image: float32 0..255 (H, W, 3) and the pasted-area mask (H, W) 0..1."""

    image: np.ndarray
    mask: np.ndarray


def find_faces(
    detector: FaceDetector,
    images: Sequence[np.ndarray],
    options: DetectOptions = DetectOptions(),
    *,
    device: torch.device | str = "cpu",
    check_interrupt: Callable[[], None] | None = None,
) -> tuple[Faces, np.ndarray]:
    """Detect and align the faces of every image; returns the faces and their ``[N, 512, 512, 3]`` uint8 crops."""
    faces: list[Face] = []
    crops: list[np.ndarray] = []
    sizes = []
    for index, source in enumerate(images):
        if check_interrupt is not None:
            check_interrupt()
        size = source.shape[:2]
        gray = is_gray(source)
        sizes.append(size)
        working = to_working(source)
        found = detect_faces(detector, working, confidence=options.confidence, nms_threshold=options.nms_threshold,
                             min_eye_distance=options.min_eye_distance, device=device)
        chosen = select_faces(found, working.shape[:2], options.selection, options.max_faces)
        for det in chosen:
            affine = estimate_affine(det.landmarks)
            crops.append(warp_face(working, affine))
            faces.append(Face(source_index=index, box=det.box, score=det.score, landmarks=det.landmarks,
                              affine=affine, inverse=invert_affine(affine), source_size=size, is_gray=gray))
        log.info("image %d: %d face(s) found, %d kept", index, len(found), len(chosen))
    stacked = np.stack(crops) if crops else np.zeros((0, FACE_SIZE, FACE_SIZE, 3), np.uint8)
    return Faces(tuple(faces), tuple(sizes)), stacked


def restore_found_faces(
    model: CodeFormerModel,
    faces: Faces,
    crops: np.ndarray,
    fidelity: Fidelity = 0.5,
    **kwargs,
) -> np.ndarray:
    """Restore the crops of ``find_faces`` with each source's gray flag; ``fidelity`` may be a rule per face."""
    weights = [fidelity(f) for f in faces.faces] if callable(fidelity) else fidelity
    return restore_faces(model, crops, weights, gray=[f.is_gray for f in faces.faces], **kwargs)


def face_paste_size(face: Face, scale: float) -> float:
    """Side in background pixels that the 512 crop of ``face`` covers when pasted at ``scale`` x the working image."""
    linear = face.inverse[:, :2]
    return FACE_SIZE * scale * float(np.sqrt(abs(np.linalg.det(linear))))


def check_backgrounds(count: int, faces: Faces) -> None:
    """Raise ValueError unless there is one background per image the faces were detected in."""
    if count != len(faces.source_sizes):
        raise ValueError(f"{count} background image(s) for faces from {len(faces.source_sizes)} image(s); "
                         "connect the same image batch the faces were detected in (or its upscaled version)")


def check_paste_inputs(backgrounds: int, faces: Faces, restored: int) -> None:
    """Raise ValueError unless there is one background per image and one restored crop per face."""
    check_backgrounds(backgrounds, faces)
    if restored != len(faces):
        raise ValueError(f"{restored} restored face(s) for {len(faces)} detected face(s); "
                         "connect the restored crops of these FACES")


def paste_back(
    backgrounds: Sequence[np.ndarray],
    faces: Faces,
    restored: np.ndarray,
    *,
    parser: FaceParser | None = None,
    face_upscaler: object | None = None,
    face_upsample: str = "off",
    visibility: float = 1.0,
    feather: float = 1.0,
    tile: int = AUTO_TILE,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    check_interrupt: Callable[[], None] | None = None,
    canvases: Sequence[np.ndarray | None] | None = None,
) -> list[PasteResult]:
    """Paste restored faces into each background (its source x any scale); output has the background's size.

    As in the official code, faces are pasted on a canvas of the *working* image (short side enlarged to 512)
    times the scale, which for sources with a short side >= 512 is the background itself; smaller sources get
    the background resized (Lanczos) to that canvas, or ``canvases[i]`` when given, and the result is brought
    back to the background's size.
    """
    if face_upsample not in FACE_UPSAMPLE_MODES:
        raise ValueError(f"face_upsample must be one of {FACE_UPSAMPLE_MODES}, got '{face_upsample}'")
    check_paste_inputs(len(backgrounds), faces, len(restored))
    # 1) per image: its paste canvas and the faces to paste (face-upsampled where asked)
    jobs: list[tuple[np.ndarray, float, list[tuple[Face, np.ndarray]]] | None] = []
    for index, bg in enumerate(backgrounds):
        members = faces.for_image(index)
        src_h, src_w = faces.source_sizes[index]
        scale = bg.shape[1] / src_w  # background px per source px
        if abs(src_h * scale - bg.shape[0]) > max(1.0, scale):
            raise ValueError(
                f"background {index} is {bg.shape[1]}x{bg.shape[0]} but its source image is {src_w}x{src_h}: "
                "not the same picture at another scale; connect the image the faces were detected in, "
                "or its upscaled version")
        if not members:
            jobs.append(None)
            continue
        work_h, work_w = working_size((src_h, src_w))
        work_bg = canvases[index] if canvases is not None and canvases[index] is not None else \
            resize(bg, (int(work_h * scale), int(work_w * scale)), cv2.INTER_LANCZOS4)
        s = work_bg.shape[1] / work_w  # canvas px per working px: the official upscale factor
        to_paste = []
        for position, face in members:
            if check_interrupt is not None:
                check_interrupt()
            img = restored[position]
            if _upsample_this(face_upsample, face_upscaler, face, s):
                img = upscale_image(face_upscaler, img, s, tile=tile, device=device, precision=precision,
                                    check_interrupt=check_interrupt)
            to_paste.append((face, img))
        jobs.append((work_bg, s, to_paste))
    # 2) the parsing masks of every face of every image, in shared batches
    pasted = [img for job in jobs if job is not None for _, img in job[2]]
    masks: list[np.ndarray | None] = [None] * len(pasted)
    if parser is not None and pasted:
        masks = list(parse_masks(parser, pasted, device=device, precision=precision, check_interrupt=check_interrupt))
    # 3) paste
    next_mask = iter(masks)
    results = []
    for bg, job in zip(backgrounds, jobs):
        if job is None:
            results.append(PasteResult(bg.astype(np.float32), np.zeros(bg.shape[:2], np.float32)))
            continue
        work_bg, s, to_paste = job
        placements = [FacePlacement(img, face.inverse, next(next_mask)) for face, img in to_paste]
        image, mask = paste_faces(work_bg, placements, s, visibility=visibility, feather=feather)
        # small source: back from the working size to the background's size
        results.append(_fit(PasteResult(image, mask), bg.shape[:2]))
    return results


def _upsample_this(mode: str, upscaler: object | None, face: Face, scale: float) -> bool:
    if upscaler is None or mode == "off":
        return False
    if mode == "always":
        return True
    return face_paste_size(face, scale) > FACE_SIZE  # auto: only faces pasted larger than the 512 crop


def upscale_backgrounds(
    images: Sequence[np.ndarray],
    scale: float,
    upscaler: object | None = None,
    *,
    tile: int = AUTO_TILE,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    on_progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> list[np.ndarray]:
    """Each image upscaled to exactly ``round(W*scale) x round(H*scale)`` (model, else bilinear).

    ``on_progress(done, total)`` counts tiles over the whole batch (its images have one size, as in ComfyUI).
    """
    def tiles_of(index: int) -> Callable[[int, int], None] | None:
        if on_progress is None:
            return None
        return lambda done, total: on_progress(index * total + done, len(images) * total)

    return [upscale_image(upscaler, img, scale, tile=tile, device=device, precision=precision,
                          on_progress=tiles_of(i), check_interrupt=check_interrupt) for i, img in enumerate(images)]


def restore_images(
    images: Sequence[np.ndarray],
    *,
    codeformer: CodeFormerModel,
    detector: FaceDetector,
    parser: FaceParser | None = None,
    upscaler: object | None = None,
    fidelity: Fidelity = 0.5,
    upscale: float = 2.0,
    background_enhance: bool = False,
    face_upsample: str = "off",
    options: DetectOptions = DetectOptions(),
    visibility: float = 1.0,
    feather: float = 1.0,
    tile: int = AUTO_TILE,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
    precision: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> tuple[list[PasteResult], Faces, np.ndarray, np.ndarray]:
    """Full pipeline. Returns the results (source x ``upscale``), the faces, their crops and restored faces.

    ``precision`` (``runtime.use_bf16``) applies to every network; default: ``codeformer.precision``.
    ``on_progress(done, total)`` counts the steps after detection: each face restored, the backgrounds (one step
    per image), the paste.
    """
    faces, crops = find_faces(detector, images, options, device=device, check_interrupt=check_interrupt)
    precision = codeformer.precision if precision is None else precision
    steps = len(faces) + len(images) + 1

    def step(done: int, _total: int = 0) -> None:
        if on_progress is not None:
            on_progress(done, steps)

    restored = restore_found_faces(codeformer, faces, crops, fidelity, device=device, batch_size=batch_size,
                                   precision=precision, on_progress=step, check_interrupt=check_interrupt)
    bg_model = upscaler if background_enhance else None
    backgrounds = upscale_backgrounds(images, upscale, bg_model, tile=tile, device=device, precision=precision,
                                      check_interrupt=check_interrupt)
    step(len(faces) + len(images))
    canvases = None if bg_model is not None else \
        [plain_canvas(img, upscale) if faces.for_image(i) else None for i, img in enumerate(images)]
    results = paste_back(backgrounds, faces, restored, parser=parser, face_upscaler=upscaler,
                         face_upsample=face_upsample, visibility=visibility, feather=feather, tile=tile,
                         device=device, precision=precision, check_interrupt=check_interrupt, canvases=canvases)
    step(steps)
    return results, faces, crops, restored


# Images per ``restore_images`` call in a long batch (video frames): a call holds its results as float32 until they
# are converted, so it gets about this many output pixels (~2 GB of intermediates), at least one image.
PIXELS_PER_RUN = 64 * 2**20


def images_per_run(size: tuple[int, int], upscale: float) -> int:
    """How many images of ``size`` (height, width) to restore per call at ``upscale`` (see PIXELS_PER_RUN)."""
    h, w = target_size(size, upscale)
    return max(1, PIXELS_PER_RUN // (h * w))


def plain_canvas(image: np.ndarray, scale: float) -> np.ndarray | None:
    """The official paste canvas without an upscaler for a source whose short side is under 512: the working
    image resized bilinear by ``scale`` (None for larger sources, whose canvas is the background itself)."""
    if working_scale(image.shape[:2]) == 1.0:
        return None
    working = to_working(image)
    h, w = working.shape[:2]
    return cv2.resize(working, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_LINEAR)


def _fit(result: PasteResult, size: tuple[int, int]) -> PasteResult:
    """``result`` resized (area) to (height, width) ``size`` when it differs."""
    if result.image.shape[:2] == size:
        return result
    return PasteResult(resize(result.image, size, cv2.INTER_AREA), resize(result.mask, size, cv2.INTER_AREA))


__all__ = [
    "DetectOptions", "PasteResult", "FACE_UPSAMPLE_MODES", "find_faces", "restore_found_faces", "paste_back",
    "upscale_backgrounds", "restore_images", "face_paste_size", "target_size", "images_per_run",
    "check_backgrounds", "check_paste_inputs",
]
