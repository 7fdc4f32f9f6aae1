"""Loader nodes: face restorer (CodeFormer, GFPGAN, RestoreFormer), RetinaFace detector and ParseNet parser
(models on the CPU until a node runs them)."""

from __future__ import annotations

import os
from dataclasses import replace

from ..codeformer import models
from ..codeformer.models import DETECTORS, KNOWN_FILES
from ..codeformer.restorers import SUPPORTED
from ..codeformer.runtime import PRECISIONS, check_precision
from .folders import FACEDETECTION, FACERESTORE_MODELS, list_models, model_path

PARSER_FILE = "parsing_parsenet.pth"
_DOWNLOAD_NOTE = " Files not present yet are downloaded on first use."


def _is_parser_file(name: str) -> bool:
    return os.path.basename(name).startswith("parsing_")


def codeformer_choices() -> list[str]:
    """Known CodeFormer files first (codeformer.pth; downloaded if missing), then every file in facerestore_models
    (any face restorer: the loader recognises the architecture from the keys). Other known files (GFPGAN) are
    listed only when present: CodeFormer is the one this pack downloads."""
    known = [f.name for f in KNOWN_FILES.values()
             if f.folder == FACERESTORE_MODELS and f.name.lower().startswith("codeformer")]
    return known + [n for n in list_models(FACERESTORE_MODELS) if n not in known]


def detector_choices() -> list[str]:
    """The two RetinaFace names, then other non-parser files in models/facedetection."""
    official = {kind.file for kind in DETECTORS.values()}
    others = [n for n in list_models(FACEDETECTION) if not _is_parser_file(n) and n not in official]
    return list(DETECTORS) + others


def parser_choices() -> list[str]:
    """parsing_parsenet.pth first, then the other parsing_* files in models/facedetection."""
    return [PARSER_FILE] + [n for n in list_models(FACEDETECTION) if _is_parser_file(n) and n != PARSER_FILE]


class CodeFormerModelLoader:
    DESCRIPTION = ("Loads a face-restoration checkpoint (.pth or .safetensors) from models/facerestore_models: "
                   f"{SUPPORTED}, recognised from its weights (not its name); codeformer.pth is downloaded from the "
                   "official release if it is missing. Only CodeFormer has a fidelity, and GFPGAN runs with the "
                   "noise stored in its checkpoint, so a face restores the same way every time.")
    CATEGORY = "codeformer/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("CODEFORMER_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The face restorer (CodeFormer, GFPGAN or RestoreFormer), for CodeFormer Restore Faces and "
                       "CodeFormer Face Restore.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (codeformer_choices(), {
                "tooltip": "Face restorer in models/facerestore_models: CodeFormer (official: codeformer.pth "
                           "v0.1.0), GFPGAN v1.2-1.4 (GFPGANv1.4.pth) or RestoreFormer (RestoreFormer.pth). Only "
                           "CodeFormer has a fidelity and code smoothing for video." + _DOWNLOAD_NOTE}),
            "compile_on_gpu": ("BOOLEAN", {
                "default": False,
                "tooltip": "torch.compile the network on NVIDIA GPUs: more faces per second for big batches, after a "
                           "compile on the first run, again the first time the number of faces or the fidelity "
                           "changes, and for fidelity 0 (a few compiles in all; later runs reuse them). Worth it for "
                           "long batches and videos, not for a few images. Ignored on the CPU."}),
            "precision": (list(PRECISIONS), {
                "default": "auto",
                "tooltip": "auto: bfloat16 on NVIDIA GPUs that support it (faster and less memory, output close to "
                           "fp32's; the face parser stays fp32); on the CPU CodeFormer in fp32 and the upscaler in "
                           "bfloat16 where the CPU runs it fast (AMX; AVX512-BF16 where a short probe finds it "
                           "faster). fp32: the official arithmetic, bit-identical to the official CodeFormer; use it "
                           "to reproduce official results. bf16: bfloat16 everywhere (fast only on CPUs with AMX or "
                           "AVX512-BF16). In CodeFormer Face Restore it applies to every network."}),
        }}

    def load(self, model_name: str, compile_on_gpu: bool = False, precision: str = "auto"):
        check_precision(precision)
        model = models.load_codeformer(model_path(FACERESTORE_MODELS, model_name))
        return (replace(model, compile=compile_on_gpu, precision=precision),)


class CodeFormerFaceDetectorLoader:
    DESCRIPTION = ("Loads a RetinaFace face detector from models/facedetection. "
                   "retinaface_resnet50 is the official, more accurate one; "
                   "retinaface_mobile0.25 is smaller and faster.")
    CATEGORY = "codeformer/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FACE_DETECTOR",)
    RETURN_NAMES = ("detector",)
    OUTPUT_TOOLTIPS = ("The face detector, for CodeFormer Face Detect and CodeFormer Face Restore.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (detector_choices(), {
                "default": "retinaface_resnet50",
                "tooltip": ", ".join(f"{name} = {kind.file}" for name, kind in DETECTORS.items())
                           + ", or another RetinaFace file in models/facedetection." + _DOWNLOAD_NOTE}),
        }}

    def load(self, model_name: str):
        if model_name in DETECTORS:
            return (models.load_detector(model_path(FACEDETECTION, DETECTORS[model_name].file), model_name),)
        return (models.load_detector(model_path(FACEDETECTION, model_name)),)


class CodeFormerFaceParserLoader:
    DESCRIPTION = ("Loads the ParseNet face parser from models/facedetection. "
                   "With it, paste-back blends only skin, eyes, brows, nose and mouth instead of a feathered square.")
    CATEGORY = "codeformer/loaders"
    FUNCTION = "load"
    RETURN_TYPES = ("FACE_PARSER",)
    RETURN_NAMES = ("face_parser",)
    OUTPUT_TOOLTIPS = ("The face parser, for the face_parser input of CodeFormer Paste Faces Back and "
                       "CodeFormer Face Restore.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (parser_choices(), {
                "tooltip": "Face-parsing checkpoint in models/facedetection (official: parsing_parsenet.pth; "
                           "BiSeNet files are not supported)." + _DOWNLOAD_NOTE}),
        }}

    def load(self, model_name: str):
        return (models.load_parser(model_path(FACEDETECTION, model_name)),)


NODES = {
    "CodeFormerModelLoader": (CodeFormerModelLoader, "CodeFormer Model Loader"),
    "CodeFormerFaceDetectorLoader": (CodeFormerFaceDetectorLoader, "CodeFormer Face Detector Loader"),
    "CodeFormerFaceParserLoader": (CodeFormerFaceParserLoader, "CodeFormer Face Parser Loader"),
}
