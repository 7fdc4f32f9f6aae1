"""Every module's ``__all__`` names what the module has, so ``from codeformer.x import *`` and the documented API
work after code moves between modules."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import codeformer

MODULES = sorted(m.name for m in pkgutil.walk_packages(codeformer.__path__, "codeformer.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name):
    module = importlib.import_module(name)
    missing = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names {missing}, which the module does not have"
