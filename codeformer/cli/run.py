"""The ``restore`` and ``advise`` runs: load the models, then each input in turn (a bad one is reported and
skipped, the others go on)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import models
from ..advisor import advise_image, face_upsample_mode
from ..faces import DetectOptions
from ..pipeline import Networks, PasteOptions, RestoreSettings, restore_images
from ..restore import restore_faces
from ..types import FACE_SIZE, FaceDetector
from .args import check_restore_args, device_arg
from .errors import ImageReadError
from .images import InputImage, Refuse, read_input
from .inputs import Inputs, find_inputs
from .memory import too_large
from .outputs import (
    check_output_folder,
    check_outputs,
    make_output_folder,
    write_output,
)

log = logging.getLogger("codeformer")

OFFICIAL_FIDELITY = 0.5  # the official -w and -s defaults
OFFICIAL_UPSCALE = 2.0


class ModelFiles:
    """Resolves (and downloads on demand) model files under one models folder."""

    def __init__(self, models_dir: Path | None, offline: bool) -> None:
        self.root = models_dir or models.default_models_dir()
        self.offline = offline

    def path(self, name: str, folder: str) -> Path:
        """The file ``name`` in ``folder`` of the models folder (downloaded when it is a known file)."""
        return models.resolve_model_file(name, folder, [self.root / folder], self.root / folder, offline=self.offline)

    def detector(self, name: str) -> FaceDetector:
        """The RetinaFace detector called ``name`` (a key of ``models.DETECTORS``)."""
        return models.load_detector(self.path(models.DETECTORS[name].file, "facedetection"), name)


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
    if device.type == "cuda":  # fixed 512 px faces and tiles: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
    files = ModelFiles(args.models_dir, args.offline)
    codeformer = models.load_codeformer(files.path("codeformer.pth", "facerestore_models"))
    codeformer = dataclasses.replace(codeformer, compile=args.compile, precision=args.precision)
    if args.aligned:
        detector, parser = None, None
    else:
        detector = files.detector(args.detector)
        parser = models.load_parser(files.path("parsing_parsenet.pth", "facedetection"))
    options = DetectOptions(selection="center" if args.only_center_face else "all", max_faces=args.max_faces)
    given = None if args.best_settings else _given_settings(args, options)
    upscaler = None
    if given is not None and not args.aligned and given.uses_upscaler:  # a broken file stops the run before any image
        upscaler = models.load_upscaler(files.path(args.upscaler, "upscale_models"))
    # refused by the size its header declares, before decoding (with --best-settings the upscale is known later)
    refuse = None if given is None or args.aligned else lambda size: too_large(size, given.upscale)
    failed = _report_not_files(inputs)
    for path in inputs.images:
        source = _read_or_report(path, failed, refuse)
        if source is None:
            continue
        image = source.rgb
        if given is not None:
            settings = given
        else:  # --best-settings, which --aligned refuses: the detector is loaded
            assert detector is not None
            settings = _advised_settings(path, image, detector, args.best_settings, options, device)
        if upscaler is None and not args.aligned and settings.uses_upscaler:
            upscaler = models.load_upscaler(files.path(args.upscaler, "upscale_models"))
        why = None if args.aligned else too_large(image.shape[:2], settings.upscale)
        if why:
            _skip(failed, path, f"{path}: {why}")
            continue
        if args.aligned:
            if image.shape[:2] != (FACE_SIZE, FACE_SIZE):
                log.warning("%s is %dx%d, not an aligned 512x512 face: resized to 512x512 (as the official "
                            "--has_aligned)", path, image.shape[1], image.shape[0])
            restored = restore_faces(codeformer, [image], _fidelity(args), device=device)[0]
            write_output(restored, args.output / f"{path.stem}.png", inputs.images, source.alpha)
            continue
        assert detector is not None  # loaded unless --aligned
        with _progress(path.name) as on_progress:
            result = restore_images([image], Networks(codeformer, detector, parser, upscaler), settings,
                                    tile=args.tile, batch_size=args.batch_size, device=device,
                                    precision=args.precision, on_progress=on_progress)
        log.info("%s: %d face(s)", path.name, len(result.faces))
        write_output(result.images[0].image, args.output / f"{path.stem}.png", inputs.images, source.alpha)
        if args.save_faces:
            for i, (crop, face) in enumerate(zip(result.crops, result.restored, strict=True)):
                write_output(crop, args.output / "faces" / f"{path.stem}_{i:02d}_crop.png", inputs.images)
                write_output(face, args.output / "faces" / f"{path.stem}_{i:02d}_restored.png", inputs.images)
    return failed


def _fidelity(args: argparse.Namespace) -> float:
    """``--fidelity``, or the official default."""
    return OFFICIAL_FIDELITY if args.fidelity is None else args.fidelity


def _given_settings(args: argparse.Namespace, options: DetectOptions) -> RestoreSettings:
    """The settings of the command line (with the official defaults -w 0.5 -s 2)."""
    face_upsample = args.face_upsample_mode or ("always" if args.face_upsample else "off")
    return RestoreSettings(_fidelity(args), OFFICIAL_UPSCALE if args.upscale is None else args.upscale,
                           args.background_enhance, options,
                           PasteOptions(face_upsample=face_upsample))


def _advised_settings(path: Path, image: np.ndarray, detector: FaceDetector, source: str, options: DetectOptions,
                      device: torch.device) -> RestoreSettings:
    """The best-settings rules' choice for ``image`` (as the Best Settings node), printed with the reason."""
    advice = advise_image(image, detector, source, device=device)
    settings = RestoreSettings(advice.fidelity, float(advice.upscale), advice.background_enhance, options,
                               PasteOptions(face_upsample=face_upsample_mode(advice, source)))
    print(f"{path}: fidelity {advice.fidelity:g}, background enhance {'on' if advice.background_enhance else 'off'}"
          f", face upsample {settings.paste.face_upsample}, upscale {settings.upscale:g} ({advice.reason})",
          flush=True)
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
    inputs = find_inputs(args.inputs)
    device = device_arg(args.device)
    detector = ModelFiles(args.models_dir, args.offline).detector(args.detector)
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
