"""Face detection with facexlib's RetinaFace, following the official CodeFormer settings.

Official behaviour (facelib ``get_face_landmarks_5(resize=640)``): the working image is resized so that its
short side is 640 (INTER_AREA when shrinking, bilinear when enlarging), RetinaFace runs at confidence 0.8 and
NMS 0.4, and boxes/landmarks are scaled back. Deviation: the long side of the detection input is capped at
``DETECT_MAX_SIDE`` (5120 = 640 x 8), so images up to 8:1 are detected as officially while a long strip no
longer makes a giant network input.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torchvision
from facexlib.detection.retinaface_utils import PriorBox, decode, decode_landm

from .errors import InputError
from .geometry import Box
from .types import FaceDetector

log = logging.getLogger(__name__)

DETECT_SHORT_SIDE = 640
DETECT_MAX_SIDE = 5120
CONFIDENCE = 0.8
NMS_THRESHOLD = 0.4
# The official filter measures about half the eye distance against 5 px (an index bug); measuring the real
# distance against 10 px keeps the same faces in practice.
MIN_EYE_DISTANCE = 10.0
# Boxes kept before NMS: real detectors give a few dozen; random or broken weights can give thousands.
PRE_NMS_TOP_K = 5000
BGR_MEAN = (104.0, 117.0, 123.0)
# Faces kept per image when max_faces is 0: real crowds stay far below (crowd.jpg: 85); a broken detector
# can return thousands, each costing a CodeFormer pass.
FACE_LIMIT = 256

SELECTIONS = ("all", "largest", "center")


class FaceSelectionError(InputError):
    """The face selection string is invalid or names faces that do not exist."""


@dataclass(frozen=True)
class Detection:
    """One RetinaFace detection in working-image pixels."""

    box: Box
    score: float
    landmarks: np.ndarray = field(repr=False)  # (5, 2) float32


def detect_faces(
    detector: FaceDetector,
    image: np.ndarray,
    *,
    confidence: float = CONFIDENCE,
    nms_threshold: float = NMS_THRESHOLD,
    min_eye_distance: float = MIN_EYE_DISTANCE,
    device: torch.device | str = "cpu",
) -> list[Detection]:
    """Detect faces in a working image ``(H, W, 3)`` RGB uint8; results sorted by score, highest first."""
    scale, (width, height) = detection_size(image.shape[:2])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, (width, height), interpolation=interp)
    rows = _retinaface(detector, small[:, :, ::-1], confidence, nms_threshold, device)
    return to_detections(rows, scale, min_eye_distance)


def detection_size(image_size: tuple[int, int]) -> tuple[float, tuple[int, int]]:
    """The factor and the (width, height) of the network input for an image of (height, width) ``image_size``."""
    h, w = image_size
    scale = min(DETECT_SHORT_SIDE / min(h, w), DETECT_MAX_SIDE / max(h, w))
    return scale, (max(1, int(w * scale)), max(1, int(h * scale)))


def to_detections(rows: np.ndarray, scale: float, min_eye_distance: float) -> list[Detection]:
    """Rows of ``retinaface_rows`` (network-input pixels) as detections in the image ``scale`` was taken from."""
    rows = rows / scale  # float32 stays float32, as in the official code
    found = []
    for row in rows:
        landmarks = row[5:15].reshape(5, 2)
        if np.linalg.norm(landmarks[0] - landmarks[1]) < min_eye_distance:
            continue
        box = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
        found.append(Detection(box=box, score=float(row[4] * scale), landmarks=landmarks))
    return found


@torch.inference_mode()
def _retinaface(
    detector: FaceDetector, bgr: np.ndarray, confidence: float, nms_threshold: float, device: torch.device | str
) -> np.ndarray:
    """facexlib ``RetinaFace.detect_faces`` at the original size, device-safe: rows of box(4), score, landmarks(10)."""
    x = torch.from_numpy(np.ascontiguousarray(bgr, dtype=np.float32).transpose(2, 0, 1)).unsqueeze(0).to(device)
    return retinaface_rows(detector, x, confidence, nms_threshold)[0].cpu().numpy()


def retinaface_rows(detector: FaceDetector, bgr: torch.Tensor, confidence: float,
                    nms_threshold: float) -> list[torch.Tensor]:
    """RetinaFace on ``[B, 3, h, w]`` float BGR in 0..255 (one network call): per image, float32 rows of box(4),
    score, landmarks(10) in input pixels, kept by confidence and NMS, highest score first; on ``bgr``'s device."""
    device = bgr.device
    net = detector.module.to(device)
    loc, conf, landmarks = net(bgr - torch.tensor(BGR_MEAN, device=device).view(1, 3, 1, 1))
    batch, _, height, width = bgr.shape
    cfg: dict = net.cfg  # type: ignore[assignment]  # facexlib RetinaFace's configuration dict
    priors = _priors(tuple(map(tuple, cfg["min_sizes"])), tuple(cfg["steps"]), cfg["clip"], height, width)
    priors = priors.to(device).repeat(batch, 1)  # facexlib's decode takes [N, 4]: the batch goes flat
    variance = cfg["variance"]
    scale4 = torch.tensor([width, height] * 2, dtype=torch.float32, device=device)
    scale10 = torch.tensor([width, height] * 5, dtype=torch.float32, device=device)
    boxes = (decode(loc.reshape(-1, 4), priors, variance) * scale4).view(batch, -1, 4)
    points = (decode_landm(landmarks.reshape(-1, 10), priors, variance) * scale10).view(batch, -1, 10)
    scores = conf[:, :, 1]
    return [_select(*found, confidence, nms_threshold) for found in zip(boxes, points, scores, strict=True)]


@functools.lru_cache(maxsize=8)
def _priors(min_sizes: tuple, steps: tuple, clip: bool, height: int, width: int) -> torch.Tensor:
    """facexlib's prior boxes for one input size, computed once: its Python loop takes tens of ms at 640 px,
    and consecutive video frames share their size."""
    cfg = {"min_sizes": [list(sizes) for sizes in min_sizes], "steps": list(steps), "clip": clip}
    return PriorBox(cfg, image_size=(height, width)).forward()


def _select(boxes: torch.Tensor, points: torch.Tensor, scores: torch.Tensor, confidence: float,
            nms_threshold: float) -> torch.Tensor:
    """facexlib's filter on one image: score above ``confidence``, the ``PRE_NMS_TOP_K`` best, NMS (facexlib's
    ``py_cpu_nms`` is ``torchvision.ops.nms`` on the float32 boxes, so the same call here, on their device)."""
    keep = torch.nonzero(scores > confidence).squeeze(1)
    order = keep[scores[keep].sort(descending=True, stable=True).indices[:PRE_NMS_TOP_K]]
    boxes, points, scores = boxes[order], points[order], scores[order]
    kept = torchvision.ops.nms(boxes, scores, nms_threshold)
    return torch.cat((boxes[kept], scores[kept, None], points[kept]), dim=1)


def select_faces(detections: Sequence[Detection], image_size: tuple[int, int], selection: str = "all",
                 max_faces: int = 0) -> list[Detection]:
    """Apply ``selection`` (all | largest | center | index list like ``0,2``), then keep at most ``max_faces``.

    ``max_faces=0`` keeps all faces up to ``FACE_LIMIT`` (the most confident ones), which guards against a
    detector that floods boxes.
    """
    dets = list(detections)
    kept = choose_faces(len(dets), selection, max_faces, area=lambda i: visible_area(dets[i].box, image_size),
                        distance=lambda i: centre_distance(dets[i].box, image_size))
    return [dets[i] for i in kept]


def choose_faces(count: int, selection: str = "all", max_faces: int = 0, *, area: Callable[[int], float],
                 distance: Callable[[int], float], missing_ok: bool = False) -> list[int]:
    """``select_faces`` on ``count`` faces in rank order (the most confident first), given by their visible area
    and distance to the image's centre (asked for only by ``largest`` and ``center``): the indices of those kept.

    An index list naming a face that is not there raises ``FaceSelectionError``; with ``missing_ok`` (a video
    frame, where a face may be out of the picture for a while) it keeps the faces that are there.
    """
    ranks = list(range(count))
    sel = selection.strip().lower()
    if ranks and sel == "largest":
        ranks = [max(ranks, key=area)]
    elif ranks and sel == "center":
        ranks = [min(ranks, key=distance)]
    elif sel not in SELECTIONS:
        indices = parse_indices(selection)
        bad = [i for i in indices if i >= count]
        if bad and not missing_ok:
            raise FaceSelectionError(
                f"face selection '{selection}' asks for face index {bad[0]}, but only {count} face(s) were found "
                f"(indices start at 0); use 'all' or indices below {count}"
            )
        ranks = [i for i in indices if i < count]
    if max_faces > 0:
        ranks = ranks[:max_faces]
    elif len(ranks) > FACE_LIMIT:
        log.warning("%d faces found in one image; keeping the %d most confident (a broken detector file? "
                    "set max_faces to choose another limit)", len(ranks), FACE_LIMIT)
        ranks = ranks[:FACE_LIMIT]
    return ranks


def check_selection(selection: str) -> None:
    """Raise ``FaceSelectionError`` unless ``selection`` is a selection keyword or a well-formed index list."""
    if selection.strip().lower() not in SELECTIONS:
        parse_indices(selection)


def parse_indices(selection: str) -> list[int]:
    """Parse an index list like ``0,2`` (whitespace allowed) into integers."""
    try:
        indices = [int(part) for part in selection.replace(" ", "").split(",") if part != ""]
    except ValueError:
        indices = []
    if not indices or any(i < 0 for i in indices):
        raise FaceSelectionError(
            f"face selection '{selection}' is not understood; use one of {', '.join(SELECTIONS)} "
            "or a comma-separated list of face indices such as 0,2"
        )
    return indices


def centre_distance(box: Box, image_size: tuple[int, int]) -> float:
    """Distance of the box's centre from the image's centre (``selection='center'``), in pixels."""
    h, w = image_size
    return float(np.hypot((box[0] + box[2]) / 2 - w / 2, (box[1] + box[3]) / 2 - h / 2))


def visible_area(box: Box, image_size: tuple[int, int]) -> float:
    """Area of the part of the box inside the image (``selection='largest'``), in square pixels."""
    h, w = image_size
    left, right = np.clip([box[0], box[2]], 0, w)
    top, bottom = np.clip([box[1], box[3]], 0, h)
    return float((right - left) * (bottom - top))
