"""Restoration nodes: the modular steps (restore, background upsample, paste back) and the one-node restore."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from spandrel import ImageModelDescriptor

from ..codeformer.advisor import SOURCES, fidelity_rule
from ..codeformer.codes import restore_tracked_faces
from ..codeformer.errors import InputError
from ..codeformer.models import check_upscaler
from ..codeformer.parts import Part, paste_in_parts, restore_in_parts
from ..codeformer.pipeline import (
    FACE_UPSAMPLE_MODES,
    Networks,
    PasteOptions,
    RestoreSettings,
    check_paste_inputs,
    restore_found_faces,
    upscale_backgrounds,
)
from ..codeformer.restore import restore_faces
from ..codeformer.runtime import PRECISIONS
from ..codeformer.temporal import ClipFrame, TemporalOptions, restore_clip
from ..codeformer.types import FACE_UPSAMPLE_ABOVE
from ..codeformer.upsample import AUTO_TILE, CPU_LARGE_TILE, DEFAULT_TILE
from .convert import ResultBatch, checked_rgb, image_to_numpy, numpy_to_image, placeholder_faces
from .device import check_interrupt, load_on_device, output_device, progress_callback
from .face_nodes import DETECTION_INPUTS, VIDEO_FRAMES_INPUT, detect_options

log = logging.getLogger(__name__)

FIDELITY_INPUT = ("FLOAT", {
    "default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01,
    "tooltip": "CodeFormer w: 0 = best quality (more invented detail), 1 = closest to the input face. "
               "Official suggestion 0.5 (0.7 for old photos). Not used when auto_fidelity is on. CodeFormer only: "
               "GFPGAN and RestoreFormer have no fidelity and ignore it (a warning is logged when it is not 0.5)."})
FACE_UPSAMPLE_INPUT = (list(FACE_UPSAMPLE_MODES), {
    "default": "auto",
    "tooltip": "Upscale restored faces with upscale_model before pasting: off; auto = only faces pasted larger than "
               f"{FACE_UPSAMPLE_ABOVE} px; always (official --face_upsample). Without upscale_model faces are resized "
               "instead."})
AUTO_FIDELITY_TOOLTIP = ("Choose the fidelity of each face from its share of the image instead of the fidelity value "
                         "(best-settings rule): 1.0 for close-ups, else 0.7 for photos or 0.5 for AI images (see "
                         "source).")
AUTO_FIDELITY_INPUT = ("BOOLEAN", {"default": False, "tooltip": AUTO_FIDELITY_TOOLTIP})
SOURCE_INPUT = (list(SOURCES), {
    "default": "ai_generated",
    "tooltip": "Where the image comes from, for auto_fidelity: ai_generated (0.5 unless a close-up) or photo "
               "(0.7 unless a close-up). Ignored when auto_fidelity is off."})
VISIBILITY_INPUT = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                              "tooltip": "Opacity of the restored faces (1 = official)."})
FEATHER_INPUT = ("FLOAT", {"default": 1.0, "min": 0.1, "max": 4.0, "step": 0.05,
                           "tooltip": "Width of the soft mask edge relative to the official one (1 = official)."})
UPSCALE_MODEL_TOOLTIP = "Image upscaler from core Load Upscale Model (e.g. RealESRGAN_x2plus.pth)."
CODE_WINDOW_INPUT = ("INT", {
    "default": TemporalOptions.code_window, "min": 1, "max": 9, "step": 2,
    "tooltip": "Video frames: the codebook choices of each face are averaged over this many consecutive frames "
               "(odd; 1 = off), which stops restored details from flickering. Only used for faces detected with "
               "video_frames on. CodeFormer only (GFPGAN and RestoreFormer have no codes). With video_frames on, "
               "every restorer's faces are also blended with the previous and next frames' where the input faces "
               "agree: noise averages out, real motion is kept."})
PRECISION_INPUT = (list(PRECISIONS), {
    "default": "auto",
    "tooltip": "auto: bfloat16 upscaling on NVIDIA GPUs and on CPUs that run it fast (AMX, or AVX512-BF16 where a "
               "short probe finds it faster; slightly different output, faster), the face parser in fp32; fp32: the "
               "official arithmetic; bf16: bfloat16 everywhere."})


class CodeFormerRestore:
    DESCRIPTION = ("Restores aligned 512x512 faces with CodeFormer (crops from CodeFormer Face Detect, or aligned "
                   "face images). Other sizes are resized to 512.")
    CATEGORY = "codeformer/restore"
    FUNCTION = "restore"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("restored_faces",)
    OUTPUT_TOOLTIPS = ("Restored faces [N, 512, 512, 3], in the order of the input crops "
                       "(one black image when the connected FACES has no face).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("CODEFORMER_MODEL", {"tooltip": "From CodeFormer Model Loader."}),
                "faces": ("IMAGE", {"tooltip": "Aligned face crops (crops output of CodeFormer Face Detect) or "
                                               "aligned face photos."}),
                "fidelity": FIDELITY_INPUT,
                "auto_fidelity": ("BOOLEAN", {"default": False,
                                              "tooltip": AUTO_FIDELITY_TOOLTIP + " Needs detected_faces."}),
                "source": SOURCE_INPUT,
            },
            "optional": {
                "detected_faces": ("FACES", {
                    "tooltip": "faces output of CodeFormer Face Detect: uses whether each source image is grayscale "
                               "(as the official pipeline), and skips restoring when no face was found."}),
                "code_window": CODE_WINDOW_INPUT,
            },
        }

    def restore(self, model, faces, fidelity, detected_faces=None, auto_fidelity=False, source="ai_generated",
                code_window=None):
        if auto_fidelity and detected_faces is None:
            raise InputError("auto_fidelity needs detected_faces to measure each face's share of its image: connect "
                             "the faces output of CodeFormer Face Detect to detected_faces, or turn auto_fidelity off")
        if detected_faces is not None and len(detected_faces) == 0:
            return (placeholder_faces(),)
        crops = image_to_numpy(faces, "faces")
        on_progress = progress_callback()
        device = load_on_device(model.module)
        if detected_faces is None:  # gray flag measured on each crop
            restored = restore_faces(model, crops, fidelity, device=device, on_progress=on_progress,
                                     check_interrupt=check_interrupt)
        elif any(face.track is not None for face in detected_faces.faces):  # video frames: smoothed per track
            temporal = _temporal(code_window)
            restored, _codes = restore_tracked_faces(model, detected_faces, crops,
                                                     fidelity_rule(fidelity, auto_fidelity, source),
                                                     window=temporal.code_window, face_window=temporal.face_window,
                                                     device=device, check_interrupt=check_interrupt)
        else:  # gray flag of each face's source image, as the official pipeline
            restored = restore_found_faces(model, detected_faces, crops, fidelity_rule(fidelity, auto_fidelity, source),
                                           device=device, on_progress=on_progress, check_interrupt=check_interrupt)
        return (numpy_to_image(restored),)


class CodeFormerBackgroundUpsample:
    DESCRIPTION = ("Upscales images to exactly round(width x scale) x round(height x scale), tiled, with an "
                   "upscale model (as the official --bg_upsampler), or bilinear without one.")
    CATEGORY = "codeformer/restore"
    FUNCTION = "upsample"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The upscaled images: connect to background of CodeFormer Paste Faces Back.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The images the faces were detected in."}),
                "scale": ("FLOAT", {"default": 2.0, "min": 1.0, "max": 4.0, "step": 0.05,
                                    "tooltip": "Output size factor (official --upscale)."}),
                "tile": ("INT", {"default": AUTO_TILE, "min": 0, "max": 4096, "step": 8,
                                 "tooltip": f"Tile size in px for the upscale model. 0 = auto: on the CPU up to "
                                            f"{CPU_LARGE_TILE} px ({DEFAULT_TILE}, the official --bg_tile, in bf16 "
                                            "on CPUs with AMX and in fp32), on GPUs as large as free memory allows "
                                            "(fewer overlapping tiles). Halved automatically when out of memory."}),
                "precision": PRECISION_INPUT,
            },
            "optional": {
                "upscale_model": ("UPSCALE_MODEL", {"tooltip": UPSCALE_MODEL_TOOLTIP + " Without it: bilinear."}),
            },
        }

    def upsample(self, image, scale, tile, upscale_model=None, precision="auto"):
        upscaler = _used_upscaler(upscale_model, used=True, warn_missing=False)
        device = load_on_device(upscaler.model if upscaler is not None else None)
        out = upscale_backgrounds(image_to_numpy(image, "image"), scale, upscaler, tile=tile, device=device,
                                  precision=precision, on_progress=progress_callback(),
                                  check_interrupt=check_interrupt)
        return (numpy_to_image(out),)


class CodeFormerPasteBack:
    DESCRIPTION = ("Pastes restored faces back into their images (or the upscaled images) with the official feathered "
                   "masks. Images without faces pass through unchanged.")
    CATEGORY = "codeformer/restore"
    FUNCTION = "paste"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    OUTPUT_TOOLTIPS = ("The images with the restored faces, at the background's size.",
                       "How much of each pixel comes from a restored face (0..1).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "background": ("IMAGE", {"tooltip": "The images the faces were detected in, or their upscaled version "
                                                    "(CodeFormer Background Upsample); same batch, any scale."}),
                "faces": ("FACES", {"tooltip": "faces output of CodeFormer Face Detect."}),
                "restored_faces": ("IMAGE", {"tooltip": "Output of CodeFormer Restore Faces, one per detected face."}),
                "visibility": VISIBILITY_INPUT,
                "feather": FEATHER_INPUT,
                "face_upsample": FACE_UPSAMPLE_INPUT,
                "precision": PRECISION_INPUT,
            },
            "optional": {
                "face_parser": ("FACE_PARSER", {"tooltip": "From CodeFormer Face Parser Loader: blend only the face "
                                                           "itself (official). Without it: a feathered square."}),
                "upscale_model": ("UPSCALE_MODEL", {"tooltip": UPSCALE_MODEL_TOOLTIP + " Used by face_upsample."}),
            },
        }

    def paste(self, background, faces, restored_faces, visibility, feather, face_upsample, face_parser=None,
              upscale_model=None, precision="auto"):
        if len(faces) == 0:  # passed through: RGB, values clamped to 0..1, as when faces are pasted
            rgb = checked_rgb(background, "background")
            check_paste_inputs(len(rgb), faces)
            mask = torch.zeros(rgb.shape[:3], dtype=torch.float32, device=output_device())
            return (rgb.to(output_device(), torch.float32).clamp(0.0, 1.0), mask)
        options = PasteOptions(face_upsample, visibility, feather)
        # auto is the default: without an upscaler it quietly resizes; only an explicit always is warned about
        upscaler = _used_upscaler(upscale_model, options.uses_upscaler, warn_missing=face_upsample == "always")
        device = load_on_device(face_parser.module if face_parser is not None else None,
                                upscaler.model if upscaler is not None else None)
        out = ResultBatch(len(background))
        out.fill_from(paste_in_parts(image_to_numpy(background, "background"), faces,
                                     image_to_numpy(restored_faces, "restored_faces"), options, parser=face_parser,
                                     upscaler=upscaler, device=device, precision=precision,
                                     check_interrupt=check_interrupt))
        return out.outputs()


class CodeFormerFaceRestore:
    DESCRIPTION = ("Detects, restores and pastes back every face in one step, like the official CodeFormer "
                   "inference_codeformer.py; the output is the input enlarged by upscale.")
    CATEGORY = "codeformer/restore"
    FUNCTION = "restore"
    RETURN_TYPES = ("IMAGE", "MASK", "INT")
    RETURN_NAMES = ("image", "mask", "faces")
    OUTPUT_TOOLTIPS = ("The restored images, round(width x upscale) x round(height x upscale).",
                       "How much of each pixel comes from a restored face (0..1).",
                       "Number of faces restored (0 when none: the image is only upscaled).")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Images to restore (a batch is fine)."}),
                "model": ("CODEFORMER_MODEL", {"tooltip": "From CodeFormer Model Loader."}),
                "detector": ("FACE_DETECTOR", {"tooltip": "From CodeFormer Face Detector Loader."}),
                "fidelity": FIDELITY_INPUT,
                "auto_fidelity": AUTO_FIDELITY_INPUT,
                "source": SOURCE_INPUT,
                "upscale": ("FLOAT", {"default": 2.0, "min": 1.0, "max": 4.0, "step": 0.05,
                                      "tooltip": "Output size factor (official --upscale)."}),
                "background_enhance": ("BOOLEAN", {
                    "default": True,
                    "tooltip": "Upscale the background with upscale_model (official --bg_upsampler); "
                               "off, or without upscale_model, it is resized bilinear."}),
                "face_upsample": FACE_UPSAMPLE_INPUT,
                "visibility": VISIBILITY_INPUT,
                "feather": FEATHER_INPUT,
                **DETECTION_INPUTS,
            },
            "optional": {
                "upscale_model": ("UPSCALE_MODEL", {"tooltip": UPSCALE_MODEL_TOOLTIP
                                                    + " Used by background_enhance and face_upsample."}),
                "face_parser": ("FACE_PARSER", {"tooltip": "From CodeFormer Face Parser Loader: blend only the face "
                                                           "itself (official). Without it: a feathered square."}),
                "video_frames": VIDEO_FRAMES_INPUT,
                "code_window": CODE_WINDOW_INPUT,
            },
        }

    # The newer inputs come last, with defaults, so positional callers (scripts, older tests) keep working.
    def restore(self, image, model, detector, fidelity, upscale, background_enhance, face_upsample, confidence,
                min_eye_distance, selection, max_faces, upscale_model=None, face_parser=None, auto_fidelity=False,
                source="ai_generated", visibility=1.0, feather=1.0, video_frames=None, code_window=None):
        settings = RestoreSettings(fidelity_rule(fidelity, auto_fidelity, source), upscale, background_enhance,
                                   detect_options(confidence, min_eye_distance, selection, max_faces),
                                   PasteOptions(face_upsample, visibility, feather))
        networks = Networks(model, detector, face_parser, _used_upscaler(upscale_model, settings.uses_upscaler))
        device = load_on_device(*networks.modules())
        frames = image_to_numpy(image, "image")
        out = ResultBatch(len(frames))
        if video_frames:  # streamed with its own look-ahead, so smoothing runs across the whole batch
            count = out.fill_from(_clip_parts(restore_clip(frames, networks, settings,
                                                           _temporal(code_window), device=device,
                                                           check_interrupt=check_interrupt), len(frames)))
        else:
            count = out.fill_from(restore_in_parts(frames, networks, settings, device=device,
                                                   on_progress=progress_callback(), check_interrupt=check_interrupt))
        return (*out.outputs(), count)


def _temporal(code_window: int | None) -> TemporalOptions:
    """The temporal options of the code_window input (absent in workflows saved before it existed)."""
    return TemporalOptions() if code_window is None else TemporalOptions(code_window=code_window)


def _clip_parts(frames: Iterator[ClipFrame], total: int) -> Iterator[Part]:
    """Each restored frame as a part of one image, with the progress bar moving a frame at a time."""
    on_progress = progress_callback()
    for frame in frames:
        yield Part(frame.index, [frame.image], frame.faces)
        on_progress(frame.index + 1, total)


def _used_upscaler(model: object | None, used: bool, warn_missing: bool = True) -> ImageModelDescriptor | None:
    """The UPSCALE_MODEL input once checked, or None when the settings do not use it (not loaded for nothing);
    with ``warn_missing``, warns when the settings use one that is not connected."""
    if model is None:
        if used and warn_missing:
            log.warning("no upscale_model connected, so background_enhance / face_upsample fall back to plain "
                        "resizing; connect Load Upscale Model (e.g. RealESRGAN_x2plus.pth)")
        return None
    upscaler = check_upscaler(model, "upscale_model")
    return upscaler if used else None


NODES = {
    "CodeFormerRestore": (CodeFormerRestore, "CodeFormer Restore Faces"),
    "CodeFormerBackgroundUpsample": (CodeFormerBackgroundUpsample, "CodeFormer Background Upsample"),
    "CodeFormerPasteBack": (CodeFormerPasteBack, "CodeFormer Paste Faces Back"),
    "CodeFormerFaceRestore": (CodeFormerFaceRestore, "CodeFormer Face Restore"),
}
