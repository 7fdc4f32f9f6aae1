"""Face detection node, and the detection inputs it shares with the one-node restore."""

from __future__ import annotations

from ..codeformer.detect import CONFIDENCE, MIN_EYE_DISTANCE
from ..codeformer.faces import DetectOptions, find_faces
from ..codeformer.temporal import find_clip_faces
from .convert import box_masks, image_to_numpy, numpy_to_image, placeholder_faces
from .device import check_interrupt, load_on_device

DETECTION_INPUTS = {
    "confidence": ("FLOAT", {
        "default": CONFIDENCE, "min": 0.05, "max": 1.0, "step": 0.01,
        "tooltip": "Minimum RetinaFace score for a face (official 0.8). Lower finds more, and more false, faces."}),
    "min_eye_distance": ("FLOAT", {
        "default": MIN_EYE_DISTANCE, "min": 0.0, "max": 1024.0, "step": 1.0,
        "tooltip": "Faces whose eyes are closer than this many pixels (in the image enlarged to a 512-px short side) "
                   "are skipped as too small."}),
    "selection": ("STRING", {
        "default": "all", "multiline": False,
        "tooltip": "Which faces to keep per image: all, largest, center, or face indices such as 0,2 "
                   "(indices follow detection order, highest score first). With video_frames on, faces are chosen "
                   "per track by their size, place and score over about 11 frames, so the choice does not switch "
                   "between two similar faces; a frame without an asked index keeps the faces it has."}),
    "max_faces": ("INT", {
        "default": 0, "min": 0, "max": 1024,
        "tooltip": "Keep at most this many faces per image after the selection (0 = no limit). With video_frames "
                   "on, the tracks with the best score over about 11 frames."}),
}

VIDEO_FRAMES_INPUT = ("BOOLEAN", {
    "default": False,
    "tooltip": "The batch is consecutive video frames (e.g. from Get Video Components): faces are tracked across "
               "frames, a face missed for a few frames is filled in and landmarks are smoothed over time, so "
               "restored faces do not flicker or swim. Leave off for separate images (a batch of txt2img results "
               "is not a clip)."})


def detect_options(confidence: float, min_eye_distance: float, selection: str, max_faces: int) -> DetectOptions:
    """The library's DetectOptions from the node inputs."""
    return DetectOptions(confidence=confidence, min_eye_distance=min_eye_distance, selection=selection,
                         max_faces=max_faces)


class CodeFormerFaceDetect:
    DESCRIPTION = ("Finds faces with RetinaFace and aligns each to a 512x512 crop, as the official CodeFormer does. "
                   "When no face is found, crops is one black 512x512 image and count is 0.")
    CATEGORY = "codeformer/faces"
    FUNCTION = "detect"
    RETURN_TYPES = ("FACES", "IMAGE", "MASK", "INT")
    RETURN_NAMES = ("faces", "crops", "face_mask", "count")
    OUTPUT_TOOLTIPS = (
        "Where each face is and how its crop maps back: connect to CodeFormer Paste Faces Back (and Restore Faces).",
        "Aligned 512x512 face crops [N, 512, 512, 3], in image then detection order; one black image when N = 0.",
        "Per source image: 1 inside each detected face box, 0 elsewhere.",
        "Number of faces found (0 when none).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Images to find faces in (a batch is fine)."}),
                "detector": ("FACE_DETECTOR", {"tooltip": "From CodeFormer Face Detector Loader."}),
                **DETECTION_INPUTS,
            },
            "optional": {"video_frames": VIDEO_FRAMES_INPUT},
        }

    def detect(self, image, detector, confidence, min_eye_distance, selection, max_faces, video_frames=None):
        options = detect_options(confidence, min_eye_distance, selection, max_faces)
        device = load_on_device(detector.module)
        find = find_clip_faces if video_frames else find_faces
        found = find(detector, image_to_numpy(image, "image"), options, device=device, check_interrupt=check_interrupt)
        crops = numpy_to_image(found.crops) if len(found.faces) else placeholder_faces()
        return (found.faces, crops, box_masks(found.faces), len(found.faces))


NODES = {
    "CodeFormerFaceDetect": (CodeFormerFaceDetect, "CodeFormer Face Detect"),
}
