"""codeformer.models.files: the models folder, finding a file, an official file under another name, resolving."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codeformer import models
from codeformer.models import ModelDownloadError, ModelFileError
from model_server import PAYLOAD, known


pytestmark = pytest.mark.usefixtures("online")


def test_default_models_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CODEFORMER_MODELS_DIR", str(tmp_path / "m"))
    assert models.default_models_dir() == tmp_path / "m"
    monkeypatch.delenv("CODEFORMER_MODELS_DIR")
    if os.name != "nt":
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        assert models.default_models_dir() == tmp_path / "cache" / "codeformer" / "models"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert models.default_models_dir() == Path.home() / ".cache" / "codeformer" / "models"


def test_find_model_file_order_and_subfolders(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    (b / "sub").mkdir(parents=True)
    a.mkdir()
    (b / "x.pth").write_bytes(b"b")
    (b / "sub" / "y.pth").write_bytes(b"y")
    assert models.find_model_file("x.pth", [a, b]) == b / "x.pth"
    (a / "x.pth").write_bytes(b"a")
    assert models.find_model_file("x.pth", [a, b]) == a / "x.pth"
    assert models.find_model_file("sub/y.pth", [a, b]) == b / "sub" / "y.pth"
    assert models.find_model_file("nope.pth", [a, b]) is None
    (a / "dir.pth").mkdir()
    assert models.find_model_file("dir.pth", [a]) is None


@pytest.mark.parametrize("bad", ["../x.pth", "sub/../../x.pth", "/etc/passwd", "C:\\x.pth", "..\\x.pth", ""])
def test_find_model_file_rejects_escaping_names(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError):
        models.find_model_file(bad, [tmp_path])


def test_resolve_not_found_message(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        models.resolve_model_file("codeformer.pth", "facerestore_models", [tmp_path / "a", tmp_path / "b"], None,
                                  offline=True)
    msg = str(info.value)
    assert "codeformer.pth" in msg and "facerestore_models" in msg and str(tmp_path / "b") in msg
    assert models.KNOWN_FILES["codeformer.pth"].url in msg
    assert not isinstance(info.value, ModelDownloadError)
    with pytest.raises(ModelFileError, match="mystery.pth") as info:
        models.resolve_model_file("mystery.pth", "upscale_models", [tmp_path], tmp_path, offline=False)
    assert "upscale_models" in str(info.value)


def test_resolve_prefers_existing_then_downloads(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models.KNOWN_FILES, "model.pth", known(f"{server}/good"))
    user = tmp_path / "user"
    user.mkdir()
    (user / "model.pth").write_bytes(b"user file, not hash checked")
    dl = tmp_path / "dl"
    assert models.resolve_model_file("model.pth", "facerestore_models", [user, dl], dl) == user / "model.pth"
    (user / "model.pth").unlink()
    with pytest.raises(ModelDownloadError):
        models.resolve_model_file("model.pth", "facerestore_models", [user, dl], dl, offline=True)
    got = models.resolve_model_file("model.pth", "facerestore_models", [user, dl], dl, offline=False)
    assert got == dl / "model.pth" and got.read_bytes() == PAYLOAD
    assert models.resolve_model_file("model.pth", "facerestore_models", [user, dl], dl, offline=True) == got


def test_resolve_uses_the_same_file_under_another_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A known file saved by another pack under its own name (codeformer-v0.1.0.pth) is used, not downloaded again;
    a file of the same size with other bytes is not."""
    monkeypatch.setitem(models.KNOWN_FILES, "model.pth", known("http://127.0.0.1:9/never"))
    user = tmp_path / "user"
    user.mkdir()
    (user / "a-same-size.pth").write_bytes(PAYLOAD[:-3] + b"END")
    (user / "model-v0.1.0.pth").write_bytes(PAYLOAD)
    dl = tmp_path / "dl"
    assert models.resolve_model_file("model.pth", "facerestore_models", [dl, user], dl, offline=True) == \
        user / "model-v0.1.0.pth"
    (user / "model-v0.1.0.pth").unlink()
    with pytest.raises(ModelDownloadError):  # only the look-alike is left: a download is needed (offline here)
        models.resolve_model_file("model.pth", "facerestore_models", [dl, user], dl, offline=True)
    assert (user / "a-same-size.pth").read_bytes() == PAYLOAD[:-3] + b"END" and not dl.exists()
