"""Keeping what C libraries print (libpng's ``libpng error: ...``, libjpeg's ``Corrupt JPEG data``, OpenCV's own
``[ERROR:0@1.388] global grfmt_tiff.cpp:117 TIFF_Error ...``) off the user's terminal while a file is decoded: the
CLI says what went wrong in its one line per file; ``-v`` shows what the libraries said."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

MAX_CAPTURED = 64 * 1024  # bytes kept of what the libraries print while decoding one file


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """Send the process's stderr (file descriptor 2) to a temporary file while the block runs; the list yielded
    holds its non-blank lines once the block is done. Not thread-safe: the CLI reads one file at a time."""
    lines: list[str] = []
    try:
        saved = os.dup(2)
    except OSError:  # no stderr (closed): nothing to keep off it
        yield lines
        return
    try:
        with tempfile.TemporaryFile() as sink:
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                text = sink.read(MAX_CAPTURED).decode("utf-8", "replace")
                lines += [line.strip() for line in text.splitlines() if line.strip()]
    finally:
        os.close(saved)
