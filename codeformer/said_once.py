"""Warnings said once a process: notes about a setting that every batch, image or video chunk would repeat."""

from __future__ import annotations

import logging

_said: set[str] = set()


def warn_once(log: logging.Logger, key: str, message: str) -> None:
    """Log ``message`` as a warning on ``log`` the first time ``key`` comes up in this process."""
    if key in _said:
        return
    _said.add(key)
    log.warning("%s", message)


__all__ = ["warn_once"]
