"""Stubs of ComfyUI's ``folder_paths``, ``comfy.model_management`` and ``comfy.utils`` (real signatures, ComfyUI
0.3.64), put into ``sys.modules`` before the pack is imported, plus fixtures that import the pack the way ComfyUI
does (a package loaded from its ``__init__.py``) over a models folder built from ``tests/conftest.py``, and the
node tests' shared stand-ins: the real detector as the loader node gives it, and a CodeFormer stand-in (``fake``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import weights
from helpers import FakeCodeFormer
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui_codeformer_pack"


# ---------------------------------------------------------------------------------------------- folder_paths


def _make_folder_paths() -> types.ModuleType:
    fp = types.ModuleType("folder_paths")
    fp.supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
    fp.folder_names_and_paths = {}
    fp.models_dir = ""  # set by the `pack` fixture before the pack is imported

    def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
        if folder_name in fp.folder_names_and_paths:
            paths, _exts = fp.folder_names_and_paths[folder_name]
            if full_folder_path in paths:
                if is_default and paths[0] != full_folder_path:
                    paths.remove(full_folder_path)
                    paths.insert(0, full_folder_path)
            elif is_default:
                paths.insert(0, full_folder_path)
            else:
                paths.append(full_folder_path)
        else:
            fp.folder_names_and_paths[folder_name] = ([full_folder_path], set())

    def get_folder_paths(folder_name: str) -> list[str]:
        return fp.folder_names_and_paths[folder_name][0][:]

    def get_full_path(folder_name: str, filename: str) -> str | None:
        if folder_name not in fp.folder_names_and_paths:
            return None
        filename = os.path.relpath(os.path.join("/", filename), "/")
        for folder in fp.folder_names_and_paths[folder_name][0]:
            full = os.path.join(folder, filename)
            if os.path.isfile(full):
                return full
        return None

    def get_full_path_or_raise(folder_name: str, filename: str) -> str:
        full = get_full_path(folder_name, filename)
        if full is None:
            raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
        return full

    def get_filename_list(folder_name: str) -> list[str]:
        folders, extensions = fp.folder_names_and_paths[folder_name]  # KeyError for unknown keys, as the real one
        found: set[str] = set()
        for folder in folders:
            for dirpath, subdirs, files in os.walk(folder, followlinks=True):
                subdirs[:] = [d for d in subdirs if d != ".git"]
                for name in files:
                    rel = os.path.relpath(os.path.join(dirpath, name), folder)
                    if len(extensions) == 0 or os.path.splitext(rel)[-1].lower() in extensions:
                        found.add(rel)
        return sorted(found)

    for fn in (add_model_folder_path, get_folder_paths, get_full_path, get_full_path_or_raise, get_filename_list):
        setattr(fp, fn.__name__, fn)
    return fp


# ---------------------------------------------------------------------------------------------- comfy


def _make_comfy() -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    comfy = types.ModuleType("comfy")
    comfy.__path__ = []  # a package

    mm = types.ModuleType("comfy.model_management")
    mm.torch_device = torch.device("cpu")  # tests may point this at cuda
    mm.interrupt_processing = False
    mm.calls = []  # ("free_memory" | "soft_empty_cache" | "load_models_gpu", ...) for assertions
    mm.current_loaded_models = []  # ModelPatchers, most recently loaded first (the real list holds LoadedModels)

    class InterruptProcessingException(Exception):
        pass

    def get_torch_device():
        return mm.torch_device

    def intermediate_device():
        return torch.device("cpu")

    def unet_offload_device():
        return torch.device("cpu")

    def soft_empty_cache(force=False):
        mm.calls.append(("soft_empty_cache",))

    def module_size(module):
        return sum(t.nelement() * t.element_size() for t in module.state_dict().values())

    def free_memory(memory_required, device, keep_loaded=[]):  # noqa: B006 (the real signature)
        """Unloads every other loaded model on ``device`` to its offload device (the real one stops when enough
        memory is free)."""
        mm.calls.append(("free_memory", memory_required, device))
        unloaded = [p for p in mm.current_loaded_models if p.load_device == device and p not in keep_loaded]
        for patcher in unloaded:
            patcher.model.to(patcher.offload_device)
            mm.current_loaded_models.remove(patcher)
        return unloaded

    def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                        force_full_load=False):
        """Loads each patcher's model onto its load device; an already loaded patcher (same object) stays."""
        mm.calls.append(("load_models_gpu", list(models), memory_required, force_full_load))
        for patcher in models:
            patcher.model.to(patcher.load_device)
            patcher.model.device = patcher.load_device  # as the real ModelPatcher.load
            if patcher in mm.current_loaded_models:
                mm.current_loaded_models.remove(patcher)
            mm.current_loaded_models.insert(0, patcher)

    def interrupt_current_processing(value=True):
        mm.interrupt_processing = value

    def processing_interrupted():
        return mm.interrupt_processing

    def throw_exception_if_processing_interrupted():
        if mm.interrupt_processing:
            mm.interrupt_processing = False
            raise InterruptProcessingException()

    for obj in (InterruptProcessingException, get_torch_device, intermediate_device, unet_offload_device,
                soft_empty_cache, module_size, free_memory, load_models_gpu, interrupt_current_processing,
                processing_interrupted,
                throw_exception_if_processing_interrupted):
        setattr(mm, obj.__name__, obj)

    utils = types.ModuleType("comfy.utils")
    utils.PROGRESS_BAR_HOOK = None
    utils.bars = []  # every ProgressBar created, for assertions

    class ProgressBar:
        def __init__(self, total, node_id=None):
            self.total = total
            self.current = 0
            self.node_id = node_id
            self.history = []
            utils.bars.append(self)

        def update_absolute(self, value, total=None, preview=None):
            if total is not None:
                self.total = total
            if value > self.total:
                value = self.total
            self.current = value
            self.history.append((value, self.total))

        def update(self, value):
            self.update_absolute(self.current + value)

    utils.ProgressBar = ProgressBar

    patcher_module = types.ModuleType("comfy.model_patcher")

    class ModelPatcher:
        """The parts of comfy.model_patcher.ModelPatcher that plain torch modules use."""

        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
            self.model = model
            self.load_device = load_device
            self.offload_device = offload_device
            self.size = size or module_size(model)
            if not hasattr(model, "device"):
                model.device = offload_device

    patcher_module.ModelPatcher = ModelPatcher
    comfy.model_management = mm
    comfy.utils = utils
    comfy.model_patcher = patcher_module
    return comfy, mm, utils, patcher_module


folder_paths = _make_folder_paths()
comfy, model_management, comfy_utils, model_patcher = _make_comfy()
sys.modules.update({"folder_paths": folder_paths, "comfy": comfy, "comfy.model_management": model_management,
                    "comfy.utils": comfy_utils, "comfy.model_patcher": model_patcher})

# The stub's state is complete before anything imports the pack: pytest itself imports the repo's __init__.py
# (the repo root is a package) before any fixture runs. The model files are linked in by `comfy_models`.
_TMP = Path(tempfile.mkdtemp(prefix="codeformer_nodes_tests_"))
COMFY_MODELS = _TMP / "models"
USER_FACERESTORE = _TMP / "user_facerestore"  # a facerestore_models path from extra_model_paths.yaml
for _sub in ("facerestore_models", "facedetection", "upscale_models"):
    (COMFY_MODELS / _sub).mkdir(parents=True)
USER_FACERESTORE.mkdir()
folder_paths.models_dir = str(COMFY_MODELS)
folder_paths.folder_names_and_paths["upscale_models"] = ([str(COMFY_MODELS / "upscale_models")],
                                                         folder_paths.supported_pt_extensions)
# What extra_model_paths.yaml does before custom nodes load: the key exists, with no extensions.
folder_paths.add_model_folder_path("facerestore_models", str(USER_FACERESTORE))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CUDA (skipped without it)")


def pytest_unconfigure(config):
    shutil.rmtree(_TMP, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def comfy_models(models_dir) -> Path:
    """ComfyUI's ``models/`` (the stub's models_dir), with links to the test checkpoints of ``models_dir``."""
    for sub in ("facerestore_models", "facedetection", "upscale_models"):
        for f in (models_dir / sub).iterdir():
            link = COMFY_MODELS / sub / f.name
            if not link.exists():
                link.symlink_to(f)
    return COMFY_MODELS


@pytest.fixture(scope="session")
def user_facerestore_dir(models_dir) -> Path:
    """The user's extra facerestore_models folder; holds a copy of the test CodeFormer as .safetensors."""
    link = USER_FACERESTORE / "user_codeformer.safetensors"
    if not link.exists():
        link.symlink_to(models_dir / "facerestore_models" / "codeformer.safetensors")
    return USER_FACERESTORE


@pytest.fixture(scope="session")
def pack(comfy_models, user_facerestore_dir):
    """The pack, imported as ComfyUI does: ``spec_from_file_location(<name>, <pack>/__init__.py)``."""
    spec = importlib.util.spec_from_file_location(PACK_NAME, ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def nodes(pack):
    """``NODE_CLASS_MAPPINGS`` of the pack."""
    return pack.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="session")
def lib(pack):
    """The pack's own copy of the ``codeformer`` library (the one the nodes use)."""
    return sys.modules[PACK_NAME + ".codeformer"]


@pytest.fixture(autouse=True)
def _reset_stubs():
    """Fresh interrupt flag, device and call records for every test."""
    model_management.interrupt_processing = False
    model_management.torch_device = torch.device("cpu")
    model_management.calls.clear()
    comfy_utils.bars.clear()
    logging.getLogger(PACK_NAME).setLevel(logging.INFO)
    yield
    model_management.interrupt_processing = False
    for patcher in model_management.current_loaded_models:  # ComfyUI's "unload models": back to the CPU
        patcher.model.to(patcher.offload_device)
    model_management.current_loaded_models.clear()


def _load_photo(name: str, size: tuple[int, int] | None = None,
                box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    img = Image.open(weights.IMAGES / name).convert("RGB")
    if box is not None:
        img = img.crop(box)
    if size is not None:
        img = img.resize(size, Image.BICUBIC)
    return np.asarray(img)


def _to_image(*arrays: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays).astype(np.float32) / 255.0)


@pytest.fixture(scope="session")
def photo():
    """``photo(name, size=(w, h), box=(l, t, r, b))``: a shared test photo, (H, W, 3) RGB uint8 (crop, then resize)."""
    return _load_photo


@pytest.fixture(scope="session")
def as_image():
    """``as_image(*arrays)``: uint8 (H, W, C) arrays -> IMAGE [B, H, W, C] float32 0..1, as LoadImage makes it."""
    return _to_image


@pytest.fixture()
def fake(lib):
    """``fake(**kwargs)``: a CODEFORMER_MODEL whose network is a FakeCodeFormer."""

    def make(**kwargs):
        descriptor = SimpleNamespace(model=FakeCodeFormer(**kwargs), architecture=SimpleNamespace(id="CodeFormer"))
        return lib.types.CodeFormerModel(descriptor=descriptor, path=Path("fake.pth"))

    return make


@pytest.fixture(scope="module")
def detector(nodes, comfy_models):
    (det,) = nodes["CodeFormerFaceDetectorLoader"]().load("retinaface_mobile0.25")
    return det
