"""Downloading an official model file, verified by size and SHA-256, without leaving a partial file behind.

Nothing else in the package downloads: facexlib's ``init_*_model`` factories (which download on their own) are never
used. Files the user placed are loaded without a hash check.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .catalog import KnownFile
from .errors import ModelDownloadError

logger = logging.getLogger(__name__)

OFFLINE_ENV = "CODEFORMER_OFFLINE"
_CHUNK = 1 << 20
_USER_AGENT = "comfyui-codeformer (python urllib)"


def is_offline(offline: bool | None = None) -> bool:
    """True when downloads are off: the explicit flag if given, else env ``CODEFORMER_OFFLINE`` in {1, true, yes}."""
    if offline is not None:
        return bool(offline)
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes"}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _place_by_hand(known: KnownFile, final: Path) -> str:
    """The "how to fix it yourself" sentence of a download error."""
    size = f"{known.size} bytes, " if known.size is not None else ""
    return (
        f"Download {known.url} yourself ({size}sha256 {known.sha256}) and place it at exactly {final} "
        "(or in a ComfyUI models/" + known.folder + " folder)."
    )


def download_file(
    known: KnownFile,
    dest_dir: Path,
    *,
    offline: bool | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    timeout: float = 30,
) -> Path:
    """Download ``known.url`` to ``dest_dir/known.name`` via ``.part``, verifying size and SHA-256; return the path."""
    dest_dir = Path(dest_dir)
    final = dest_dir / known.name
    part = dest_dir / (known.name + ".part")
    if is_offline(offline):
        raise ModelDownloadError(
            f"`{known.name}` is missing and downloads are off (offline mode: the offline option or "
            f"{OFFLINE_ENV}=1), so it was not fetched from {known.url}. " + _place_by_hand(known, final)
        )
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelDownloadError(
            f"Cannot create the folder {dest_dir} to download {known.url} into ({exc}). " + _place_by_hand(known, final)
        ) from exc

    logger.info("downloading %s -> %s", known.url, final)
    ok = False
    try:
        try:
            _fetch_to(known, part, on_progress, timeout)
        except _ShortTransferError as exc:
            raise ModelDownloadError(f"Downloading {known.url} failed: {exc}. " + _place_by_hand(known, final)) from exc
        except urllib.error.HTTPError as exc:
            raise ModelDownloadError(
                f"Downloading {known.url} failed: HTTP {exc.code} {exc.reason}. " + _place_by_hand(known, final)
            ) from exc
        except urllib.error.URLError as exc:
            raise ModelDownloadError(
                f"Downloading {known.url} failed: cannot connect ({exc.reason}). " + _place_by_hand(known, final)
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ModelDownloadError(
                f"Downloading {known.url} failed: {type(exc).__name__}: {exc}. " + _place_by_hand(known, final)
            ) from exc

        got_size = part.stat().st_size
        if known.size is not None and got_size != known.size:
            raise ModelDownloadError(
                f"Downloading {known.url} gave {got_size} bytes, expected {known.size}; the file was discarded. "
                + _place_by_hand(known, final)
            )
        digest = file_sha256(part)
        if digest != known.sha256.lower():
            raise ModelDownloadError(
                f"Downloading {known.url} gave a file with sha256 {digest}, expected {known.sha256} "
                "(corrupted or changed upstream); the file was discarded. " + _place_by_hand(known, final)
            )
        try:
            os.replace(part, final)
        except OSError as exc:
            raise ModelDownloadError(
                f"Downloaded {known.url} but could not move it to {final} ({exc}). " + _place_by_hand(known, final)
            ) from exc
        ok = True
    finally:
        # Also on interrupts raised from on_progress: never leave a .part behind.
        if not ok:
            try:
                part.unlink(missing_ok=True)
            except OSError:
                logger.warning("could not delete the partial download %s", part, exc_info=True)
    logger.info("downloaded and verified %s", final)
    return final


class _ShortTransferError(OSError):
    """The server sent fewer bytes than it announced."""


def _fetch_to(known: KnownFile, part: Path, on_progress: Callable[[int, int], None] | None, timeout: float) -> None:
    """Stream ``known.url`` into ``part``; raise OSError/HTTPException on any transfer failure or short body."""
    from tqdm import tqdm

    request = urllib.request.Request(known.url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # https URLs from KNOWN_FILES
        header = response.headers.get("Content-Length")
        expected = int(header) if header and header.isdigit() else None
        total = expected if expected is not None else (known.size or 0)
        done = 0
        with open(part, "wb") as out, tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024,
                                           desc=known.name, file=sys.stderr, leave=False) as bar:
            if on_progress is not None:
                on_progress(0, total)
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                done += len(chunk)
                bar.update(len(chunk))
                if on_progress is not None:
                    on_progress(done, total)
    # http.client returns a short body without raising when the server closes early: check it here.
    if expected is not None and done != expected:
        raise _ShortTransferError(f"the connection closed after {done} of {expected} bytes (interrupted download)")


__all__ = ["OFFLINE_ENV", "download_file", "file_sha256", "is_offline"]
