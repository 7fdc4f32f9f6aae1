"""The command line's own error types: ``main`` prints them as one ``error:`` line (see the exit codes in
``codeformer.cli``); any other exception is a bug and keeps its traceback."""

from __future__ import annotations

from ..errors import CodeFormerError, InputError


class CliError(CodeFormerError):
    """An argument, input or output the command line cannot use; the message names it and the fix. Exit ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class OutputWriteError(CliError):
    """An output file could not be written (disk full, no permission, read-only folder): the run stops, exit 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=1)


class ImageReadError(InputError):
    """An input file cannot be read as an image: the message names the file and why (damaged, too large, ...)."""


__all__ = ["CliError", "ImageReadError", "OutputWriteError"]
