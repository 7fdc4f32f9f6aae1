"""Restoration of aligned 512x512 faces (CodeFormer, GFPGAN, RestoreFormer), with the official pre- and
post-processing; how each network is called is in ``restorers``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .compiled import compile_network
from .errors import InputError
from .gray import batch_is_gray, restore_gray
from .image import resize
from .restorers import Restorer, restorer_of, warn_fidelity
from .runtime import auto_batch_size, bf16_autocast, memory_format, run_in_batches, use_bf16
from .swish import use_fused_swish
from .types import FACE_SIZE, CodeFormerModel, Face, Faces, Interrupt, Progress

log = logging.getLogger(__name__)

# Faces copied to the device (and back) together: 256 crops are ~200 MB each way as uint8.
TRANSFER_CHUNK = 256
Fidelity = float | Callable[[Face], float]  # one value, or a rule giving each face its own


def restore_faces(
    model: CodeFormerModel,
    faces: np.ndarray | Sequence[np.ndarray] | torch.Tensor,
    fidelity: float | Sequence[float] = 0.5,
    *,
    device: torch.device | str = "cpu",
    batch_size: int | None = None,
    precision: str | None = None,
    gray: Sequence[bool] | None = None,
    on_progress: Progress | None = None,
    check_interrupt: Interrupt | None = None,
) -> np.ndarray:
    """Restore aligned faces.

    Args:
        faces: ``[N, H, W, 3]`` RGB, uint8 0..255 or float 0..1; other sizes than 512 are resized (bilinear). Or
            a ``[N, 3, 512, 512]`` uint8 tensor on any device (the device path's crops): used where it is.
        fidelity: ``w`` in [0, 1] (0 = quality, 1 = fidelity to the input), one value or one per face; only
            CodeFormer has one (other restorers log a warning once when it is not the default, and ignore it).
        batch_size: faces per network call; default: from free device memory (``runtime.auto_batch_size``).
        precision: ``auto`` (bf16 autocast on CUDA devices that support it, else fp32 in the fastest layout),
            ``fp32`` (the official arithmetic, bit-identical) or ``bf16``; default: ``model.precision``.
        gray: per-face grayscale flags (official ``is_gray`` of the source); default: measured on each face.
    Returns:
        ``[N, 512, 512, 3]`` RGB uint8.
    """
    crops = _tensor_batch(faces) if isinstance(faces, torch.Tensor) else _as_batch(faces)
    n = len(crops)
    weights = _per_face(fidelity, n)
    restorer = restorer_of(model)
    if not restorer.has_fidelity:  # one group: the weight changes nothing, so it must not split batches
        warn_fidelity(restorer, weights)
        weights = [0.0] * n
    out = np.empty((n, FACE_SIZE, FACE_SIZE, 3), np.uint8)  # every row is written below
    if n == 0:
        return out
    gray_flags = [bool(g) for g in gray] if gray is not None else [False] * n
    settings = run_settings(model, device, precision, batch_size)
    device = settings.device
    net = _network(model, settings, restorer)
    done = 0

    def progress(count: int) -> None:
        nonlocal done
        done += count
        if on_progress is not None:
            on_progress(done, n)

    # Faces with the same fidelity share a batch (the network takes one weight per call). Each chunk of faces goes
    # to the device in one copy and comes back in one, so batches run back to back without host round trips; a run
    # of consecutive faces (all of them, for one fidelity) is read from and written to the arrays in place.
    for w in sorted(set(weights)):
        idx = [i for i in range(n) if weights[i] == w]
        for start in range(0, len(idx), TRANSFER_CHUNK):
            chunk = idx[start : start + TRANSFER_CHUNK]
            rows = _rows(chunk)
            # uint8 travels as is and is scaled on the device: (x / 255 - 0.5) / 0.5, as the official code; crops
            # already on a device (the device path) are only moved if the network is elsewhere
            if isinstance(crops, torch.Tensor):
                x_all = crops[rows].to(device)
            else:
                x_all = torch.from_numpy(crops[rows]).permute(0, 3, 1, 2).to(device)
            if gray is None:  # official is_gray in float64: on a CUDA device, else on the host (MPS has no float64)
                measured = batch_is_gray(x_all if device.type == "cuda" else x_all.cpu())
                for i, flag in zip(chunk, measured, strict=True):
                    gray_flags[i] = flag
            y_all = _run_chunk(net, x_all, w, settings, progress, check_interrupt, restorer)
            if isinstance(rows, slice):
                torch.from_numpy(out[rows]).copy_(y_all)  # straight into the result, no intermediate copy
            else:
                out[rows] = y_all.cpu().numpy()
    for i in (i for i in range(n) if gray_flags[i]):  # only gray faces need their crop on the host
        out[i] = finish_face(out[i], _host_crop(crops, i), True)
    return out


@dataclass(frozen=True)
class RunSettings:
    """How CodeFormer runs: on which device, under bf16 autocast or not, in which memory layout, faces per call, and
    whether its swish is the fused SiLU (all but ``precision fp32``, which keeps the official arithmetic)."""

    device: torch.device
    bf16: bool
    fmt: torch.memory_format
    batch_size: int
    fused_swish: bool


def run_settings(model: CodeFormerModel, device: torch.device | str, precision: str | None,
                 batch_size: int | None) -> RunSettings:
    """``restore_faces``' choices: precision defaults to ``model.precision``, the batch size to the free memory."""
    device = torch.device(device)
    precision = model.precision if precision is None else precision
    bf16 = use_bf16(device, precision)
    fmt = memory_format(device, precision) if restorer_of(model).channels_last else torch.contiguous_format
    return RunSettings(device, bf16, fmt, auto_batch_size(device, bf16) if batch_size is None else batch_size,
                       fused_swish=precision != "fp32")


def placed_network(model: CodeFormerModel, settings: RunSettings) -> torch.nn.Module:
    """The network module on the device, in evaluation mode, the memory layout and the swish of ``settings``."""
    net = model.module.to(settings.device).eval().to(memory_format=settings.fmt)
    use_fused_swish(net, settings.fused_swish)
    return net


def network_input(x: torch.Tensor, fmt: torch.memory_format) -> torch.Tensor:
    """Faces ``[B, 3, 512, 512]`` (uint8 or 0..1 floats, on the device) as the network takes them: float in [-1, 1]
    in layout ``fmt``, scaled as the official code does: (x / 255 - 0.5) / 0.5."""
    x = (x.float() / 255.0 if x.dtype == torch.uint8 else x.float()).contiguous(memory_format=fmt)
    return (x - 0.5) / 0.5


def network_output(y: torch.Tensor) -> torch.Tensor:
    """The network's output ``[B, 3, 512, 512]`` in [-1, 1] as ``[B, 512, 512, 3]`` uint8 (official rounding)."""
    return ((y.float().clamp(-1, 1) + 1) / 2 * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1)


def finish_face(restored: np.ndarray, crop: np.ndarray, gray: bool) -> np.ndarray:
    """A restored face as returned: gray sources get the official gray handling (``restore_gray``)."""
    return restore_gray(restored, _to_uint8(crop)) if gray else restored


def _run_chunk(net: Callable, x_all: torch.Tensor, w: float, settings: RunSettings, on_done: Callable[[int], None],
               check_interrupt: Interrupt | None, restorer: Restorer) -> torch.Tensor:
    """The network over a chunk of faces already on the device ``[N, 3, 512, 512]`` (uint8 or 0..1 floats), in
    batches that halve on out-of-memory; returns ``[N, 512, 512, 3]`` uint8 on the same device."""
    y_all = torch.empty((len(x_all), FACE_SIZE, FACE_SIZE, 3), dtype=torch.uint8, device=x_all.device)

    def run(batch: list[int]) -> None:
        part = slice(batch[0], batch[-1] + 1)  # positions in the chunk
        x = network_input(x_all[part], settings.fmt)
        with torch.inference_mode(), bf16_autocast(x.device, settings.bf16):
            y = restorer.call(net, x, w)
        y_all[part] = network_output(y)

    run_in_batches(run, list(range(len(x_all))), settings.batch_size, on_done=on_done,
                   check_interrupt=check_interrupt, what=restorer.name)
    return y_all


def restore_found_faces(
    model: CodeFormerModel,
    faces: Faces,
    crops: np.ndarray | Sequence[np.ndarray] | torch.Tensor,
    fidelity: Fidelity = 0.5,
    **kwargs,
) -> np.ndarray:
    """``restore_faces`` on the crops of ``faces`` with each source image's gray flag (as the official pipeline);
    ``fidelity`` may be a rule per face. ``kwargs`` are those of ``restore_faces``."""
    check_crops(crops, faces)
    return restore_faces(model, crops, face_weights(fidelity, faces.faces), gray=[f.is_gray for f in faces.faces],
                         **kwargs)


def check_crops(crops: np.ndarray | Sequence[np.ndarray] | torch.Tensor, faces: Faces | Sequence[Face]) -> None:
    """InputError unless there is one crop per face."""
    if len(crops) != len(faces):
        raise InputError(f"{len(crops)} face crop(s) for {len(faces)} detected face(s); give the crops of these "
                         "faces (in ComfyUI: the crops and faces outputs of the same CodeFormer Face Detect node)")


def face_weights(fidelity: Fidelity, faces: Sequence[Face]) -> list[float]:
    """The fidelity of each face (a value, or a rule per face), checked to lie in 0..1."""
    return _per_face([fidelity(f) for f in faces] if callable(fidelity) else fidelity, len(faces))


def _rows(chunk: list[int]) -> slice | list[int]:
    """Indices as a slice when consecutive (numpy then gives views, not copies)."""
    if chunk[-1] - chunk[0] == len(chunk) - 1:
        return slice(chunk[0], chunk[-1] + 1)
    return chunk


def _network(model: CodeFormerModel, settings: RunSettings, restorer: Restorer) -> Callable:
    """The network on ``device``; with ``model.compile`` on CUDA, a torch.compile'd copy kept on the model.

    Compiling pays for large batches of faces (bench/gpu_experiments.py). It happens again the first time the batch
    size or the fidelity changes (then they become graph inputs; fidelity 0 keeps graphs of its own): 4 compiles at
    most (bench/compile_recompiles.py).
    """
    net = placed_network(model, settings)
    if not model.compile or settings.device.type != "cuda":
        return net
    if not restorer.has_fidelity:  # compile_network's call is CodeFormer's (weight=); the others run as they are
        log.info("compile is for CodeFormer only: %s runs uncompiled", restorer.name)
        return net
    key = str(settings.device)
    if key not in model.compiled:
        log.info("compiling CodeFormer for %s: the first batch takes about a minute", settings.device)
        model.compiled[key] = compile_network(net)
    return model.compiled[key]


def _per_face(fidelity: float | Sequence[float], n: int) -> list[float]:
    values = [float(v) for v in fidelity] if isinstance(fidelity, (Sequence, np.ndarray)) else [float(fidelity)] * n
    if len(values) != n:
        raise InputError(f"fidelity has {len(values)} values for {n} faces; give one value or one per face")
    for v in values:
        if not 0.0 <= v <= 1.0:
            raise InputError(f"fidelity {v} is outside 0..1; use 0 for quality, 1 for fidelity to the input")
    return values


def _as_512(face: np.ndarray) -> np.ndarray:
    """One face as (512, 512, 3): uint8 kept as is, floats as float32 0..1; other sizes resized bilinear
    like the official --has_aligned."""
    face = np.asarray(face)
    if face.ndim != 3 or face.shape[2] < 3:
        raise InputError(f"an aligned face must be (H, W, 3), got shape {face.shape}")
    face = face[:, :, :3]
    if face.dtype != np.uint8:
        face = np.clip(np.nan_to_num(face.astype(np.float32), nan=0.0), 0.0, 1.0)
    return np.ascontiguousarray(resize(face, (FACE_SIZE, FACE_SIZE)))


def _tensor_batch(faces: torch.Tensor) -> torch.Tensor:
    """Crops given as a tensor: ``[N, 3, 512, 512]`` uint8 on any device, used as they are."""
    if faces.dtype != torch.uint8 or faces.shape[1:] != (3, FACE_SIZE, FACE_SIZE):
        raise InputError(f"faces as a tensor must be [N, 3, 512, 512] uint8, got {tuple(faces.shape)} {faces.dtype}")
    return faces


def _as_batch(faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Faces as one ``[N, 512, 512, 3]`` array: uint8 when all are, else float32 0..1. A uint8 array of that shape
    is used as it is (no copy: it is only read)."""
    if isinstance(faces, np.ndarray) and faces.dtype == np.uint8 and faces.shape[1:] == (FACE_SIZE, FACE_SIZE, 3):
        if faces.flags.writeable:  # torch.from_numpy warns on read-only arrays
            return np.ascontiguousarray(faces)
    crops = [_as_512(face) for face in faces]
    if not crops:
        return np.zeros((0, FACE_SIZE, FACE_SIZE, 3), np.uint8)
    if all(c.dtype == np.uint8 for c in crops):
        return np.stack(crops)
    return np.stack([c.astype(np.float32) / 255.0 if c.dtype == np.uint8 else c for c in crops])


def _host_crop(crops: np.ndarray | torch.Tensor, i: int) -> np.ndarray:
    """Crop ``i`` as ``(512, 512, 3)`` on the host (a gray face's colour statistics are taken there, in float64)."""
    if isinstance(crops, torch.Tensor):
        return crops[i].permute(1, 2, 0).cpu().numpy()
    return crops[i]


def _to_uint8(face: np.ndarray) -> np.ndarray:
    return face if face.dtype == np.uint8 else (face * 255.0).round().astype(np.uint8)


__all__ = ["Fidelity", "restore_faces", "restore_found_faces"]
