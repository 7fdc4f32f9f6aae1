"""Command line: ``python -m codeformer restore|advise ...``.

Exit codes (the message is one ``error:`` line on stderr):

- 0: success (images without faces are written resized, not skipped).
- 1: a model or processing error: model file missing/corrupt/wrong/refused, download failed, out of memory.
- 2: bad arguments or unusable input: unknown option or value out of range, input missing or not an image,
  folder without images, two inputs with the same output name, an output that would overwrite an input.
- 130: interrupted (Ctrl+C). Outputs are written atomically, so no half-written image is left behind.

Inputs are never overwritten: the output image paths are checked before the first image is processed, and
every write is checked again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import model_store
from .image_io import ImageReadError, collect_inputs, read_image, write_image
from .runtime import PRECISIONS, OutOfMemory, resolve_device
from .upsample import AUTO_TILE, DEFAULT_TILE

log = logging.getLogger("codeformer")

DETECTORS = {
    "retinaface_resnet50": "detection_Resnet50_Final.pth",
    "retinaface_mobile0.25": "detection_mobilenet0.25_Final.pth",
}


class CliError(Exception):
    """A user-facing error: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m codeformer", description="CodeFormer face restoration.")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("restore", help="restore the faces in images (whole images, or aligned 512x512 faces)")
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    r.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    r.add_argument("--aligned", action="store_true", help="inputs are aligned 512x512 faces (no detection)")
    r.add_argument("--fidelity", "-w", type=float, default=0.5, help="0 = quality, 1 = fidelity (default 0.5)")
    r.add_argument("--upscale", "-s", type=float, default=2.0, help="output scale of whole images (default 2)")
    r.add_argument("--background-enhance", action="store_true", help="upscale the background with Real-ESRGAN")
    r.add_argument("--face-upsample", action="store_true", help="upscale restored faces with Real-ESRGAN")
    r.add_argument("--face-upsample-mode", choices=("auto", "always"), default="always",
                   help="with --face-upsample: 'always' (official) or 'auto' (only faces pasted larger than 512 px)")
    r.add_argument("--detector", choices=sorted(DETECTORS), default="retinaface_resnet50")
    r.add_argument("--only-center-face", action="store_true", help="restore only the face nearest the centre")
    r.add_argument("--max-faces", type=int, default=0, help="keep at most N faces per image (0 = all)")
    r.add_argument("--save-faces", action="store_true", help="also write OUTDIR/faces/<stem>_NN_crop|restored.png")
    r.add_argument("--upscaler", default="RealESRGAN_x2plus.pth", help="file in upscale_models (default RealESRGAN_x2plus.pth)")
    r.add_argument("--tile", type=int, default=AUTO_TILE,
                   help=f"upscaler tile size in px; 0 (default) = auto: {DEFAULT_TILE} on the CPU (the official size, "
                        "fastest there), on GPUs as large as free memory allows")
    r.add_argument("--batch-size", type=int, default=None,
                   help="faces per CodeFormer batch (default: as many as free GPU memory holds, up to 32; 8 on CPU)")
    r.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default): bf16 on CUDA GPUs that support it and for the upscaler on CPUs with AMX/"
                        "AVX512-BF16, else fp32; fp32: the official arithmetic everywhere; bf16: everywhere")
    r.add_argument("--compile", action="store_true",
                   help="torch.compile CodeFormer on CUDA (faster for many faces; ~1 min to compile first)")
    _common(r)

    a = sub.add_parser("advise", help="print the recommended settings for each image as JSON")
    a.add_argument("inputs", nargs="+", metavar="IMAGE")
    a.add_argument("--source", choices=("ai_generated", "photo"), default="ai_generated")
    a.add_argument("--detector", choices=sorted(DETECTORS), default="retinaface_resnet50")
    _common(a)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", type=Path, default=None,
                   help="folder with facerestore_models/, facedetection/, upscale_models/ "
                        "(default: $CODEFORMER_MODELS_DIR or the per-user cache)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--offline", action="store_true", help="never download; fail with the file's URL and path")
    p.add_argument("-v", "--verbose", action="store_true")


class Models:
    """Resolves (and downloads on demand) model files under one models folder."""

    def __init__(self, models_dir: Path | None, offline: bool) -> None:
        self.root = models_dir or model_store.default_models_dir()
        self.offline = offline

    def path(self, name: str, folder: str) -> Path:
        return model_store.resolve_model_file(name, folder, [self.root / folder], self.root / folder,
                                              offline=self.offline)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        if args.command == "restore":
            return run_restore(args)
        return run_advise(args)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.code
    except (model_store.ModelFileError, OutOfMemory, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; images written so far are complete, the others were not written",
              file=sys.stderr)
        return 130


def run_restore(args: argparse.Namespace) -> int:
    from .pipeline import DetectOptions, restore_images
    from .restore import restore_faces

    if not 0.0 <= args.fidelity <= 1.0:
        raise CliError(f"--fidelity {args.fidelity} is outside 0..1")
    if not 1.0 <= args.upscale <= 8.0:
        raise CliError(f"--upscale {args.upscale} is outside 1..8")
    inputs = _inputs(args.inputs, args.output)
    _check_outputs(inputs, args.output)
    device = resolve_device(args.device)
    if device.type == "cuda":  # fixed 512 px faces and tiles: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
    models = Models(args.models_dir, args.offline)
    codeformer = model_store.load_codeformer(models.path("codeformer.pth", "facerestore_models"))
    codeformer = dataclasses.replace(codeformer, compile=args.compile, precision=args.precision)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.aligned:
        for path in inputs:
            face = _read(path)
            restored = restore_faces(codeformer, [face], args.fidelity, device=device)[0]
            _write(restored.astype(np.float32), args.output / f"{path.stem}.png", inputs)
        return 0

    detector = model_store.load_detector(models.path(DETECTORS[args.detector], "facedetection"), args.detector)
    parser = model_store.load_parser(models.path("parsing_parsenet.pth", "facedetection"))
    upscaler = None
    if args.background_enhance or args.face_upsample:
        upscaler = model_store.load_upscaler(models.path(args.upscaler, "upscale_models"))
    options = DetectOptions(selection="center" if args.only_center_face else "all", max_faces=args.max_faces)
    mode = args.face_upsample_mode if args.face_upsample else "off"
    for path in inputs:
        image = _read(path)
        results, faces, crops, restored = restore_images(
            [image], codeformer=codeformer, detector=detector, parser=parser, upscaler=upscaler,
            fidelity=args.fidelity, upscale=args.upscale, background_enhance=args.background_enhance,
            face_upsample=mode, options=options, tile=args.tile, batch_size=args.batch_size, device=device,
            precision=args.precision)
        log.info("%s: %d face(s)", path.name, len(faces))
        _write(results[0].image, args.output / f"{path.stem}.png", inputs)
        if args.save_faces:
            for i, (crop, face) in enumerate(zip(crops, restored)):
                _write(crop.astype(np.float32), args.output / "faces" / f"{path.stem}_{i:02d}_crop.png", inputs)
                _write(face.astype(np.float32), args.output / "faces" / f"{path.stem}_{i:02d}_restored.png", inputs)
    return 0


def run_advise(args: argparse.Namespace) -> int:
    from .advisor import advise_image

    inputs = _inputs(args.inputs, None)
    device = resolve_device(args.device)
    models = Models(args.models_dir, args.offline)
    detector = model_store.load_detector(models.path(DETECTORS[args.detector], "facedetection"), args.detector)
    for path in inputs:
        advice = advise_image(_read(path), detector, source=args.source, device=device)
        print(json.dumps({"image": str(path), **advice.as_dict()}))
    return 0


def _inputs(items: Sequence[str], output: Path | None) -> list[Path]:
    try:
        inputs = collect_inputs([Path(i) for i in items])
    except ImageReadError as error:
        raise CliError(str(error)) from error
    stems: dict[str, Path] = {}
    for path in inputs:
        if path.stem in stems:
            raise CliError(f"inputs {stems[path.stem]} and {path} would both be written as {path.stem}.png; "
                           "restore them into different output folders")
        stems[path.stem] = path
    return inputs


def _check_outputs(inputs: Sequence[Path], output: Path) -> None:
    """Refuse before any work when ``OUTDIR/<stem>.png`` would replace one of the inputs."""
    originals = {i.resolve() for i in inputs}
    for path in inputs:
        target = output / f"{path.stem}.png"
        if target.resolve() in originals:
            raise CliError(f"refusing to overwrite input file {path} with the output {target}; "
                           "choose another output folder (-o)")


def _read(path: Path) -> np.ndarray:
    try:
        return read_image(path)
    except ImageReadError as error:
        raise CliError(str(error)) from error


def _write(image: np.ndarray, path: Path, inputs: Sequence[Path]) -> None:
    """Write float 0..255 (truncated like the official uint8 cast); never over an input file."""
    if any(path.resolve() == i.resolve() for i in inputs):
        raise CliError(f"refusing to overwrite input file {path}; choose another output folder (-o)")
    write_image(path, np.clip(image, 0, 255).astype(np.uint8))
