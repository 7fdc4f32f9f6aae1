"""Which face a clip's selection picks, frame after frame: per frame (as a still image; how clips chose before
faces were chosen per track) against per track (``temporal.track_frames``: ``select_tracked``), on synthetic clips
of real photos with the real RetinaFace mobilenet0.25 detector.

    python bench/clip_selection.py [--frames 24] [--photos whole_01.jpg,...] [--json F]

Per photo, clip (``still``: fresh noise and JPEG each frame; ``shake``: a hand-held camera with a fast pan) and
selection: how often the chosen face changes between consecutive frames (``switches``; the photo's faces do not
move relative to each other, so every switch is a flip, none is wanted), and in how many frames the per-frame choice
stops the clip (an index the frame lacks raises ``FaceSelectionError``). A chosen face is named by the photo's
face nearest to it, its box mapped back through the clip's known affine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from clips import IMAGES, Clip, shake_clip, still_clip  # noqa: E402

from codeformer.detect import FaceSelectionError, detect_faces  # noqa: E402
from codeformer.faces import DetectOptions, detect_image  # noqa: E402
from codeformer.geometry import Box, working_scale  # noqa: E402
from codeformer.image import to_working  # noqa: E402
from codeformer.models import load_detector  # noqa: E402
from codeformer.temporal import track_frames  # noqa: E402
from codeformer.tracking import TrackOptions  # noqa: E402

DETECTOR = ROOT.parent / "shared" / "data" / "weights" / "retinaface_mobilenet0.25.pth"
SELECTIONS = {"largest": DetectOptions(selection="largest"), "center": DetectOptions(selection="center"),
              "max_faces 1": DetectOptions(max_faces=1), "index 1": DetectOptions(selection="1")}


def centre(box: Box) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def name_of(box: Box, affine: np.ndarray, faces: np.ndarray) -> int:
    """The photo's face nearest to ``box`` (frame pixels), mapped back to the photo by the inverse of ``affine``."""
    back = cv2.invertAffineTransform(affine)
    point = back[:, :2] @ centre(box) + back[:, 2]
    return int(np.argmin(np.linalg.norm(faces - point, axis=1)))


def switches(names: list[list[int]]) -> int:
    """Frames whose chosen faces differ from the frame before (frames without a choice are left out)."""
    chosen = [tuple(sorted(n)) for n in names if n]
    return sum(a != b for a, b in zip(chosen, chosen[1:], strict=False))


def per_frame(detector, clip: Clip, options: DetectOptions, faces: np.ndarray) -> tuple[list[list[int]], int]:
    """Each frame as a still image (``faces.detect_image``, what ``track_frames`` fed the tracker before)."""
    names, stopped = [], 0
    for frame, affine in zip(clip.frames, clip.transforms, strict=True):
        f = working_scale(frame.shape[:2])
        try:
            _, kept = detect_image(detector, frame, options)
        except FaceSelectionError:
            stopped += 1
            kept = []
        names.append([name_of((d.box[0] / f, d.box[1] / f, d.box[2] / f, d.box[3] / f), affine, faces) for d in kept])
    return names, stopped


def per_track(detector, clip: Clip, options: DetectOptions, faces: np.ndarray) -> list[list[int]]:
    return [[name_of(face.source_box, clip.transforms[frame.index], faces) for face in frame.found.faces.faces]
            for frame in track_frames(detector, clip.frames, options, TrackOptions())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--photos", default="whole_00.jpg,whole_01.jpg,whole_02.png,crowd.jpg")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    detector = load_detector(DETECTOR)
    rows = []
    for name in args.photos.split(","):
        photo = cv2.cvtColor(cv2.imread(str(IMAGES / name)), cv2.COLOR_BGR2RGB)
        f = working_scale(photo.shape[:2])
        faces = np.array([centre(d.box) / f for d in detect_faces(detector, to_working(photo))])
        for kind, make in (("still", still_clip), ("shake", shake_clip)):
            clip = make(photo, args.frames)
            for label, options in SELECTIONS.items():
                names, stopped = per_frame(detector, clip, options, faces)
                tracked = per_track(detector, clip, options, faces)
                row = {"photo": name, "faces": len(faces), "clip": kind, "selection": label,
                       "switches_per_frame": switches(names), "switches_per_track": switches(tracked),
                       "frames_stopping_per_frame": stopped, "frames_with_a_face_per_track": sum(map(bool, tracked))}
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"frames": args.frames, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
