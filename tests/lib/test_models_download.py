"""codeformer.models.download: verified downloads from a local HTTP server, offline mode, nothing left on failure."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from codeformer import models
from codeformer.models import ModelDownloadError
from model_server import PAYLOAD, known, leftovers


pytestmark = pytest.mark.usefixtures("online")


def test_download_good_file_is_verified_and_renamed(server: str, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    out = models.download_file(known(f"{server}/good"), tmp_path / "dl", offline=False,
                               on_progress=lambda d, t: calls.append((d, t)))
    assert out == tmp_path / "dl" / "model.pth"
    assert out.read_bytes() == PAYLOAD
    assert leftovers(tmp_path / "dl") == ["model.pth"]
    assert calls[0] == (0, len(PAYLOAD)) and calls[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_download_unknown_size_still_checks_hash(server: str, tmp_path: Path) -> None:
    out = models.download_file(known(f"{server}/good", size=None), tmp_path, offline=False)
    assert out.read_bytes() == PAYLOAD


@pytest.mark.parametrize(
    ("route", "size", "expect"),
    [
        ("corrupt", len(PAYLOAD), "sha256"),
        ("truncated", len(PAYLOAD), "connection closed"),
        ("short", len(PAYLOAD), "expected"),
        ("short", None, "sha256"),
        ("error", len(PAYLOAD), "HTTP 500"),
        ("missing", len(PAYLOAD), "HTTP 404"),
    ],
)
def test_failed_download_leaves_nothing(server: str, tmp_path: Path, route: str, size: int | None, expect: str) -> None:
    url = f"{server}/{route}"
    with pytest.raises(ModelDownloadError) as info:
        models.download_file(known(url, size=size), tmp_path, offline=False, timeout=5)
    msg = str(info.value)
    assert url in msg and str(tmp_path / "model.pth") in msg and expect in msg
    assert leftovers(tmp_path) == []


def test_failed_download_does_not_overwrite_existing_file(server: str, tmp_path: Path) -> None:
    (tmp_path / "model.pth").write_bytes(b"mine")
    for route in ("corrupt", "truncated", "error"):
        with pytest.raises(ModelDownloadError):
            models.download_file(known(f"{server}/{route}"), tmp_path, offline=False, timeout=5)
        assert (tmp_path / "model.pth").read_bytes() == b"mine"
        assert leftovers(tmp_path) == ["model.pth"]


def test_retry_after_failure_succeeds(server: str, tmp_path: Path) -> None:
    k = known(f"{server}/flaky")
    with pytest.raises(ModelDownloadError, match="HTTP 503"):
        models.download_file(k, tmp_path, offline=False)
    assert models.download_file(k, tmp_path, offline=False).read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["model.pth"]


def test_connection_refused(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(ModelDownloadError, match="cannot connect") as info:
        models.download_file(known(url), tmp_path, offline=False, timeout=5)
    assert url in str(info.value)
    assert leftovers(tmp_path) == []


def test_stalled_download_times_out_and_leaves_nothing(server: str, tmp_path: Path) -> None:
    url = f"{server}/stall/model.pth"
    with pytest.raises(ModelDownloadError) as info:
        models.download_file(known(url), tmp_path, offline=False, timeout=1)
    msg = str(info.value)
    assert url in msg and str(tmp_path / "model.pth") in msg and "timed out" in msg.lower()
    assert list(tmp_path.iterdir()) == []


def test_interrupt_from_progress_callback_propagates_and_cleans_up(server: str, tmp_path: Path) -> None:
    class Interrupted(Exception):
        pass

    def stop(done: int, total: int) -> None:
        if done > 0:
            raise Interrupted

    with pytest.raises(Interrupted):
        models.download_file(known(f"{server}/good"), tmp_path, offline=False, on_progress=stop)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("how", ["flag", "env"])
def test_offline_raises_without_network(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network used while offline")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    offline: bool | None = True
    if how == "env":
        monkeypatch.setenv("CODEFORMER_OFFLINE", "yes")
        offline = None
    url = "https://example.invalid/model.pth"
    with pytest.raises(ModelDownloadError) as info:
        models.download_file(known(url), tmp_path / "dl", offline=offline)
    assert url in str(info.value) and str(tmp_path / "dl" / "model.pth") in str(info.value)
    assert not (tmp_path / "dl").exists()


def test_is_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    assert models.is_offline() is False
    for value in ("1", "true", "YES"):
        monkeypatch.setenv("CODEFORMER_OFFLINE", value)
        assert models.is_offline() is True
        assert models.is_offline(False) is False
    monkeypatch.setenv("CODEFORMER_OFFLINE", "0")
    assert models.is_offline() is False
    assert models.is_offline(True) is True


def test_download_errors_are_codeformer_errors() -> None:
    """Front ends print the project's own errors as one line: model errors are among them."""
    from codeformer.errors import CodeFormerError

    assert issubclass(ModelDownloadError, models.ModelFileError)
    assert issubclass(models.ModelFileError, CodeFormerError)
