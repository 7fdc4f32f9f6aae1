"""What the image and video runs of ``restore`` share: the models (the upscaler loaded when first needed), the
settings from the command line or from the best-settings rules, and the reporting of skipped inputs."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spandrel import ImageModelDescriptor

from .. import models
from ..advisor import Advice, face_upsample_mode
from ..faces import DetectOptions
from ..pipeline import Networks, PasteOptions, RestoreSettings
from ..restorers import fidelity_note, restorer_of
from ..types import CodeFormerModel, FaceDetector, FaceParser
from .inputs import Inputs

OFFICIAL_FIDELITY = 0.5  # the official -w and -s defaults
OFFICIAL_UPSCALE = 2.0


class ModelFiles:
    """Resolves (and downloads on demand) model files under one models folder."""

    def __init__(self, models_dir: Path | None, offline: bool) -> None:
        self.root = models_dir or models.default_models_dir()
        self.offline = offline

    def restorer(self, name_or_path: str) -> Path:
        """``--model``: a file of facerestore_models (downloaded when known), or a path to a file elsewhere."""
        given = Path(name_or_path).expanduser()
        if given.name != name_or_path:  # a path (./x.pth for a file in the current folder); a bare name: the folder
            return given
        return self.path(name_or_path, "facerestore_models")

    def path(self, name: str, folder: str) -> Path:
        """The file ``name`` in ``folder`` of the models folder (downloaded when it is a known file)."""
        return models.resolve_model_file(name, folder, [self.root / folder], self.root / folder, offline=self.offline)

    def detector(self, name: str) -> FaceDetector:
        """The RetinaFace detector called ``name`` (a key of ``models.DETECTORS``)."""
        return models.load_detector(self.path(models.DETECTORS[name].file, "facedetection"), name)


@dataclass
class Models:
    """The networks of a ``restore`` run; the detector and parser are None with ``--aligned``, the upscaler is
    loaded by ``networks`` the first time settings use it (a run that never upscales never reads its file)."""

    files: ModelFiles
    upscaler_file: str
    codeformer: CodeFormerModel
    detector: FaceDetector | None
    parser: FaceParser | None
    upscaler: ImageModelDescriptor | None = None

    @classmethod
    def load(cls, args: argparse.Namespace) -> Models:
        files = ModelFiles(args.models_dir, args.offline)
        codeformer = models.load_codeformer(files.restorer(args.model))
        note = fidelity_note(restorer_of(codeformer), args.fidelity) if args.fidelity is not None else None
        if note:  # said once here; the default then flows on, so the library does not warn again
            print(f"note: --fidelity: {note}", file=sys.stderr, flush=True)
            args.fidelity = None
        codeformer = dataclasses.replace(codeformer, compile=args.compile, precision=args.precision)
        if args.aligned:
            return cls(files, args.upscaler, codeformer, None, None)
        return cls(files, args.upscaler, codeformer, files.detector(args.detector),
                   models.load_parser(files.path("parsing_parsenet.pth", "facedetection")))

    def face_detector(self) -> FaceDetector:
        """The detector (not with ``--aligned``, which loads none)."""
        if self.detector is None:
            raise RuntimeError("the detector of an --aligned run, which loads none, was asked for")
        return self.detector

    def networks(self, settings: RestoreSettings) -> Networks:
        """The networks of a whole-image restore with ``settings`` (not with ``--aligned``: no detector)."""
        detector = self.face_detector()
        if self.upscaler is None and settings.uses_upscaler:
            self.upscaler = models.load_upscaler(self.files.path(self.upscaler_file, "upscale_models"))
        return Networks(self.codeformer, detector, self.parser, self.upscaler)


def fidelity(args: argparse.Namespace) -> float:
    """``--fidelity``, or the official default."""
    return OFFICIAL_FIDELITY if args.fidelity is None else args.fidelity


def detect_options(args: argparse.Namespace) -> DetectOptions:
    """Which faces are kept: ``--only-center-face``, ``--max-faces``."""
    return DetectOptions(selection="center" if args.only_center_face else "all", max_faces=args.max_faces)


def given_settings(args: argparse.Namespace) -> RestoreSettings | None:
    """The settings of the command line (with the official defaults -w 0.5 -s 2); None with ``--best-settings``
    (chosen per input)."""
    if args.best_settings:
        return None
    face_upsample = args.face_upsample_mode or ("always" if args.face_upsample else "off")
    return RestoreSettings(fidelity(args), OFFICIAL_UPSCALE if args.upscale is None else args.upscale,
                           args.background_enhance, detect_options(args), PasteOptions(face_upsample=face_upsample))


def advised_settings(path: Path, advice: Advice, source: str, options: DetectOptions,
                     more: str = "") -> RestoreSettings:
    """The best-settings rules' choice (as the Best Settings node), printed with the reason (and ``more``)."""
    settings = RestoreSettings(advice.fidelity, float(advice.upscale), advice.background_enhance, options,
                               PasteOptions(face_upsample=face_upsample_mode(advice, source)))
    print(f"{path}: fidelity {advice.fidelity:g}, background enhance {'on' if advice.background_enhance else 'off'}"
          f", face upsample {settings.paste.face_upsample}, upscale {settings.upscale:g}{more} ({advice.reason})",
          flush=True)
    return settings


def report_not_files(inputs: Inputs) -> list[Path]:
    """Print the entries skipped for not being files (FIFOs, devices, broken links); returns them."""
    failed: list[Path] = []
    for path, why in inputs.skipped:
        skip(failed, path, f"{path} {why}")
    return failed


def skip(failed: list[Path], path: Path, message: str) -> None:
    """Print the one ``error:`` line of a skipped input (``message`` names it) and add it to ``failed``."""
    print(f"error: {message}; skipped", file=sys.stderr)
    failed.append(path)


def report_skipped(failed: Sequence[Path], total: int) -> int:
    """The exit code; a summary after the skipped inputs' own lines (not an ``error:`` line: one per bad file)."""
    if not failed:
        return 0
    rest = "nothing was processed" if len(failed) == total else "the others were processed"
    print(f"{len(failed)} of {total} input(s) were skipped (see the errors above); {rest}", file=sys.stderr)
    return 2
