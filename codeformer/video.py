"""Video files for the CLI: frames read one at a time, restored frames written back with the clip's timing and sound.

``probe_video`` says what a clip holds, ``read_frames`` streams its frames (RGB uint8, upright), and ``VideoWriter``
writes restored frames as H.264. The choices:

* **PyAV** (FFmpeg's libraries in-process) rather than OpenCV's ``VideoCapture``/``VideoWriter`` or an ``ffmpeg``
  subprocess: OpenCV drops the audio, the timestamps (variable frame rate clips come out at the wrong speed) and the
  codec choice; a subprocess needs an ``ffmpeg`` on the PATH and pipes to manage. PyAV gives frames with their
  timestamps, copies audio packets untouched and ships its own FFmpeg (ComfyUI itself depends on it).
* **Streaming**: frames are decoded and encoded one at a time; a clip never sits in memory whole.
* **Pad, not crop**: H.264 yuv420p needs even sides. Restored frames keep the input's size (or its upscale), so an odd
  side gets one replicated row/column; cropping would silently cut a pixel of the picture. ``VideoWriter.notes``
  says so, for the CLI to print.
* **Copy the audio**: remuxing the packets keeps the sound bit for bit (re-encoding loses quality and may shift it);
  only a codec the output container cannot hold (PCM from .avi/.mov into .mp4, Vorbis into .mp4) is re-encoded to
  AAC, with a note.
* **Timestamps kept**: each frame is written at its input timestamp in the input's time base, so variable frame rate
  clips (phones) stay in sync with their audio; the frame count and average rate stay the same.
* **Encoder**: libx264 CRF 17, preset medium, yuv420p (plays everywhere), BT.709 conversion tagged in the stream.
* **Rotation**: a clip whose display matrix says "turn by 90/180/270 degrees" (phones) is read upright, as players
  show it, and written upright without the flag; mirror flags and odd angles are not handled (read as stored).
* **Damage**: a file FFmpeg cannot open is one ``VideoReadError`` line; a file cut short yields the frames before
  the cut, then raises (when its container declared a frame count, or FFmpeg reports the damage).
* **Atomic output**: the writer writes to a hidden ``.name.XXXX.part`` beside the output and renames it when the
  ``with`` block ends cleanly; an exception or Ctrl+C removes it, so no half file ever carries the final name.
"""

from __future__ import annotations

from .video_read import (
    VIDEO_SUFFIXES,
    VideoFrame,
    VideoInfo,
    VideoReadError,
    frame_timestamps,
    open_video,
    probe_video,
    read_frames,
)
from .video_write import ENCODER_OPTIONS, OUTPUT_FORMATS, VideoWriteError, VideoWriter

__all__ = ["ENCODER_OPTIONS", "OUTPUT_FORMATS", "VIDEO_SUFFIXES", "VideoFrame", "VideoInfo", "VideoReadError",
           "VideoWriteError", "VideoWriter", "frame_timestamps", "open_video", "probe_video", "read_frames"]
