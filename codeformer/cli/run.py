"""The ``restore`` and ``advise`` runs: load the models, then each input in turn (a bad one is reported and
skipped, the others go on)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .. import model_store
from ..types import FACE_SIZE
from .args import DETECTORS, check_restore_args, device_arg
from .errors import ImageReadError
from .images import InputImage, Refuse, read_input
from .inputs import Inputs, find_inputs
from .memory import too_large
from .outputs import check_output_folder, check_outputs, make_output_folder, write_output

log = logging.getLogger("codeformer")


class Models:
    """Resolves (and downloads on demand) model files under one models folder."""

    def __init__(self, models_dir: Path | None, offline: bool) -> None:
        self.root = models_dir or model_store.default_models_dir()
        self.offline = offline

    def path(self, name: str, folder: str) -> Path:
        return model_store.resolve_model_file(name, folder, [self.root / folder], self.root / folder,
                                              offline=self.offline)


def run_restore(args: argparse.Namespace) -> int:
    """``restore``: every check that needs no model first, then the images; returns the exit code."""
    check_restore_args(args)
    inputs = find_inputs(args.inputs)
    device = device_arg(args.device)
    check_output_folder(args.output)
    check_outputs(inputs.images, args.output, args.save_faces, args.overwrite)
    created = make_output_folder(args.output)
    try:
        failed = _restore_all(args, inputs, device)
    finally:
        if created:
            with contextlib.suppress(OSError):  # a run that wrote nothing leaves nothing behind
                args.output.rmdir()  # (only an empty folder is removed)
    return _report_skipped(failed, inputs.total)


def _restore_all(args: argparse.Namespace, inputs: Inputs, device: torch.device) -> list[Path]:
    """Restore every input into ``args.output``; returns the inputs skipped (unreadable or too large for the
    memory; each reported)."""
    from ..pipeline import DetectOptions, restore_images
    from ..restore import restore_faces

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
    # refused by the size its header declares, before decoding (with --best-settings the upscale is known later)
    refuse = None if given is None or args.aligned else lambda size: too_large(size, given.upscale)
    failed = _report_not_files(inputs)
    for path in inputs.images:
        source = _read_or_report(path, failed, refuse)
        if source is None:
            continue
        image = source.rgb
        settings = given or _advised_settings(path, image, detector, args.best_settings, device)
        if upscaler is None and not args.aligned and settings.uses_upscaler:
            upscaler = model_store.load_upscaler(models.path(args.upscaler, "upscale_models"))
        why = None if args.aligned else too_large(image.shape[:2], settings.upscale)
        if why:
            _skip(failed, path, f"{path}: {why}")
            continue
        if args.aligned:
            if image.shape[:2] != (FACE_SIZE, FACE_SIZE):
                log.warning("%s is %dx%d, not an aligned 512x512 face: resized to 512x512 (as the official "
                            "--has_aligned)", path, image.shape[1], image.shape[0])
            restored = restore_faces(codeformer, [image], settings.fidelity, device=device)[0]
            write_output(restored, args.output / f"{path.stem}.png", inputs.images, source.alpha)
            continue
        with _progress(path.name) as on_progress:
            results, faces, crops, restored = restore_images(
                [image], codeformer=codeformer, detector=detector, parser=parser, upscaler=upscaler,
                fidelity=settings.fidelity, upscale=settings.upscale, background_enhance=settings.background_enhance,
                face_upsample=settings.face_upsample, options=options, tile=args.tile, batch_size=args.batch_size,
                device=device, precision=args.precision, on_progress=on_progress)
        log.info("%s: %d face(s)", path.name, len(faces))
        write_output(results[0].image, args.output / f"{path.stem}.png", inputs.images, source.alpha)
        if args.save_faces:
            for i, (crop, face) in enumerate(zip(crops, restored)):
                write_output(crop, args.output / "faces" / f"{path.stem}_{i:02d}_crop.png", inputs.images)
                write_output(face, args.output / "faces" / f"{path.stem}_{i:02d}_restored.png", inputs.images)
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
    from ..advisor import advise_image, face_upsample_mode

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
    """``advise``: one JSON line of recommended settings per image; returns the exit code."""
    from ..advisor import advise_image

    inputs = find_inputs(args.inputs)
    device = device_arg(args.device)
    models = Models(args.models_dir, args.offline)
    detector = model_store.load_detector(models.path(DETECTORS[args.detector], "facedetection"), args.detector)
    failed = _report_not_files(inputs)
    for path in inputs.images:
        source = _read_or_report(path, failed)
        if source is not None:
            advice = advise_image(source.rgb, detector, source=args.source, device=device)
            print(json.dumps({"image": str(path), **advice.as_dict()}))
    return _report_skipped(failed, inputs.total)


def _report_not_files(inputs: Inputs) -> list[Path]:
    """Print the entries skipped for not being files (FIFOs, devices, broken links); returns them."""
    failed: list[Path] = []
    for path, why in inputs.skipped:
        _skip(failed, path, f"{path} {why}")
    return failed


def _read_or_report(path: Path, failed: list[Path], refuse: Refuse | None = None) -> InputImage | None:
    """The image, or None after printing why it cannot be read (``path`` is added to ``failed``)."""
    try:
        source = read_input(path, refuse)
    except ImageReadError as error:
        _skip(failed, path, str(error))
        return None
    for note in source.notes:
        log.warning("%s: %s", path, note)
    return source


def _skip(failed: list[Path], path: Path, message: str) -> None:
    """Print the one ``error:`` line of a skipped input (``message`` names it) and add it to ``failed``."""
    print(f"error: {message}; skipped", file=sys.stderr)
    failed.append(path)


def _report_skipped(failed: Sequence[Path], total: int) -> int:
    """The exit code; a summary after the skipped inputs' own lines (not an ``error:`` line: one per bad file)."""
    if not failed:
        return 0
    rest = "nothing was processed" if len(failed) == total else "the others were processed"
    print(f"{len(failed)} of {total} input(s) were skipped (see the errors above); {rest}", file=sys.stderr)
    return 2
