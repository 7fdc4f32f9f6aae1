"""Image upscaling with any spandrel image model (Real-ESRGAN & co.), tiled like the official RealESRGANer."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import cv2
import numpy as np
import torch
from spandrel import ImageModelDescriptor

from .geometry import PixelBox, target_size
from .image import resize
from .runtime import AUTO_NATIVE, bf16_autocast, cpu_has_amx, free_cuda_memory, memory_format, retry_smaller, use_bf16
from .types import Interrupt, Progress

log = logging.getLogger(__name__)


# The official --bg_tile, used on the CPU in fp32 (the official arithmetic), and for bf16 on AMX: there its cost per
# pixel grows with the tile (18.0 s/Mpx at 480 px with the context, 23.2 at 682x645; bench/measured/README.md).
DEFAULT_TILE = 400
# On the CPU in fp32 channels_last (``auto`` without AMX) the cost per pixel hardly depends on the tile (61-69 s/Mpx
# from 482x363 to 682x645 px, 75 at 800 px), nor in bf16 with AVX512-BF16 alone (an AMD EPYC Zen 4: 26.6-28.4 s/Mpx
# from 482x363 to 720x720): larger, balanced tiles compute fewer context pixels (a 1204x645 background: 2 tiles
# instead of 8, 0.81x the pixels, 15 % faster).
CPU_LARGE_TILE = 640
AUTO_TILE = 0  # tile=0: auto_tile (the CPU's sizes above; on GPUs as large as free memory allows)
TILE_PAD = 40  # official RealESRGANer tile_pad
# On the CPU in bf16, images up to this side run as one tile: a 512 px restored face in 400 px tiles with their
# context is 1.34x its pixels.
CPU_WHOLE_SIDE = 512
MIN_TILE = 64
# Balanced tiles (outside fp32) may be this much larger than the tile asked for, where that saves a tile.
BALANCED_SLACK = 0.1
LANCZOS_SUPPORT = 4  # px of source on either side that cv2's INTER_LANCZOS4 reads (an 8-tap kernel)
# Peak activation memory of Real-ESRGAN x2 per input pixel in fp32 and bf16, measured (bench/measured/README.md),
# stated per unit of scale^2 (an x4 RRDB runs its body at 4x the pixels of the x2 one).
BYTES_PER_PIXEL = {False: 2400 / 4, True: 1250 / 4}
GPU_MARGIN = 1.5  # cuDNN workspaces and allocator slack


def upscale_image(
    model: ImageModelDescriptor | None,
    image: np.ndarray,
    scale: float,
    *,
    tile: int = AUTO_TILE,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    on_progress: Progress | None = None,
    check_interrupt: Interrupt | None = None,
    balanced: bool | None = None,
    shown: PixelBox | None = None,
) -> np.ndarray:
    """Upscale ``(H, W, 3)`` RGB uint8 to exactly ``round(H*scale) x round(W*scale)``.

    With a spandrel ``ImageModelDescriptor`` the model runs at its own scale (tiles of ``tile`` px with 40 px of
    context, as the official RealESRGANer; ``tile=0``: ``auto_tile``; the tile halves on out-of-memory), then the
    result is resized with Lanczos when the model's scale differs. Without a model: bilinear resize.
    ``precision`` as in ``runtime.use_bf16``; ``auto`` also uses bf16 on CPUs that run it fast
    (``AUTO_NATIVE``). Models that spandrel does not mark bf16-safe always run in fp32.
    ``balanced``: tiles of equal size (``tile_spans``); None: balanced unless ``precision`` is fp32 (the official
    tile grid).
    ``shown``: the box (x0, y0, x1, y1) of the result that is used where only part of it is (a face pasted across
    the canvas's edge: ``canvas.shown_part``). Outside fp32 the model then runs over that part only, with its tile
    context, and the rest of the result is a Lanczos resize of ``image``; fp32 computes all of it (the official
    arithmetic).
    """
    size = target_size(image.shape[:2], scale)
    if model is None:
        return resize(image, size, cv2.INTER_LINEAR)
    device = torch.device(device)
    bf16 = use_bf16(device, precision, auto_on=AUTO_NATIVE)
    if bf16 and not model.supports_bfloat16:
        if precision == "bf16":
            log.warning("%s does not support bf16 (spandrel); running it in fp32", model.architecture.name)
        bf16 = False
    official = precision == "fp32"  # the official arithmetic: its tile size and grid too
    if tile <= 0:
        tile = auto_tile(device, image.shape[:2], int(model.scale), bf16, official=official)
    balanced = not official if balanced is None else balanced
    region = None if official or shown is None else model_region(shown, image.shape[:2], size, int(model.scale))
    out = _run_model(model, image, tile, device, bf16, memory_format(device, precision), on_progress, check_interrupt,
                     balanced, region)
    return resize(out, size, cv2.INTER_LANCZOS4)


def model_region(shown: PixelBox, image_size: tuple[int, int], size: tuple[int, int],
                 model_scale: int) -> PixelBox | None:
    """The box of the model's input whose upscaled pixels make the ``shown`` box of a result of ``size`` (the
    model's output resized with Lanczos, 4 px of support, where the model's scale is not the result's); None when
    that is the whole input."""
    h, w = image_size
    x0, y0, x1, y1 = shown
    support = 0 if (h * model_scale, w * model_scale) == size else LANCZOS_SUPPORT

    def on_input(at: int, length: int, result_length: int, side: int) -> float:  # a result px -> input px
        return (at * length * model_scale / result_length + side * support) / model_scale

    box = (max(0, math.floor(on_input(x0, w, size[1], -1)) - 1), max(0, math.floor(on_input(y0, h, size[0], -1)) - 1),
           min(w, math.ceil(on_input(x1, w, size[1], 1)) + 1), min(h, math.ceil(on_input(y1, h, size[0], 1)) + 1))
    return None if box == (0, 0, w, h) else box


def auto_tile(device: torch.device | str, size: tuple[int, int], scale: int, bf16: bool, *,
              official: bool = False) -> int:
    """Tile side for ``tile=0``: on CUDA the largest square tile (with its context) whose activations fit in 80 % of
    the free memory, the whole image when it fits (fewer overlaps: 400 px tiles compute ~1.3-1.4x the pixels).
    On the CPU: ``DEFAULT_TILE`` where ``official`` (fp32: the official tiles); in bf16 on AMX ``DEFAULT_TILE``, or
    the whole image up to ``CPU_WHOLE_SIDE`` (restored faces); else (fp32 channels_last, bf16 without AMX)
    ``CPU_LARGE_TILE``."""
    free = free_cuda_memory(device)
    if free is None:
        if official:
            return DEFAULT_TILE
        if not (bf16 and cpu_has_amx()):
            return CPU_LARGE_TILE
        return max(size) if max(size) <= CPU_WHOLE_SIDE else DEFAULT_TILE
    per_pixel = BYTES_PER_PIXEL[bf16] * max(scale, 1) ** 2 * GPU_MARGIN
    side = int(math.sqrt(0.8 * free / per_pixel)) - 2 * TILE_PAD
    return min(max(size), max(MIN_TILE, side // 8 * 8))


def _forward(model: ImageModelDescriptor) -> Callable[[torch.Tensor], torch.Tensor]:
    """How a tile runs. Real-ESRGAN's RRDB network directly, as the official RealESRGANer: it pads odd sizes itself,
    to the official multiple of 2 (the descriptor would pad x2 models to a multiple of 4, changing edge pixels).
    Every other architecture through its spandrel descriptor, as ComfyUI core does: padding to the model's size
    requirements and its own call (e.g. DRUNet's noise-level channel)."""
    if model.architecture.id == "ESRGAN":
        return model.model
    return model


def _run_model(model: ImageModelDescriptor, image: np.ndarray, tile: int, device: torch.device, bf16: bool,
               fmt: torch.memory_format, on_progress: Progress | None, check_interrupt: Interrupt | None,
               balanced: bool = False, region: PixelBox | None = None) -> np.ndarray:
    """The model over ``image`` (or its ``region``) in tiles of ``tile`` px (0: whole), the tile halving on
    out-of-memory."""
    model.model.to(device).eval().to(memory_format=fmt)
    net = _forward(model)
    h, w = image.shape[:2]

    def run(side: int) -> np.ndarray:
        return _tiled(net, image, int(model.scale), side, device, bf16, fmt, on_progress, check_interrupt, balanced,
                      region)

    def too_large(side: int) -> str:
        return f"out of memory upscaling a {w}x{h} image even with {side}px tiles; free GPU memory or run on the CPU"

    return retry_smaller(run, tile if tile > 0 else max(h, w), smallest=MIN_TILE, what="upscaling",
                         unit="tile size (px)", too_large=too_large)


def tile_spans(length: int, tile: int, balanced: bool) -> list[tuple[int, int]]:
    """The (start, stop) of each tile along a side of ``length`` px: the official grid (``tile`` px tiles, the last
    one whatever is left), or where ``balanced`` the fewest tiles of equal size up to ``BALANCED_SLACK`` larger than
    ``tile``. Every tile runs with its context, so a tile fewer saves its context: 1204 px in 400 px tiles is
    400 + 400 + 400 + 4 px (1444 px computed), balanced 402 + 401 + 401 (1364 px)."""
    if not balanced:
        return [(i * tile, min((i + 1) * tile, length)) for i in range(max(1, math.ceil(length / tile)))]
    count = max(1, math.ceil(length / (tile * (1 + BALANCED_SLACK))))
    bounds = [round(i * length / count) for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


@torch.inference_mode()
def _tiled(net, image, scale, tile, device, bf16, fmt, on_progress, check_interrupt, balanced=False,
           region: PixelBox | None = None) -> np.ndarray:
    """RealESRGANer.tile_process: each tile runs with TILE_PAD px of context, only its centre is kept (the official
    grid, or equal tiles where ``balanced``: ``tile_spans``).

    ``image`` (H, W, C) uint8 -> (H*scale, W*scale, C) uint8. Memory stays bounded for large images: tiles are
    converted to float one at a time and written into a uint8 result (not a float32 copy of the whole output).
    ``region`` (x0, y0, x1, y1): only the tiles over it run (its context still read from the whole image); the
    rest of the result is ``image`` resized with Lanczos, so that what reads the whole result (ParseNet, on a
    face-upsampled face) sees a face there.
    """
    h, w, c = image.shape
    left, top, right, bottom = region or (0, 0, w, h)
    if tile <= 0 or (bottom - top <= tile and right - left <= tile):
        tile = max(bottom - top, right - left)
    rows = [(a + top, b + top) for a, b in tile_spans(bottom - top, tile, balanced)]
    columns = [(a + left, b + left) for a, b in tile_spans(right - left, tile, balanced)]
    if region is None:
        out = np.empty((h * scale, w * scale, c), np.uint8)
    else:
        out = resize(image, (h * scale, w * scale), cv2.INTER_LANCZOS4)
    total = len(rows) * len(columns)
    for ty, (y0, y1) in enumerate(rows):
        for tx, (x0, x1) in enumerate(columns):
            if check_interrupt is not None:
                check_interrupt()
            px0, py0 = max(x0 - TILE_PAD, 0), max(y0 - TILE_PAD, 0)
            px1, py1 = min(x1 + TILE_PAD, w), min(y1 + TILE_PAD, h)
            part = torch.from_numpy(image[py0:py1, px0:px1].astype(np.float32) / 255.0)
            part = part.permute(2, 0, 1).unsqueeze(0).to(device).contiguous(memory_format=fmt)
            with bf16_autocast(device, bf16):
                result = net(part)
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            result = result[:, :, oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale]
            result = (result.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
            out[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = result.squeeze(0).permute(1, 2, 0).cpu().numpy()
            if on_progress is not None:
                on_progress(ty * len(columns) + tx + 1, total)
    return out
