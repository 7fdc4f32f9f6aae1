"""The command line's arguments: the argparse parser, and the checks of values argparse cannot make."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import torch

from ..advisor import SOURCES
from ..errors import InputError
from ..models import DETECTORS
from ..restorers import SUPPORTED
from ..runtime import PRECISIONS, resolve_device
from ..types import FACE_UPSAMPLE_ABOVE
from ..upsample import AUTO_TILE, CPU_LARGE_TILE, DEFAULT_TILE
from ..video import VIDEO_SUFFIXES
from .errors import CliError

DEFAULT_MODEL = "codeformer.pth"
# Frames per part of a clip under --ray: each part also reads ~25 frames of context (clip_context) and restores 2 of
# them again, so parts much shorter than this spend a visible share on context.
DEFAULT_PART_FRAMES = 240


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``restore`` and ``advise`` commands and their options."""
    # allow_abbrev=False everywhere: a prefix (--model of --models-dir) or a typo is an error, never another option
    parser = argparse.ArgumentParser(prog="python -m codeformer", description="CodeFormer face restoration.",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)

    r = sub.add_parser("restore", allow_abbrev=False,
                       help="restore the faces in images and videos (whole images and clips, or aligned 512x512 faces)")
    r.add_argument("inputs", nargs="+", metavar="INPUT",
                   help=f"image or video ({' '.join(VIDEO_SUFFIXES)}) files, or folders of them")
    r.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR",
                   help="output folder (created if missing); OUTDIR/<input name>.png per image, .mp4 per video")
    r.add_argument("--overwrite", action="store_true", help="replace existing files in OUTDIR (never the inputs)")
    r.add_argument("--aligned", action="store_true", help="inputs are aligned 512x512 faces (no detection)")
    r.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME_OR_PATH",
                   help=f"face restorer: a file name in facerestore_models, or a path such as ./x.pth "
                        f"(default {DEFAULT_MODEL}); "
                        f"{SUPPORTED}, recognised from its weights")
    r.add_argument("--fidelity", "-w", type=float, default=None,
                   help="0 = quality, 1 = fidelity (default 0.5); CodeFormer only")
    r.add_argument("--upscale", "-s", type=float, default=None, help="output scale of whole images, 1..8 (default 2)")
    r.add_argument("--background-enhance", action="store_true", help="upscale the background with Real-ESRGAN")
    r.add_argument("--face-upsample", action="store_true", help="upscale restored faces with Real-ESRGAN")
    r.add_argument("--face-upsample-mode", choices=("auto", "always"), default=None,
                   help="implies --face-upsample: 'always' (its default, official) or 'auto' (only faces pasted "
                        f"larger than {FACE_UPSAMPLE_ABOVE} px)")
    r.add_argument("--best-settings", choices=SOURCES, default=None, metavar="SOURCE",
                   help="per image, the fidelity, background enhance, face upsample and upscale of the best-settings "
                        f"rules for this source ({' or '.join(SOURCES)}; as `advise`); not with -w, -s, "
                        "--background-enhance, --face-upsample(-mode) or --aligned")
    r.add_argument("--detector", choices=sorted(DETECTORS), default="retinaface_resnet50")
    r.add_argument("--only-center-face", action="store_true",
                   help="restore only the face nearest the centre (in a video: the track nearest over ~11 frames)")
    r.add_argument("--max-faces", type=_at_least(0), default=0,
                   help="keep at most N faces per image (0 = all; in a video: the N best-scored tracks)")
    r.add_argument("--temporal", action=argparse.BooleanOptionalAction, default=None,
                   help="videos: follow faces across frames and smooth them over time (default; with "
                        "--best-settings as advised); --no-temporal: restore each frame as a still image")
    r.add_argument("--save-faces", action="store_true",
                   help="also write OUTDIR/faces/<stem>_NN_crop|restored.png (videos: "
                        "OUTDIR/faces/<stem>/<frame>_<track>_crop|restored.png)")
    r.add_argument("--upscaler", default="RealESRGAN_x2plus.pth",
                   help="file in upscale_models (default RealESRGAN_x2plus.pth)")
    r.add_argument("--tile", type=_at_least(0), default=AUTO_TILE,
                   help=f"upscaler tile size in px; 0 (default) = auto: on the CPU up to {CPU_LARGE_TILE} "
                        f"({DEFAULT_TILE}, the official size, in bf16 on CPUs with AMX and with --precision fp32), on "
                        "GPUs as large as free memory allows")
    r.add_argument("--batch-size", type=_at_least(1), default=None,
                   help="faces per CodeFormer batch (default: as many as free GPU memory holds, up to 32; 1 on CPU)")
    r.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default): bf16 on CUDA GPUs that support it and for the upscaler on CPUs that run "
                        "it fast (AMX, or AVX512-BF16 where a short probe finds it faster), else fp32; fp32: the "
                        "official arithmetic everywhere; bf16: everywhere")
    r.add_argument("--compile", action="store_true",
                   help="torch.compile CodeFormer on CUDA (faster for many faces; ~1 min to compile first)")
    cluster = r.add_argument_group("many machines (needs Ray: pip install \"ray[data]\")")
    cluster.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                         help="restore on a Ray cluster: the one at ADDRESS, else $RAY_ADDRESS, else a local one; "
                              "OUTDIR and the models folder must be at the same path on every machine")
    cluster.add_argument("--ray-workers", type=_at_least(1), default=None, metavar="N",
                         help="workers, each loading the models once (default: one per GPU of the cluster; without "
                              "GPUs one per machine, sharing its CPU cores)")
    cluster.add_argument("--part-frames", type=_at_least(8), default=DEFAULT_PART_FRAMES, metavar="N",
                         help=f"with --ray, clips longer than 1.5 N frames are restored in parts of N frames on "
                              f"different workers and joined (default {DEFAULT_PART_FRAMES})")
    _common(r)

    a = sub.add_parser("advise", allow_abbrev=False,
                       help="print the recommended settings for each image or video as JSON")
    a.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders of them")
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


def check_restore_args(args: argparse.Namespace) -> None:
    """Refuse values out of range and ``--best-settings`` with settings given by hand."""
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


def device_arg(name: str) -> torch.device:
    """The ``--device``, refused before any work when this machine does not have it."""
    try:
        device = resolve_device(name)
    except (InputError, RuntimeError) as error:  # RuntimeError: torch itself refuses the name
        raise CliError(f"--device {name}: {error}") from error
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CliError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from "
                       "0; use --device cuda or auto")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise CliError(f"--device {name}: MPS (Apple GPUs) is not available here; use --device cpu or auto")
    return device
