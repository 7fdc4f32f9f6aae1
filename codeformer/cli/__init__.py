"""Command line: ``python -m codeformer restore|advise ...``.

Exit codes (the message is one ``error:`` line on stderr):

- 0: success (images without faces are written resized, not skipped).
- 1: a model or processing error: model file missing/corrupt/wrong/refused, download failed, out of memory; or an
  output that could not be written (disk full, permission denied): the run stops there, the images written before
  it are complete.
- 2: bad arguments or unusable input: unknown option or value out of range, input missing, folder without
  images, two inputs with the same output name, an output that would overwrite an input or (without
  ``--overwrite``) an existing file, ``-o`` naming a file or a folder that cannot be written; or some inputs were
  skipped, being unreadable (damaged, not an image, not a regular file, declaring a size OpenCV will not decode or
  the free memory cannot hold) or too large to restore in the free memory at that ``--upscale`` (the others were
  restored and written: each skipped file gets its own ``error:`` line, then one line counts them).
- 130: interrupted (Ctrl+C). Outputs are written atomically, so no half-written image or video is left behind.
- 141: the reader of standard output went away (``advise ... | head``): the run stops quietly, as a shell tool
  stopped by SIGPIPE; outputs written before are complete.

Videos are skipped like images when they cannot be decoded or are cut short (exit 2), and refused with ``--aligned``.

Only the project's own errors (``codeformer.errors.CodeFormerError``), and running out of memory, are shown as
that one line; any other exception is a bug and is shown with its traceback.

Nothing is overwritten by surprise: the output paths are checked before models load; inputs never, other existing
files only with ``--overwrite``, and every write is checked again.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

import torch

from ..errors import CodeFormerError, InputError
from .args import build_parser
from .errors import CliError
from .memory import map_large_buffers
from .run import run_advise, run_restore


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (argparse exits with 2 on unknown options itself)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    map_large_buffers()
    try:
        if args.command == "restore" and args.ray is not None:
            from .ray_run import run_restore_on_ray  # Ray is optional: imported only when asked for

            code = run_restore_on_ray(args)
        else:
            code = run_restore(args) if args.command == "restore" else run_advise(args)
        sys.stdout.flush()  # a reader gone before the buffered output was written shows here, not at exit
        return code
    except KeyboardInterrupt:
        print("error: interrupted; images written so far are complete, the others were not written",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Nothing more can be said on stdout; point it at devnull so that the interpreter's final flush does not
        # print a second BrokenPipeError (the recipe of Python's signal documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:
        said = error_line(error)
        if said is None:
            raise
        print(said[0], file=sys.stderr)
        return said[1]


def error_line(error: BaseException) -> tuple[str, int] | None:
    """The one ``error:`` line and exit code of an error that stops a run (the project's own, or out of memory);
    None for any other exception: a bug, shown with its traceback."""
    if isinstance(error, CodeFormerError):
        return f"error: {error}", exit_code(error)
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):  # the machine, not a bug: say what to do
        said = ". ".join(str(error).splitlines()[0].split(". ")[:2]) if str(error) else type(error).__name__
        return (f"error: out of memory ({said}); free memory (close other programs or models), or use a smaller "
                "--upscale or --tile"), 1
    return None


def exit_code(error: Exception) -> int:
    """The documented exit code of one of the project's errors."""
    if isinstance(error, CliError):
        return error.code
    return 2 if isinstance(error, InputError) else 1


__all__ = ["error_line", "exit_code", "main"]
