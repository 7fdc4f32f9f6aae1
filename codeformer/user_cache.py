"""The per-user cache folder this pack keeps its downloads and per-machine measurements in."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """``%LOCALAPPDATA%/codeformer`` on Windows, else ``$XDG_CACHE_HOME/codeformer`` (``~/.cache/codeformer``)."""
    if os.name == "nt":
        local = os.environ.get("LOCALAPPDATA", "").strip()
        base = Path(local) if local else Path.home() / "AppData" / "Local"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        # The XDG spec says relative values are invalid and must be ignored.
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "codeformer"


__all__ = ["user_cache_dir"]
