"""The project's own error types.

Each message names the input or file, the problem and the fix. Front ends show these as one line (the CLI prints
``error: ...``; ComfyUI shows the message on the node). Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import torch


class CodeFormerError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(CodeFormerError, ValueError):
    """A setting or input the caller gave cannot be used (out of range, images that do not belong together)."""


class OutOfMemory(CodeFormerError, torch.OutOfMemoryError):
    """Still out of memory at the smallest batch or tile; the message says what to do. A ``torch.OutOfMemoryError``,
    so that hosts that act on those (ComfyUI unloads its models and prints its tips) see it as one."""


__all__ = ["CodeFormerError", "InputError", "OutOfMemory"]
