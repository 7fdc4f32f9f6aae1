"""The ``restore`` and ``advise`` runs: load the models, then each input in turn (a bad one is reported and
skipped, the others go on); videos are run by ``codeformer.cli.video``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..advisor import advise_image
from ..pipeline import RestoreSettings, restore_images
from ..restore import restore_faces
from ..types import FACE_SIZE
from .args import check_restore_args, device_arg
from .errors import CliError, ImageReadError
from .images import InputImage, Refuse, read_input
from .inputs import Inputs, find_inputs
from .memory import too_large
from .outputs import check_output_folder, check_outputs, make_output_folder, write_output
from .session import (
    ModelFiles,
    Models,
    advised_settings,
    detect_options,
    fidelity,
    given_settings,
    report_not_files,
    report_skipped,
    skip,
)
from .video import VideoJob, advise_video, restore_video

log = logging.getLogger("codeformer")


def run_restore(args: argparse.Namespace) -> int:
    """``restore``: every check that needs no model first, then the images, then the videos; returns the exit
    code."""
    inputs = restore_inputs(args)
    device = device_arg(args.device)
    check_output_folder(args.output)
    check_outputs(inputs.files, args.output, args.save_faces, args.overwrite)
    created = make_output_folder(args.output)
    try:
        if device.type == "cuda":  # fixed 512 px faces and tiles: let cuDNN pick its fastest kernels
            torch.backends.cudnn.benchmark = True
        loaded = Models.load(args)
        failed = _restore_all(args, inputs, loaded, device)
        if inputs.videos:
            job = VideoJob.from_args(args, loaded, device, inputs.files)
            for path in inputs.videos:
                restore_video(path, job, failed)
    finally:
        if created:
            with contextlib.suppress(OSError):  # a run that wrote nothing leaves nothing behind
                args.output.rmdir()  # (only an empty folder is removed)
    return report_skipped(failed, inputs.total)


def restore_inputs(args: argparse.Namespace) -> Inputs:
    """``restore``'s arguments checked and its inputs found (refusing videos with ``--aligned``)."""
    check_restore_args(args)
    inputs = find_inputs(args.inputs)
    if args.aligned and inputs.videos:
        raise CliError(f"--aligned takes aligned 512x512 face images, not videos ({inputs.videos[0]}); drop "
                       "--aligned to restore the faces of the video, or give the aligned faces as images")
    return inputs


def _restore_all(args: argparse.Namespace, inputs: Inputs, loaded: Models, device: torch.device) -> list[Path]:
    """Restore every input image into ``args.output``; returns the inputs skipped (unreadable or too large for the
    memory; each reported), the entries that are not files first."""
    job = ImageJob.start(args, loaded, device, inputs.files)
    failed = report_not_files(inputs)
    for path in inputs.images:
        restore_image_file(path, job, failed)
    return failed


@dataclass(frozen=True)
class ImageJob:
    """What every image of a ``restore`` run shares."""

    args: argparse.Namespace
    models: Models
    device: torch.device
    settings: RestoreSettings | None  # the command line's; None with --best-settings (chosen per image)
    inputs: Sequence[Path]  # every input file: none is ever overwritten

    @classmethod
    def start(cls, args: argparse.Namespace, models: Models, device: torch.device,
              inputs: Sequence[Path]) -> ImageJob:
        given = given_settings(args)
        if given is not None and not args.aligned:  # a broken upscaler file stops the run before any image
            models.networks(given)
        return cls(args, models, device, given, inputs)


def restore_image_file(path: Path, job: ImageJob, failed: list[Path]) -> None:
    """Restore the image ``path`` into ``OUTDIR/<stem>.png`` (and its faces with ``--save-faces``, written first:
    a complete output means a complete input); an unreadable or too large image is reported and added to
    ``failed``."""
    args, given, device = job.args, job.settings, job.device
    # refused by the size its header declares, before decoding (with --best-settings the upscale is known later)
    refuse = None if given is None or args.aligned else lambda size: too_large(size, given.upscale)
    source = _read_or_report(path, failed, refuse)
    if source is None:
        return
    image = source.rgb
    if args.aligned:
        if image.shape[:2] != (FACE_SIZE, FACE_SIZE):
            log.warning("%s is %dx%d, not an aligned 512x512 face: resized to 512x512 (as the official "
                        "--has_aligned)", path, image.shape[1], image.shape[0])
        restored = restore_faces(job.models.codeformer, [image], fidelity(args), device=device)[0]
        write_output(restored, args.output / f"{path.stem}.png", job.inputs, source.alpha)
        return
    if given is not None:
        settings = given
    else:  # --best-settings, which --aligned refuses: the detector is loaded
        advice = advise_image(image, job.models.face_detector(), args.best_settings, device=device)
        settings = advised_settings(path, advice, args.best_settings, detect_options(args))
    why = too_large(image.shape[:2], settings.upscale)
    if why:
        skip(failed, path, f"{path}: {why}")
        return
    with _progress(path.name) as on_progress:
        result = restore_images([image], job.models.networks(settings), settings,
                                tile=args.tile, batch_size=args.batch_size, device=device,
                                precision=args.precision, on_progress=on_progress)
    log.info("%s: %d face(s)", path.name, len(result.faces))
    if args.save_faces:
        for i, (crop, face) in enumerate(zip(result.crops, result.restored, strict=True)):
            write_output(crop, args.output / "faces" / f"{path.stem}_{i:02d}_crop.png", job.inputs)
            write_output(face, args.output / "faces" / f"{path.stem}_{i:02d}_restored.png", job.inputs)
    write_output(result.images[0].image, args.output / f"{path.stem}.png", job.inputs, source.alpha)


@contextlib.contextmanager
def _progress(name: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (shown only on a terminal) driven by ``on_progress(done, total)``."""
    with tqdm(desc=name, unit="step", disable=None, leave=False, file=sys.stderr) as bar:
        def on_progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield on_progress


def run_advise(args: argparse.Namespace) -> int:
    """``advise``: one JSON line of recommended settings per image or video; returns the exit code."""
    inputs = find_inputs(args.inputs)
    device = device_arg(args.device)
    detector = ModelFiles(args.models_dir, args.offline).detector(args.detector)
    failed = report_not_files(inputs)
    for path in inputs.images:
        source = _read_or_report(path, failed)
        if source is not None:
            advice = advise_image(source.rgb, detector, source=args.source, device=device)
            print(json.dumps({"image": str(path), **advice.as_dict()}))
    for path in inputs.videos:
        clip = advise_video(path, detector, args.source, device, failed)
        if clip is not None:
            print(json.dumps({"video": str(path), **clip.as_dict()}))
    return report_skipped(failed, inputs.total)


def _read_or_report(path: Path, failed: list[Path], refuse: Refuse | None = None) -> InputImage | None:
    """The image, or None after printing why it cannot be read (``path`` is added to ``failed``)."""
    try:
        source = read_input(path, refuse)
    except ImageReadError as error:
        skip(failed, path, str(error))
        return None
    for note in source.notes:
        log.warning("%s: %s", path, note)
    return source
