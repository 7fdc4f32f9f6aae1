"""Fixtures of the library tests: the real detector; for the downloads a local model server, and downloads on."""

from __future__ import annotations

from collections.abc import Iterator

import model_server
import pytest
import weights

from codeformer.models import load_detector


@pytest.fixture(scope="module")
def detector():
    return load_detector(weights.REAL_DETECTOR)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """Base URL of the local test server (tests/model_server.py)."""
    with model_server.serve() as url:
        yield url


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Downloads on, whatever CODEFORMER_OFFLINE says in the environment."""
    monkeypatch.delenv("CODEFORMER_OFFLINE", raising=False)
