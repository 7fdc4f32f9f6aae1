"""A local HTTP server (127.0.0.1, random port) that serves a model file in broken and unbroken ways, for the
download tests (importable as ``model_server``: tests/ is on sys.path)."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from codeformer.models import KnownFile

PAYLOAD = os.urandom(200_000) + b"end"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /good, and broken at /corrupt, /truncated, /short, /error, /flaky (503 once), /stall."""

    hits: dict[str, int] = {}
    release = threading.Event()  # ends every /stall response

    def log_message(self, format: str, *args: object) -> None:  # silence the test server
        pass

    def _send(self, body: bytes, length: int | None = None, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self) -> None:  # the http.server API names it
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
        elif route == "stall":  # half of PAYLOAD, then nothing (a stalled connection) until released
            self._send(PAYLOAD[: len(PAYLOAD) // 2], length=len(PAYLOAD))
            self.release.wait(10)
        else:
            self._send(b"not found", status=404)


@contextmanager
def serve() -> Iterator[str]:
    """Run the server while the block runs; yields its base URL."""
    _Handler.hits.clear()
    _Handler.release.clear()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        _Handler.release.set()
        httpd.shutdown()
        httpd.server_close()


def known(url: str, name: str = "model.pth", size: int | None = len(PAYLOAD), sha: str = SHA) -> KnownFile:
    """A KnownFile entry for PAYLOAD at ``url``."""
    return KnownFile(name=name, folder="facerestore_models", url=url, sha256=sha, size=size)


def leftovers(d: Path) -> list[str]:
    """File names in ``d`` (empty when it does not exist)."""
    return sorted(p.name for p in d.iterdir()) if d.exists() else []
