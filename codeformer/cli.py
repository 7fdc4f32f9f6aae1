"""Command line: ``python -m codeformer restore|advise ...``.

Exit codes (the message is one ``error:`` line on stderr):

- 0: success (images without faces are written resized, not skipped).
- 1: a model or processing error: model file missing/corrupt/wrong/refused, download failed, out of memory.
- 2: bad arguments or unusable input: unknown option or value out of range, input missing, folder without
  images, two inputs with the same output name, an output that would overwrite an input or (without
  ``--overwrite``) an existing file, ``-o`` naming a file; or some inputs were skipped, being unreadable or too
  large for the free memory at that ``--upscale`` (the others were restored and written: each skipped file gets
  its own ``error:`` line).
- 130: interrupted (Ctrl+C). Outputs are written atomically, so no half-written image is left behind.

Nothing is overwritten by surprise: the output paths are checked before models load; inputs never, other existing
files only with ``--overwrite``, and every write is checked again.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import json
import logging
import math
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from . import models as model_store
from .advisor import SOURCES
from .image_io import IMAGE_EXTENSIONS, ImageReadError, InputImage, alpha_for, collect_inputs, read_input, write_image
from .runtime import PRECISIONS, OutOfMemory, available_host_memory, resolve_device
from .geometry import target_size, working_size
from .types import FACE_SIZE
from .upsample import AUTO_TILE, DEFAULT_TILE

log = logging.getLogger("codeformer")

DETECTORS = {
    "retinaface_resnet50": "detection_Resnet50_Final.pth",
    "retinaface_mobile0.25": "detection_mobilenet0.25_Final.pth",
}


# Peak host memory of restoring one whole image, per pixel of its output (or of its paste canvas, for sources with a
# short side under 512): numpy arrays measured with tracemalloc, 24.6 B for whole_02.png at -s 4; rounded up.
BYTES_PER_OUTPUT_PIXEL = 28


class CliError(Exception):
    """A user-facing error: printed as one line, exit code ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m codeformer", description="CodeFormer face restoration.")
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("restore", help="restore the faces in images (whole images, or aligned 512x512 faces)")
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    r.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR",
                   help="output folder (created if missing); OUTDIR/<input name>.png per image")
    r.add_argument("--overwrite", action="store_true", help="replace existing files in OUTDIR (never the inputs)")
    r.add_argument("--aligned", action="store_true", help="inputs are aligned 512x512 faces (no detection)")
    r.add_argument("--fidelity", "-w", type=float, default=None, help="0 = quality, 1 = fidelity (default 0.5)")
    r.add_argument("--upscale", "-s", type=float, default=None, help="output scale of whole images, 1..8 (default 2)")
    r.add_argument("--background-enhance", action="store_true", help="upscale the background with Real-ESRGAN")
    r.add_argument("--face-upsample", action="store_true", help="upscale restored faces with Real-ESRGAN")
    r.add_argument("--face-upsample-mode", choices=("auto", "always"), default=None,
                   help="implies --face-upsample: 'always' (its default, official) or 'auto' (only faces pasted "
                        "larger than 512 px)")
    r.add_argument("--best-settings", choices=SOURCES, default=None, metavar="SOURCE",
                   help="per image, the fidelity, background enhance, face upsample and upscale of the best-settings "
                        f"rules for this source ({' or '.join(SOURCES)}; as `advise`); not with -w, -s, "
                        "--background-enhance, --face-upsample(-mode) or --aligned")
    r.add_argument("--detector", choices=sorted(DETECTORS), default="retinaface_resnet50")
    r.add_argument("--only-center-face", action="store_true", help="restore only the face nearest the centre")
    r.add_argument("--max-faces", type=_at_least(0), default=0, help="keep at most N faces per image (0 = all)")
    r.add_argument("--save-faces", action="store_true", help="also write OUTDIR/faces/<stem>_NN_crop|restored.png")
    r.add_argument("--upscaler", default="RealESRGAN_x2plus.pth", help="file in upscale_models (default RealESRGAN_x2plus.pth)")
    r.add_argument("--tile", type=_at_least(0), default=AUTO_TILE,
                   help=f"upscaler tile size in px; 0 (default) = auto: {DEFAULT_TILE} on the CPU (the official size, "
                        "fastest there), on GPUs as large as free memory allows")
    r.add_argument("--batch-size", type=_at_least(1), default=None,
                   help="faces per CodeFormer batch (default: as many as free GPU memory holds, up to 32; 1 on CPU)")
    r.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default): bf16 on CUDA GPUs that support it and for the upscaler on CPUs with AMX/"
                        "AVX512-BF16, else fp32; fp32: the official arithmetic everywhere; bf16: everywhere")
    r.add_argument("--compile", action="store_true",
                   help="torch.compile CodeFormer on CUDA (faster for many faces; ~1 min to compile first)")
    _common(r)

    a = sub.add_parser("advise", help="print the recommended settings for each image as JSON")
    a.add_argument("inputs", nargs="+", metavar="IMAGE")
    a.add_argument("--source", choices=SOURCES, default="ai_generated")
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
    if args.fidelity is not None and not 0.0 <= args.fidelity <= 1.0:
        raise CliError(f"--fidelity {args.fidelity} is outside 0..1")
    if args.upscale is not None and not 1.0 <= args.upscale <= 8.0:
        raise CliError(f"--upscale {args.upscale} is outside 1..8")
    if args.best_settings:
        chosen = [name for name, value in (("--fidelity", args.fidelity), ("--upscale", args.upscale),
                                           ("--background-enhance", args.background_enhance),
                                           ("--face-upsample", args.face_upsample or args.face_upsample_mode),
                                           ("--aligned", args.aligned)) if value not in (None, False)]
        if chosen:
            raise CliError(f"--best-settings chooses the settings itself: drop {', '.join(chosen)}, or drop "
                           "--best-settings" + (" (aligned faces have no shot to judge)" if args.aligned else ""))
    inputs = _inputs(args.inputs)
    device = _device(args.device)
    _check_output_folder(args.output)
    _check_outputs(inputs, args.output, args.save_faces, args.overwrite)
    created = not args.output.exists()
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CliError(f"cannot create the output folder {args.output}: {error.strerror or error}") from error
    try:
        failed = _restore_all(args, inputs, device)
    finally:
        if created and not any(args.output.iterdir()):
            args.output.rmdir()  # a run that wrote nothing leaves nothing behind
    return _report_skipped(failed, len(inputs))


def _restore_all(args: argparse.Namespace, inputs: Sequence[Path], device: torch.device) -> list[Path]:
    """Restore every input into ``args.output``; returns the inputs skipped (unreadable or too large for the
    memory; each reported)."""
    from .pipeline import DetectOptions, restore_images
    from .restore import restore_faces

    if device.type == "cuda":  # fixed 512 px faces and tiles: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
    models = Models(args.models_dir, args.offline)
    codeformer = model_store.load_codeformer(models.path("codeformer.pth", "facerestore_models"))
    codeformer = dataclasses.replace(codeformer, compile=args.compile, precision=args.precision)
    if args.aligned:
        detector = parser = None
    else:
        detector = model_store.load_detector(models.path(DETECTORS[args.detector], "facedetection"), args.detector)
        parser = model_store.load_parser(models.path("parsing_parsenet.pth", "facedetection"))
    given = None if args.best_settings else _given_settings(args)
    upscaler = None
    if given is not None and not args.aligned and given.uses_upscaler:  # a broken file stops the run before any image
        upscaler = model_store.load_upscaler(models.path(args.upscaler, "upscale_models"))
    options = DetectOptions(selection="center" if args.only_center_face else "all", max_faces=args.max_faces)
    failed = []
    for path in inputs:
        source = _read_or_report(path, failed)
        if source is None:
            continue
        image = source.rgb
        settings = given or _advised_settings(path, image, detector, args.best_settings, device)
        if upscaler is None and not args.aligned and settings.uses_upscaler:
            upscaler = model_store.load_upscaler(models.path(args.upscaler, "upscale_models"))
        too_large = None if args.aligned else _too_large(image.shape[:2], settings.upscale)
        if too_large:
            print(f"error: {path}: {too_large}; skipped", file=sys.stderr)
            failed.append(path)
            continue
        if args.aligned:
            if image.shape[:2] != (FACE_SIZE, FACE_SIZE):
                log.warning("%s is %dx%d, not an aligned 512x512 face: resized to 512x512 (as the official "
                            "--has_aligned)", path, image.shape[1], image.shape[0])
            restored = restore_faces(codeformer, [image], settings.fidelity, device=device)[0]
            _write(restored, args.output / f"{path.stem}.png", inputs, source.alpha)
            continue
        with _progress(path.name) as on_progress:
            results, faces, crops, restored = restore_images(
                [image], codeformer=codeformer, detector=detector, parser=parser, upscaler=upscaler,
                fidelity=settings.fidelity, upscale=settings.upscale, background_enhance=settings.background_enhance,
                face_upsample=settings.face_upsample, options=options, tile=args.tile, batch_size=args.batch_size,
                device=device, precision=args.precision, on_progress=on_progress)
        log.info("%s: %d face(s)", path.name, len(faces))
        _write(results[0].image, args.output / f"{path.stem}.png", inputs, source.alpha)
        if args.save_faces:
            for i, (crop, face) in enumerate(zip(crops, restored)):
                _write(crop, args.output / "faces" / f"{path.stem}_{i:02d}_crop.png", inputs)
                _write(face, args.output / "faces" / f"{path.stem}_{i:02d}_restored.png", inputs)
    return failed


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one image is restored with."""

    fidelity: float
    upscale: float
    background_enhance: bool
    face_upsample: str  # off | auto | always

    @property
    def uses_upscaler(self) -> bool:
        return self.background_enhance or self.face_upsample != "off"


def _given_settings(args: argparse.Namespace) -> Settings:
    """The settings of the command line (with the official defaults -w 0.5 -s 2)."""
    return Settings(0.5 if args.fidelity is None else args.fidelity, 2.0 if args.upscale is None else args.upscale,
                    args.background_enhance, args.face_upsample_mode or ("always" if args.face_upsample else "off"))


def _advised_settings(path: Path, image: np.ndarray, detector: object, source: str, device: torch.device) -> Settings:
    """The best-settings rules' choice for ``image`` (as the Best Settings node), printed with the reason."""
    from .advisor import advise_image, face_upsample_mode

    advice = advise_image(image, detector, source, device=device)
    settings = Settings(advice.fidelity, float(advice.upscale), advice.background_enhance,
                        face_upsample_mode(advice, source))
    print(f"{path}: fidelity {settings.fidelity:g}, background enhance {'on' if settings.background_enhance else 'off'}"
          f", face upsample {settings.face_upsample}, upscale {settings.upscale:g} ({advice.reason})", flush=True)
    return settings


@contextlib.contextmanager
def _progress(name: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (shown only on a terminal) driven by ``on_progress(done, total)``."""
    with tqdm(desc=name, unit="step", disable=None, leave=False, file=sys.stderr) as bar:
        def on_progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield on_progress


def run_advise(args: argparse.Namespace) -> int:
    from .advisor import advise_image

    inputs = _inputs(args.inputs)
    device = _device(args.device)
    models = Models(args.models_dir, args.offline)
    detector = model_store.load_detector(models.path(DETECTORS[args.detector], "facedetection"), args.detector)
    failed: list[Path] = []
    for path in inputs:
        source = _read_or_report(path, failed)
        if source is not None:
            advice = advise_image(source.rgb, detector, source=args.source, device=device)
            print(json.dumps({"image": str(path), **advice.as_dict()}))
    return _report_skipped(failed, len(inputs))


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except (ValueError, RuntimeError) as error:
        raise CliError(f"--device {name}: {error}") from error


def _inputs(items: Sequence[str]) -> list[Path]:
    """The input images (a file named twice counts once); refuses two inputs with the same output name."""
    try:
        found = collect_inputs([Path(i) for i in items])
    except ImageReadError as error:
        raise CliError(str(error)) from error
    first: dict[Path, Path] = {}
    for path in found:
        first.setdefault(path.resolve(), path)
    inputs = list(first.values())  # in order, each file once
    stems: dict[str, Path] = {}
    for path in inputs:
        if path.stem in stems:
            raise CliError(f"inputs {stems[path.stem]} and {path} would both be written as {path.stem}.png; "
                           "restore them into different output folders")
        stems[path.stem] = path
    return inputs


def _check_output_folder(output: Path) -> None:
    """``-o`` must be a folder (existing or new), not a file or a file name."""
    if output.exists() and not output.is_dir():
        raise CliError(f"-o {output} is a file; -o takes a folder (outputs are written as OUTDIR/<input name>.png)")
    if not output.exists() and output.suffix.lower() in IMAGE_EXTENSIONS:
        raise CliError(f"-o {output} looks like a file name; -o takes a folder (outputs are written as "
                       "OUTDIR/<input name>.png)")


def _check_outputs(inputs: Sequence[Path], output: Path, save_faces: bool, overwrite: bool) -> None:
    """Refuse before any work when an output would replace an input, a folder, or (unless ``overwrite``) a file."""
    originals = {i.resolve() for i in inputs}
    existing = []
    for path in inputs:
        target = output / f"{path.stem}.png"
        if target.resolve() in originals:
            raise CliError(f"refusing to overwrite input file {path} with the output {target}; "
                           "choose another output folder (-o)")
        if target.is_dir():
            raise CliError(f"the output {target} is a folder; rename it or choose another output folder (-o)")
        faces = sorted((output / "faces").glob(f"{glob.escape(path.stem)}_[0-9][0-9]_*.png")) if save_faces else []
        existing += [p for p in [target, *faces] if p.exists()]
    if existing and not overwrite:
        shown = ", ".join(str(p) for p in existing[:3]) + (f" and {len(existing) - 3} more" if len(existing) > 3 else "")
        raise CliError(f"{len(existing)} output file(s) already exist: {shown}; pass --overwrite to replace them, "
                       "or choose another output folder (-o)")


def _read_or_report(path: Path, failed: list[Path]) -> InputImage | None:
    """The image, or None after printing why it cannot be read (``path`` is added to ``failed``)."""
    try:
        source = read_input(path)
    except ImageReadError as error:
        print(f"error: {error}; skipped", file=sys.stderr)
        failed.append(path)
        return None
    for note in source.notes:
        log.warning("%s: %s", path, note)
    return source


def _too_large(size: tuple[int, int], upscale: float) -> str | None:
    """Why an image of ``size`` cannot be restored at ``upscale`` in the memory left (None if it can, or if the
    system does not say how much is left)."""
    available = available_host_memory()
    if available is None:
        return None
    pixels = max(h * w for h, w in (target_size(size, upscale), target_size(working_size(size), upscale)))
    need = pixels * BYTES_PER_OUTPUT_PIXEL
    if need <= available:
        return None
    largest = math.floor(upscale * math.sqrt(available / need) * 10) / 10
    fix = f"use --upscale {largest:g} or less" if largest >= 1 else "it does not fit even at --upscale 1"
    return (f"restoring it at --upscale {upscale:g} needs about {need / 1e9:.1f} GB of memory but "
            f"{available / 1e9:.1f} GB are free; {fix}")


def _report_skipped(failed: Sequence[Path], total: int) -> int:
    if not failed:
        return 0
    rest = "nothing was processed" if len(failed) == total else "the others were processed"
    print(f"error: {len(failed)} of {total} input(s) were skipped (see above); {rest}", file=sys.stderr)
    return 2


def _write(image: np.ndarray, path: Path, inputs: Sequence[Path], alpha: np.ndarray | None = None) -> None:
    """Write uint8, or float 0..255 truncated like the official uint8 cast (clipped in place: ``image`` is spent,
    which saves a float copy of large outputs), with the source's ``alpha`` resized to it; never over an input."""
    if any(path.resolve() == i.resolve() for i in inputs):
        raise CliError(f"refusing to overwrite input file {path}; choose another output folder (-o)")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255, out=image).astype(np.uint8)
    if alpha is not None:
        image = np.dstack([image, alpha_for(alpha, image.shape[:2])])
    write_image(path, image)
