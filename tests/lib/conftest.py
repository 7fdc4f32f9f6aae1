"""Fixtures of the library tests that download: a local model server, and downloads switched on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import model_server


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Base URL of the local test server (tests/model_server.py)."""
    with model_server.serve() as url:
        yield url


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Downloads on, whatever CODEFORMER_OFFLINE says in the environment."""
    monkeypatch.delenv("CODEFORMER_OFFLINE", raising=False)
