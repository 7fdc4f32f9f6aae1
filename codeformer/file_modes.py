"""Outputs written to a temporary file first (``tempfile.mkstemp``, mode 0600): given a new file's usual mode when
complete, or closed and removed when the writing stopped."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Protocol


class Closable(Protocol):
    def close(self) -> None: ...


def give_usual_permissions(path: Path | str) -> None:
    """Set ``path``'s mode to what the user's umask gives a newly created file (0644 for the common 022)."""
    mask = os.umask(0)  # the only way to read the umask is to set it: put it straight back
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def discard_temporary(writer: Closable | None, tmp: Path | None) -> None:
    """Close ``writer`` (quietly: the error that stopped the writing is the one to report) and remove ``tmp``."""
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()
    if tmp is not None:
        tmp.unlink(missing_ok=True)


__all__ = ["discard_temporary", "give_usual_permissions"]
