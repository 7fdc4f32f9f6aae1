"""Image sizes along the pipeline, each from one rule: the working image, the upscaled output, the paste canvas.

Sizes are ``(height, width)``.
"""

from __future__ import annotations

# The official pipeline enlarges a source so that its short side is 512 (WORKING_SHORT_SIDE). For a very long
# strip this would be absurd (16x4096 -> 512x131072), so the enlargement also stops where the long side reaches
# MAX_WORKING_SIDE: images up to 8:1 (and every image whose short side is >= 512) are processed as officially.
WORKING_SHORT_SIDE = 512
MAX_WORKING_SIDE = 4096

Box = tuple[float, float, float, float]  # a face's box: left, top, right, bottom, in pixels
PixelBox = tuple[int, int, int, int]  # whole pixels x0, y0, x1, y1 of an image: columns x0..x1-1, rows y0..y1-1


def working_scale(source_size: tuple[int, int]) -> float:
    """Factor by which a source image is enlarged before detection (>= 1.0).

    Official: short side < 512 -> enlarged to 512, else 1.0. Deviation for long strips: the factor is capped so
    that the long side stays <= ``MAX_WORKING_SIDE`` (4096; never below 1.0), e.g. 16x4096 stays 16x4096 instead
    of becoming 512x131072. Images up to 8:1 and images with a short side >= 512 are unaffected.
    """
    short, long = min(source_size), max(source_size)
    if short >= WORKING_SHORT_SIDE:
        return 1.0
    f = WORKING_SHORT_SIDE / short
    if long * f > MAX_WORKING_SIDE:
        f = max(1.0, MAX_WORKING_SIDE / long)
    return f


def working_size(source_size: tuple[int, int]) -> tuple[int, int]:
    """Size of the image the pipeline works on: source x :func:`working_scale`."""
    h, w = source_size
    f = working_scale(source_size)
    if f == 1.0:
        return h, w
    # cv2.resize(img, (0, 0), fx=f, fy=f) rounds the size this way
    return int(round(h * f)), int(round(w * f))


def target_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """Size of an image of ``size`` scaled by ``scale``: ``round(H*s) x round(W*s)`` (the output's size)."""
    return max(1, int(round(size[0] * scale))), max(1, int(round(size[1] * scale)))


def canvas_size(source_size: tuple[int, int], output_size: tuple[int, int]) -> tuple[int, int]:
    """Size of the canvas the faces of a source are pasted on, for an output of ``output_size``.

    The canvas is the working image at the output's scale (official ``upsample_img``). When the working image is
    the source (short side >= 512) that is the output itself, at every scale: the background is used as it is.
    An enlarged source gets ``target_size(working size, output width / source width)`` (officially
    ``int(working * upscale)``: the same at integer scales), and the result is brought back to the output's size.
    """
    if working_scale(source_size) == 1.0:
        return output_size
    return target_size(working_size(source_size), output_size[1] / source_size[1])


__all__ = ["MAX_WORKING_SIDE", "WORKING_SHORT_SIDE", "Box", "PixelBox", "canvas_size", "target_size", "working_scale",
           "working_size"]
