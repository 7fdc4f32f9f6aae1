"""Best-settings advisor node: recommended fidelity, background enhance, face upsample and upscale for an image."""

from __future__ import annotations

from ..codeformer.advisor import Advice, advise_faces, advise_image, face_upsample_mode
from ..codeformer.clip_advisor import clip_advice, sample_indices
from ..codeformer.errors import InputError
from ..codeformer.types import FACE_UPSAMPLE_ABOVE
from .convert import image_to_numpy
from .device import load_on_device
from .face_nodes import VIDEO_FRAMES_INPUT
from .restore_nodes import FACE_UPSAMPLE_INPUT, SOURCE_INPUT

# The output type is the very list of the restore nodes' face_upsample combo: ComfyUI accepts a link from a list
# output to a combo input when the two lists are equal (the frontend shows both as COMBO).
FACE_UPSAMPLE_OPTIONS = FACE_UPSAMPLE_INPUT[0]
ADVISOR_SOURCE_INPUT = (SOURCE_INPUT[0], {
    **SOURCE_INPUT[1],
    "tooltip": "Where the image comes from: ai_generated (fidelity 0.5 unless a close-up) or photo (fidelity 0.7 "
               "and face upsample on, or real skin looks over-smoothed). Close-ups get fidelity 1.0 either way."})


def check_faces_match(faces, image) -> None:
    """Raise when ``faces`` were not found in ``image`` (another batch size or picture size)."""
    sizes = tuple((int(image.shape[1]), int(image.shape[2])) for _ in range(image.shape[0]))
    if tuple(faces.source_sizes) != sizes:
        found = ", ".join(f"{w}x{h}" for h, w in faces.source_sizes) or "no image"
        raise InputError(f"faces were found in {len(faces.source_sizes)} image(s) ({found}) but image is "
                         f"{image.shape[0]} image(s) of {image.shape[2]}x{image.shape[1]}; connect the same image "
                         "to CodeFormer Face Detect and to CodeFormer Best Settings")


class CodeFormerBestSettings:
    DESCRIPTION = ("Recommends fidelity, background enhance, face upsample and upscale for an image from the kind of "
                   "shot (close-up, medium, wide) and its source, following docs/best_settings.md. "
                   "Connect its outputs to the same inputs of CodeFormer Face Restore.")
    CATEGORY = "codeformer/restore"
    FUNCTION = "advise"
    RETURN_TYPES = ("FLOAT", "BOOLEAN", FACE_UPSAMPLE_OPTIONS, "FLOAT", "STRING")
    RETURN_NAMES = ("fidelity", "background_enhance", "face_upsample", "upscale", "reason")
    OUTPUT_TOOLTIPS = (
        "CodeFormer fidelity: 1.0 for close-ups, else 0.7 for photos and 0.5 for AI images.",
        "On unless the image is a close-up (little, usually blurred, background).",
        f"always for photos; for AI images auto when the largest face is pasted larger than {FACE_UPSAMPLE_ABOVE} "
        "px, else off.",
        "Output scale: 2, or 1 when the image's long side is already 2048 px or more.",
        "One line saying which shot was recognised and why each setting was chosen (connect to Preview Any).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The image to restore. For a batch the advice is for the first image "
                                               "(the restore node applies one set of settings to the whole batch)."}),
                "source": ADVISOR_SOURCE_INPUT,
            },
            "optional": {
                "detector": ("FACE_DETECTOR", {
                    "tooltip": "From CodeFormer Face Detector Loader: finds the faces of the first image with the "
                               "official settings. Connect this or faces."}),
                "faces": ("FACES", {
                    "tooltip": "faces output of CodeFormer Face Detect run on the same image (your detection "
                               "settings); used instead of detector when both are connected."}),
                "video_frames": (VIDEO_FRAMES_INPUT[0], {
                    **VIDEO_FRAMES_INPUT[1],
                    "tooltip": "The batch is consecutive video frames: advise for the clip (frames sampled across "
                               "it; a fidelity steady enough for video, restore with video_frames on)."}),
            },
        }

    def advise(self, image, source, detector=None, faces=None, video_frames=None):
        if faces is None and detector is None:
            raise InputError("CodeFormer Best Settings needs faces to measure: connect the detector input (from "
                             "CodeFormer Face Detector Loader) or the faces input (faces output of CodeFormer Face "
                             "Detect)")
        if faces is not None:
            check_faces_match(faces, image)
        indices = sample_indices(image.shape[0]) if video_frames else [0]
        per_image = [self._advice(image, index, source, detector, faces) for index in indices]
        if video_frames:
            advice = clip_advice(per_image).advice
            reason = f"advice for a clip of {image.shape[0]} frame(s): {advice.reason}"
        else:
            advice = per_image[0]
            reason = advice.reason if image.shape[0] == 1 else \
                f"advice for image 1 of {image.shape[0]}: {advice.reason}"
        return (advice.fidelity, advice.background_enhance, face_upsample_mode(advice, source),
                float(advice.upscale), reason)

    @staticmethod
    def _advice(image, index: int, source: str, detector, faces) -> Advice:
        """Advice on image ``index`` of the batch: from the connected faces, else detected."""
        if faces is not None:
            return advise_faces(faces, index, source)
        device = load_on_device(detector.module)
        return advise_image(image_to_numpy(image[index : index + 1], "image")[0], detector, source, device=device)


NODES = {
    "CodeFormerBestSettings": (CodeFormerBestSettings, "CodeFormer Best Settings"),
}
