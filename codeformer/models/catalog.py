"""The official model files (name, ComfyUI models folder, release URL, SHA-256, size) and the detector names."""

from __future__ import annotations

from dataclasses import dataclass

FOLDERS = ("facerestore_models", "facedetection", "upscale_models")


@dataclass(frozen=True)
class KnownFile:
    """An official model file: its name, ComfyUI ``models/`` subfolder, release URL, SHA-256 and size (if known)."""

    name: str
    folder: str
    url: str
    sha256: str
    size: int | None


KNOWN_FILES: dict[str, KnownFile] = {
    f.name: f
    for f in (
        KnownFile(
            "codeformer.pth",
            "facerestore_models",
            "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth",
            "1009e537e0c2a07d4cabce6355f53cb66767cd4b4297ec7a4a64ca4b8a5684b7",
            376637898,
        ),
        KnownFile(
            "detection_Resnet50_Final.pth",
            "facedetection",
            "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
            "6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d",
            109497761,
        ),
        KnownFile(
            "detection_mobilenet0.25_Final.pth",
            "facedetection",
            "https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
            "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
            1789735,
        ),
        KnownFile(
            "parsing_parsenet.pth",
            "facedetection",
            "https://github.com/xinntao/facexlib/releases/download/v0.2.2/parsing_parsenet.pth",
            "3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2",
            85331193,
        ),
        KnownFile(
            "parsing_bisenet.pth",
            "facedetection",
            "https://github.com/xinntao/facexlib/releases/download/v0.2.0/parsing_bisenet.pth",
            "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567",
            None,
        ),
        KnownFile(
            "RealESRGAN_x2plus.pth",
            "upscale_models",
            "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",
            "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
            67061725,
        ),
        KnownFile(
            "RealESRGAN_x4plus.pth",
            "upscale_models",
            "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
            "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            None,
        ),
        KnownFile(
            "GFPGANv1.4.pth",
            "facerestore_models",
            "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth",
            "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad",
            348632874,
        ),
        # Not in the project's MODELS.md: size and SHA-256 as published alike by several independent model tables
        # (ReActor's, Arch Linux's gfpgan PKGBUILD, other packs), checked on 2026-12-02.
        KnownFile(
            "GFPGANv1.3.pth",
            "facerestore_models",
            "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth",
            "c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70",
            348632874,
        ),
        KnownFile(
            "RestoreFormer.pth",
            "facerestore_models",
            "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/RestoreFormer.pth",
            "07404d446d62ca3d5ed38b1de09a947a1e77d46dbccec961a74d713a8f24ace0",
            290785322,
        ),
    )
}
# The known files that MODELS.md does not list (their source is said above).
OUTSIDE_MODELS_MD = ("GFPGANv1.3.pth", "RestoreFormer.pth")


@dataclass(frozen=True)
class DetectorKind:
    """A RetinaFace detector: its official file (a key of :data:`KNOWN_FILES`) and facexlib's ``network_name``."""

    file: str
    network: str


DETECTORS: dict[str, DetectorKind] = {
    # The order is the order of the Face Detector Loader's list: the official detector first.
    "retinaface_resnet50": DetectorKind("detection_Resnet50_Final.pth", "resnet50"),
    "retinaface_mobile0.25": DetectorKind("detection_mobilenet0.25_Final.pth", "mobile0.25"),
}


def redownload_hint(name: str) -> str:
    """`` from <url>`` when ``name`` is an official file name, else ``""`` (ends a "re-download it" sentence)."""
    known = KNOWN_FILES.get(name)
    return f" from {known.url}" if known is not None else ""


__all__ = ["DETECTORS", "FOLDERS", "KNOWN_FILES", "DetectorKind", "KnownFile", "redownload_hint"]
