"""Model store: verified downloads from a local HTTP server, safe state-dict loading, key-based network loading."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import weights
from codeformer import model_store as ms
from codeformer.model_store import KnownFile, ModelDownloadError, ModelFileError
from codeformer.types import CodeFormerModel, FaceDetector, FaceParser

PAYLOAD = os.urandom(200_000) + b"end"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD in several broken and unbroken ways."""

    hits: dict[str, int] = {}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (silence the test server)
        pass

    def _send(self, body: bytes, length: int | None = None, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        route = self.path.split("/")[1]
        self.hits[route] = self.hits.get(route, 0) + 1
        self.close_connection = True
        if route == "good":
            self._send(PAYLOAD)
        elif route == "corrupt":
            self._send(PAYLOAD[:-3] + b"END")
        elif route == "truncated":
            self._send(PAYLOAD[: len(PAYLOAD) // 2], length=len(PAYLOAD))
        elif route == "short":  # honest Content-Length, but not the size we expect
            self._send(PAYLOAD[:1000])
        elif route == "error":
            self._send(b"boom", status=500)
        elif route == "flaky":  # fails the first time, then works
            if self.hits[route] == 1:
                self._send(b"busy", status=503)
            else:
                self._send(PAYLOAD)
        else:
            self._send(b"not found", status=404)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Base URL of a local HTTP server on 127.0.0.1 (random port)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEFORMER_OFFLINE", raising=False)


def known(url: str, name: str = "model.pth", size: int | None = len(PAYLOAD), sha: str = SHA) -> KnownFile:
    return KnownFile(name=name, folder="facerestore_models", url=url, sha256=sha, size=size)


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# ------------------------------------------------------------------------------------------ download


def test_download_good_file_is_verified_and_renamed(server: str, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    out = ms.download_file(known(f"{server}/good"), tmp_path / "dl", offline=False, on_progress=lambda d, t: calls.append((d, t)))
    assert out == tmp_path / "dl" / "model.pth"
    assert out.read_bytes() == PAYLOAD
    assert leftovers(tmp_path / "dl") == ["model.pth"]
    assert calls[0] == (0, len(PAYLOAD)) and calls[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_download_unknown_size_still_checks_hash(server: str, tmp_path: Path) -> None:
    out = ms.download_file(known(f"{server}/good", size=None), tmp_path, offline=False)
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
        ms.download_file(known(url, size=size), tmp_path, offline=False, timeout=5)
    msg = str(info.value)
    assert url in msg and str(tmp_path / "model.pth") in msg and expect in msg
    assert leftovers(tmp_path) == []


def test_failed_download_does_not_overwrite_existing_file(server: str, tmp_path: Path) -> None:
    (tmp_path / "model.pth").write_bytes(b"mine")
    for route in ("corrupt", "truncated", "error"):
        with pytest.raises(ModelDownloadError):
            ms.download_file(known(f"{server}/{route}"), tmp_path, offline=False, timeout=5)
        assert (tmp_path / "model.pth").read_bytes() == b"mine"
        assert leftovers(tmp_path) == ["model.pth"]


def test_retry_after_failure_succeeds(server: str, tmp_path: Path) -> None:
    k = known(f"{server}/flaky")
    with pytest.raises(ModelDownloadError, match="HTTP 503"):
        ms.download_file(k, tmp_path, offline=False)
    assert ms.download_file(k, tmp_path, offline=False).read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["model.pth"]


def test_connection_refused(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x"
    with pytest.raises(ModelDownloadError, match="cannot connect") as info:
        ms.download_file(known(url), tmp_path, offline=False, timeout=5)
    assert url in str(info.value)
    assert leftovers(tmp_path) == []


def test_interrupt_from_progress_callback_propagates_and_cleans_up(server: str, tmp_path: Path) -> None:
    class Interrupted(Exception):
        pass

    def stop(done: int, total: int) -> None:
        if done > 0:
            raise Interrupted

    with pytest.raises(Interrupted):
        ms.download_file(known(f"{server}/good"), tmp_path, offline=False, on_progress=stop)
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
        ms.download_file(known(url), tmp_path / "dl", offline=offline)
    assert url in str(info.value) and str(tmp_path / "dl" / "model.pth") in str(info.value)
    assert not (tmp_path / "dl").exists()


def test_is_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ms.is_offline() is False
    for value in ("1", "true", "YES"):
        monkeypatch.setenv("CODEFORMER_OFFLINE", value)
        assert ms.is_offline() is True
        assert ms.is_offline(False) is False
    monkeypatch.setenv("CODEFORMER_OFFLINE", "0")
    assert ms.is_offline() is False
    assert ms.is_offline(True) is True


def test_default_models_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CODEFORMER_MODELS_DIR", str(tmp_path / "m"))
    assert ms.default_models_dir() == tmp_path / "m"
    monkeypatch.delenv("CODEFORMER_MODELS_DIR")
    if os.name != "nt":
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        assert ms.default_models_dir() == tmp_path / "cache" / "codeformer" / "models"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert ms.default_models_dir() == Path.home() / ".cache" / "codeformer" / "models"


def test_known_files_match_models_md() -> None:
    models_md = (weights.SHARED / "MODELS.md").read_text()
    rows = [line for line in models_md.splitlines() if line.startswith("| ") and "github.com" in line]
    assert len(rows) == len(ms.KNOWN_FILES)
    for row in rows:
        name, folder, size, sha, url = (c.strip() for c in row.strip("|").split("|"))
        k = ms.KNOWN_FILES[name]
        assert (k.folder, k.sha256, k.url) == (folder, sha, url)
        assert k.size == (int(size) if size.isdigit() else None)
        assert k.folder in ms.FOLDERS


# ------------------------------------------------------------------------------------------ find / resolve


def test_find_model_file_order_and_subfolders(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    (b / "sub").mkdir(parents=True)
    a.mkdir()
    (b / "x.pth").write_bytes(b"b")
    (b / "sub" / "y.pth").write_bytes(b"y")
    assert ms.find_model_file("x.pth", [a, b]) == b / "x.pth"
    (a / "x.pth").write_bytes(b"a")
    assert ms.find_model_file("x.pth", [a, b]) == a / "x.pth"
    assert ms.find_model_file("sub/y.pth", [a, b]) == b / "sub" / "y.pth"
    assert ms.find_model_file("nope.pth", [a, b]) is None
    (a / "dir.pth").mkdir()
    assert ms.find_model_file("dir.pth", [a]) is None


@pytest.mark.parametrize("bad", ["../x.pth", "sub/../../x.pth", "/etc/passwd", "C:\\x.pth", "..\\x.pth", ""])
def test_find_model_file_rejects_escaping_names(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ModelFileError):
        ms.find_model_file(bad, [tmp_path])


def test_resolve_not_found_message(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        ms.resolve_model_file("codeformer.pth", "facerestore_models", [tmp_path / "a", tmp_path / "b"], None, offline=True)
    msg = str(info.value)
    assert "codeformer.pth" in msg and "facerestore_models" in msg and str(tmp_path / "b") in msg
    assert ms.KNOWN_FILES["codeformer.pth"].url in msg
    assert not isinstance(info.value, ModelDownloadError)
    with pytest.raises(ModelFileError, match="mystery.pth") as info:
        ms.resolve_model_file("mystery.pth", "upscale_models", [tmp_path], tmp_path, offline=False)
    assert "upscale_models" in str(info.value)


def test_resolve_prefers_existing_then_downloads(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ms.KNOWN_FILES, "model.pth", known(f"{server}/good"))
    user = tmp_path / "user"
    user.mkdir()
    (user / "model.pth").write_bytes(b"user file, not hash checked")
    dl = tmp_path / "dl"
    assert ms.resolve_model_file("model.pth", "facerestore_models", [user, dl], dl) == user / "model.pth"
    (user / "model.pth").unlink()
    with pytest.raises(ModelDownloadError):
        ms.resolve_model_file("model.pth", "facerestore_models", [user, dl], dl, offline=True)
    got = ms.resolve_model_file("model.pth", "facerestore_models", [user, dl], dl, offline=False)
    assert got == dl / "model.pth" and got.read_bytes() == PAYLOAD
    assert ms.resolve_model_file("model.pth", "facerestore_models", [user, dl], dl, offline=True) == got



def test_resolve_uses_the_same_file_under_another_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A known file saved by another pack under its own name (codeformer-v0.1.0.pth) is used, not downloaded again;
    a file of the same size with other bytes is not."""
    monkeypatch.setitem(ms.KNOWN_FILES, "model.pth", known("http://127.0.0.1:9/never"))
    user = tmp_path / "user"
    user.mkdir()
    (user / "a-same-size.pth").write_bytes(PAYLOAD[:-3] + b"END")
    (user / "model-v0.1.0.pth").write_bytes(PAYLOAD)
    dl = tmp_path / "dl"
    assert ms.resolve_model_file("model.pth", "facerestore_models", [dl, user], dl, offline=True) == \
        user / "model-v0.1.0.pth"
    (user / "model-v0.1.0.pth").unlink()
    with pytest.raises(ModelDownloadError):  # only the look-alike is left: a download is needed (offline here)
        ms.resolve_model_file("model.pth", "facerestore_models", [dl, user], dl, offline=True)
    assert (user / "a-same-size.pth").read_bytes() == PAYLOAD[:-3] + b"END" and not dl.exists()



def _sd() -> dict[str, torch.Tensor]:
    return {"a.weight": torch.randn(3, 4), "b.bias": torch.arange(5, dtype=torch.float32)}


def test_load_state_dict_pth_and_safetensors_agree(tmp_path: Path) -> None:
    sd = _sd()
    weights.save_pth(sd, tmp_path / "w.pth", wrap="params_ema")
    weights.save_safetensors(sd, tmp_path / "w.safetensors")
    a = ms.load_state_dict(tmp_path / "w.pth")
    b = ms.load_state_dict(tmp_path / "w.safetensors")
    assert a.keys() == b.keys() == sd.keys()
    for k in sd:
        assert torch.equal(a[k], sd[k]) and torch.equal(b[k], sd[k])


def test_load_state_dict_unwraps_and_strips_module(tmp_path: Path) -> None:
    sd = _sd()
    other = {k: v + 1 for k, v in sd.items()}
    torch.save({"params": other, "params_ema": sd, "iter": 5}, tmp_path / "both.pth")
    got = ms.load_state_dict(tmp_path / "both.pth")
    assert torch.equal(got["a.weight"], sd["a.weight"])
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pth")
    assert set(ms.load_state_dict(tmp_path / "ddp.pth")) == set(sd)
    torch.save(sd, tmp_path / "bare.pt")
    assert set(ms.load_state_dict(tmp_path / "bare.pt")) == set(sd)


def _make_marker(path: str) -> None:
    Path(path).write_text("code ran")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_make_marker, (str(self.marker),))


def test_load_state_dict_refuses_code_running_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    torch.save({"params_ema": _sd(), "x": _Evil(marker)}, tmp_path / "evil.pth")
    assert not marker.exists()
    with pytest.raises(ModelFileError) as info:
        ms.load_state_dict(tmp_path / "evil.pth")
    msg = str(info.value)
    assert "evil.pth" in msg and "unsafe" in msg and "Nothing in it was executed" in msg
    assert "_make_marker" in msg
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["truncated", "zero", "text", "html", "list"])
def test_load_state_dict_bad_files(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "codeformer.pth"
    if kind == "truncated":
        weights.save_pth(_sd(), path, wrap="params_ema")
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "zero":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a checkpoint\n")
    elif kind == "html":
        path.write_text("<html><body>404 Not Found</body></html>\n")
    else:
        torch.save([torch.zeros(1)], path)
    with pytest.raises(ModelFileError) as info:
        ms.load_state_dict(path)
    msg = str(info.value)
    assert "codeformer.pth" in msg and "re-download it" in msg
    assert ms.KNOWN_FILES["codeformer.pth"].url in msg


def test_load_state_dict_corrupt_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file(_sd(), str(path))
    data = bytearray(path.read_bytes())
    data[8:20] = b"#garbage!!##"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="w.safetensors.*re-download it"):
        ms.load_state_dict(path)
    path.write_bytes(b"\xff" * 8)
    with pytest.raises(ModelFileError, match="w.safetensors"):
        ms.load_state_dict(path)


def test_load_state_dict_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        ms.load_state_dict(tmp_path / "nope.pth")


# ------------------------------------------------------------------------------------------ networks


def test_load_codeformer_pth_and_safetensors(models_dir: Path) -> None:
    a = ms.load_codeformer(models_dir / "facerestore_models" / "codeformer.pth")
    b = ms.load_codeformer(models_dir / "facerestore_models" / "codeformer.safetensors")
    assert isinstance(a, CodeFormerModel) and a.path.name == "codeformer.pth"
    assert not a.module.training
    assert not any(p.requires_grad for p in a.module.parameters())
    sa, sb = a.module.state_dict(), b.module.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    ref = ms.load_state_dict(models_dir / "facerestore_models" / "codeformer.pth")
    assert all(torch.equal(sa[k], ref[k]) for k in ref)


def test_load_codeformer_rejects_other_models(models_dir: Path) -> None:
    esrgan = models_dir / "upscale_models" / "RealESRGAN_x2plus.pth"
    with pytest.raises(ModelFileError) as info:
        ms.load_codeformer(esrgan)
    msg = str(info.value)
    assert "RealESRGAN_x2plus.pth" in msg and "not a CodeFormer checkpoint" in msg and "ESRGAN" in msg
    assert ms.KNOWN_FILES["codeformer.pth"].url in msg and "facerestore_models" in msg
    with pytest.raises(ModelFileError, match="unknown: no position_emb key"):
        ms.load_codeformer(models_dir / "facedetection" / "parsing_parsenet.pth")


def test_load_upscaler(models_dir: Path) -> None:
    up = ms.load_upscaler(models_dir / "upscale_models" / "RealESRGAN_x2plus.pth")
    assert up.scale == 2 and up.architecture.id == "ESRGAN"
    assert not up.model.training
    with pytest.raises(ModelFileError, match="codeformer.pth.*CodeFormer.*not a background upscaler"):
        ms.load_upscaler(models_dir / "facerestore_models" / "codeformer.pth")
    with pytest.raises(ModelFileError, match="not a supported upscale model"):
        ms.load_upscaler(models_dir / "facedetection" / "parsing_parsenet.pth")


def test_load_detector(models_dir: Path) -> None:
    det_path = models_dir / "facedetection" / "detection_mobilenet0.25_Final.pth"
    det = ms.load_detector(det_path)
    assert isinstance(det, FaceDetector) and det.name == "retinaface_mobile0.25" and det.path == det_path
    assert not det.module.training
    assert ms.load_detector(weights.REAL_DETECTOR, "retinaface_mobile0.25").name == "retinaface_mobile0.25"
    with pytest.raises(ModelFileError, match="retinaface_mobile0.25.*retinaface_resnet50"):
        ms.load_detector(det_path, "retinaface_resnet50")
    with pytest.raises(ModelFileError, match="parsing_parsenet.pth.*not a RetinaFace") as info:
        ms.load_detector(models_dir / "facedetection" / "parsing_parsenet.pth")
    assert "facedetection" in str(info.value)
    with pytest.raises(ValueError):
        ms.load_detector(det_path, "yolo")


@pytest.mark.filterwarnings("ignore::UserWarning:torchvision.models")
def test_load_detector_resnet50_from_keys(tmp_path: Path) -> None:
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    sd = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu")).state_dict()
    path = weights.save_pth({f"module.{k}": v for k, v in sd.items()}, tmp_path / "detection_Resnet50_Final.pth")
    det = ms.load_detector(path, "retinaface_resnet50")
    assert det.name == "retinaface_resnet50"
    assert torch.equal(det.module.state_dict()["body.conv1.weight"], sd["body.conv1.weight"])


def test_load_detector_strict_mismatch(tmp_path: Path) -> None:
    sd = ms.load_state_dict(weights.REAL_DETECTOR)
    sd.pop(next(k for k in sd if k.startswith("ClassHead")))
    weights.save_pth(sd, tmp_path / "broken.pth")
    with pytest.raises(ModelFileError, match="broken.pth.*does not match"):
        ms.load_detector(tmp_path / "broken.pth")


def test_load_parser(models_dir: Path) -> None:
    path = models_dir / "facedetection" / "parsing_parsenet.pth"
    parser = ms.load_parser(path)
    assert isinstance(parser, FaceParser) and parser.path == path and not parser.module.training
    with pytest.raises(ModelFileError) as info:
        ms.load_parser(models_dir / "facedetection" / "detection_mobilenet0.25_Final.pth")
    msg = str(info.value)
    assert "detection_mobilenet0.25_Final.pth" in msg and "parsing_parsenet.pth" in msg and "facedetection" in msg


def test_spandrel_main_registry_untouched() -> None:
    import spandrel

    before = len(spandrel.MAIN_REGISTRY)
    ms._registry()
    assert len(spandrel.MAIN_REGISTRY) == before
    assert "CodeFormer" in ms._registry()
