"""Face detection with facexlib's RetinaFace, following the official CodeFormer settings.

Official behaviour (facelib ``get_face_landmarks_5(resize=640)``): the working image is resized so that its
short side is 640 (INTER_AREA when shrinking, bilinear when enlarging), RetinaFace runs at confidence 0.8 and
NMS 0.4, and boxes/landmarks are scaled back. Deviation: the long side of the detection input is capped at
``DETECT_MAX_SIDE`` (5120 = 640 x 8), so images up to 8:1 are detected as officially while a long strip no
longer makes a giant network input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from facexlib.detection.retinaface_utils import PriorBox, decode, decode_landm, py_cpu_nms

from .errors import InputError
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

    box: tuple[float, float, float, float]
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
    h, w = image.shape[:2]
    scale = min(DETECT_SHORT_SIDE / min(h, w), DETECT_MAX_SIDE / max(h, w))
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, size, interpolation=interp)
    rows = _retinaface(detector, small[:, :, ::-1], confidence, nms_threshold, device)
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
    net = detector.module.to(device)
    x = torch.from_numpy(np.ascontiguousarray(bgr, dtype=np.float32).transpose(2, 0, 1)).unsqueeze(0).to(device)
    x = x - torch.tensor(BGR_MEAN, device=device).view(1, 3, 1, 1)
    height, width = x.shape[2:]
    loc, conf, landmarks = net(x)
    cfg: dict = net.cfg  # type: ignore[assignment]  # facexlib RetinaFace's configuration dict
    priors = PriorBox(cfg, image_size=(height, width)).forward().to(device)
    variance = cfg["variance"]
    scale4 = torch.tensor([width, height] * 2, dtype=torch.float32, device=device)
    scale10 = torch.tensor([width, height] * 5, dtype=torch.float32, device=device)
    boxes = (decode(loc.squeeze(0), priors, variance) * scale4).cpu().numpy()
    points = (decode_landm(landmarks.squeeze(0), priors, variance) * scale10).cpu().numpy()
    scores = conf.squeeze(0).cpu().numpy()[:, 1]

    keep = np.where(scores > confidence)[0]
    boxes, points, scores = boxes[keep], points[keep], scores[keep]
    order = scores.argsort()[::-1][:PRE_NMS_TOP_K]
    boxes, points, scores = boxes[order], points[order], scores[order]
    dets = np.hstack((boxes, scores[:, None])).astype(np.float32, copy=False)
    if len(dets) == 0:
        return np.zeros((0, 15), np.float32)
    kept = py_cpu_nms(dets, nms_threshold)
    return np.concatenate((dets[kept], points[kept]), axis=1)


def select_faces(detections: Sequence[Detection], image_size: tuple[int, int], selection: str = "all",
                 max_faces: int = 0) -> list[Detection]:
    """Apply ``selection`` (all | largest | center | index list like ``0,2``), then keep at most ``max_faces``.

    ``max_faces=0`` keeps all faces up to ``FACE_LIMIT`` (the most confident ones), which guards against a
    detector that floods boxes.
    """
    dets = list(detections)
    sel = selection.strip().lower()
    if dets and sel == "largest":
        dets = [max(dets, key=lambda d: _clipped_area(d.box, image_size))]
    elif dets and sel == "center":
        h, w = image_size
        centre = np.array([w / 2, h / 2])
        dets = [min(dets, key=lambda d: np.linalg.norm(_centre(d.box) - centre))]
    elif sel not in ("all", "largest", "center"):
        indices = parse_indices(selection)
        bad = [i for i in indices if i >= len(dets)]
        if bad:
            raise FaceSelectionError(
                f"face selection '{selection}' asks for face index {bad[0]}, but only {len(dets)} face(s) were found "
                f"(indices start at 0); use 'all' or indices below {len(dets)}"
            )
        dets = [dets[i] for i in indices]
    if max_faces > 0:
        dets = dets[:max_faces]
    elif len(dets) > FACE_LIMIT:
        log.warning("%d faces found in one image; keeping the %d most confident (a broken detector file? "
                    "set max_faces to choose another limit)", len(dets), FACE_LIMIT)
        dets = dets[:FACE_LIMIT]
    return dets


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


def _centre(box: tuple[float, float, float, float]) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _clipped_area(box: tuple[float, float, float, float], image_size: tuple[int, int]) -> float:
    h, w = image_size
    left, right = np.clip([box[0], box[2]], 0, w)
    top, bottom = np.clip([box[1], box[3]], 0, h)
    return float((right - left) * (bottom - top))
