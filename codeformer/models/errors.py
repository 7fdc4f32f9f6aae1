"""The errors of finding, downloading and loading model files (each message names the file, the problem and the fix)."""

from __future__ import annotations

from ..errors import CodeFormerError, InputError


class ModelFileError(CodeFormerError):
    """A model file is missing, unreadable or of the wrong architecture (the message names file, problem and fix)."""


class ModelDownloadError(ModelFileError):
    """A download failed or did not verify (the message names the URL and where to place the file by hand)."""


class NotAnUpscalerError(ModelFileError, InputError):
    """A model given as a background upscaler is not an image upscaler (a face model, an inpainting model, ...).

    Also an :class:`InputError` (a ``ValueError``): nodes raise it for a wrong model plugged into an input.
    """


__all__ = ["ModelDownloadError", "ModelFileError", "NotAnUpscalerError"]
