"""Outputs written to a temporary file first (``tempfile.mkstemp``, mode 0600) get a new file's usual mode."""

from __future__ import annotations

import os
from pathlib import Path


def give_usual_permissions(path: Path | str) -> None:
    """Set ``path``'s mode to what the user's umask gives a newly created file (0644 for the common 022)."""
    mask = os.umask(0)  # the only way to read the umask is to set it: put it straight back
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


__all__ = ["give_usual_permissions"]
