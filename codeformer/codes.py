"""Temporal code smoothing for video: CodeFormer split at its codebook choice, the logits averaged along face tracks.

Restored frame by frame, video faces flicker partly because CodeFormer picks each of its 256 tokens (16x16 grid,
1024-entry codebook) by argmax of its transformer's logits, and near ties flip between frames. So the network runs in
two halves, ``encode`` (encoder + transformer: logits, the encoder features the generator fuses, lq_feat for AdaIN)
and ``decode`` (codebook lookup, AdaIN, generator with the frame's OWN features and fidelity), and in between
``restore_clip_faces`` replaces a face's logits by their mean over its track at the neighbouring frames.
``decode(net, e, e.logits, w)`` is spandrel's ``net(x, weight=w)[0]`` op for op (bit for bit in fp32): a window of 1
restores exactly as ``restore.restore_found_faces``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from .device_path import use_device_path
from .errors import InputError
from .face_blend import FaceChunk, blend_clip_faces
from .restore import (
    Fidelity,
    RunSettings,
    _as_batch,
    _rows,
    check_crops,
    face_weights,
    finish_face,
    network_input,
    network_output,
    placed_network,
    restore_faces,
    run_settings,
)
from .restorers import restorer_of
from .runtime import bf16_autocast, run_in_batches
from .types import FACE_SIZE, CodeFormerModel, Face, Faces, Interrupt

TOKENS = 256  # the 16x16 grid of codebook picks
K = TypeVar("K")  # restore_blended_chunks: what a caller tags its chunks with


@dataclass(frozen=True)
class Encoded:
    """The first half of CodeFormer for a batch of faces: what the second half needs, per face along dim 0."""

    logits: torch.Tensor  # [N, 256, 1024] the transformer's code logits
    lq_feat: torch.Tensor  # [N, 256, 16, 16] encoder output: AdaIN gives the looked-up codes its statistics
    # size ("32" .. "256") -> [N, C, size, size], fused into the generator at fidelity > 0; empty when not kept.
    # In fp32 they are ~47 MB per face (33.5 MB of them at 256 px), so only faces not yet decoded keep them.
    features: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.logits)

    def __getitem__(self, index: slice) -> Encoded:
        """Faces ``index`` (views: they share the batch's memory)."""
        return Encoded(self.logits[index], self.lq_feat[index], {k: v[index] for k, v in self.features.items()})

    @staticmethod
    def cat(parts: Sequence[Encoded]) -> Encoded:
        if len(parts) == 1:
            return parts[0]
        return Encoded(torch.cat([p.logits for p in parts]), torch.cat([p.lq_feat for p in parts]),
                       {k: torch.cat([p.features[k] for p in parts]) for k in parts[0].features})


def encode(net: Any, x: torch.Tensor, *, keep_features: bool = True) -> Encoded:
    """Encoder and transformer of spandrel's ``CodeFormer.forward`` on ``x`` ``[N, 3, 512, 512]`` in [-1, 1].
    ``keep_features=False`` drops the fused features (fidelity 0 never uses them)."""
    features = {}
    taps = [net.fuse_encoder_block[size] for size in net.connect_list]
    for i, block in enumerate(net.encoder.blocks):
        x = block(x)
        if keep_features and i in taps:
            features[str(x.shape[-1])] = x.clone()
    lq_feat = x
    pos_emb = net.position_emb.unsqueeze(1).repeat(1, x.shape[0], 1)
    query_emb = net.feat_emb(lq_feat.flatten(2).permute(2, 0, 1))  # BCHW -> (HW)BC
    for layer in net.ft_layers:
        query_emb = layer(query_emb, query_pos=pos_emb)
    logits = net.idx_pred_layer(query_emb).permute(1, 0, 2)  # (HW)BN -> B(HW)N
    return Encoded(logits, lq_feat, features)


def pick_codes(logits: torch.Tensor) -> torch.Tensor:
    """The codebook index of every token ``[N, 256, 1]``, as the network picks it (softmax, then top 1: the same
    ops, so that near ties resolve the same way as in ``forward``)."""
    return torch.topk(F.softmax(logits, dim=2), 1, dim=2)[1]


def decode(net: Any, encoded: Encoded, logits: torch.Tensor, weight: float) -> torch.Tensor:
    """The rest of spandrel's ``CodeFormer.forward`` with the given logits: the output image in [-1, 1]."""
    return decode_codes(net, encoded, pick_codes(logits), weight)


def decode_codes(net: Any, encoded: Encoded, codes: torch.Tensor, weight: float) -> torch.Tensor:
    """Codebook lookup of ``codes`` ``[N, 256, 1]``, AdaIN to ``encoded.lq_feat``, generator fusing the features."""
    if weight > 0 and not encoded.features:
        raise ValueError("fidelity > 0 needs the encoder features: encode with keep_features=True")
    adain = type(net).forward.__globals__["adaptive_instance_normalization"]  # the very function forward calls
    lq_feat = encoded.lq_feat
    quant_feat = net.quantize.get_codebook_feat(codes, shape=[lq_feat.shape[0], 16, 16, 256]).detach()
    x = adain(quant_feat, lq_feat)
    fuse_after = [net.fuse_generator_block[size] for size in net.connect_list]
    for i, block in enumerate(net.generator.blocks):
        x = block(x)
        if i in fuse_after and weight > 0:
            size = str(x.shape[-1])
            x = net.fuse_convs_dict[size](encoded.features[size].detach(), x, weight)
    return x


@dataclass(frozen=True)
class RestoredChunk:
    restored: np.ndarray  # [n, 512, 512, 3] uint8, in the order of the chunk's faces
    codes: np.ndarray | None  # [n, 256] int64: the codebook index each token used (after smoothing); None for
    # restorers without codes (GFPGAN, RestoreFormer)


@dataclass
class _Chunk:
    crops: np.ndarray
    restored: np.ndarray
    codes: np.ndarray
    left: int  # faces not decoded yet


@dataclass
class _Pending:  # a face encoded, waiting for the logits of the frames after it
    chunk: _Chunk
    row: int  # in its chunk
    face: Face
    weight: float
    encoded: Encoded


class _Stream:
    """The state between chunks: faces encoded but not decoded, and the logits of the last frames of each track."""

    def __init__(self, net: Any, settings: RunSettings, radius: int, fidelity: Fidelity,
                 check_interrupt: Interrupt | None) -> None:
        self.net, self.settings, self.radius, self.fidelity = net, settings, radius, fidelity
        self.check_interrupt = check_interrupt
        self.pending: list[_Pending] = []
        self.tracks: dict[int, list[tuple[int, torch.Tensor]]] = {}  # track -> (frame, logits [1, 256, 1024])
        self.chunks: list[_Chunk] = []  # not yielded yet, in order
        self.last_frame = -1  # every frame up to this one is complete (frames never span chunks)
        self.ended = False

    def add(self, faces: Sequence[Face], crops: np.ndarray) -> None:
        weights = face_weights(self.fidelity, faces)
        frames = [f.source_index for f in faces]
        if frames and min(frames) <= self.last_frame:
            raise InputError(f"frame {min(frames)} comes after frame {self.last_frame}: chunks must hold consecutive "
                             "frames in increasing order, each frame's faces in one chunk")
        n, s = len(faces), self.settings
        chunk = _Chunk(crops, np.empty((n, FACE_SIZE, FACE_SIZE, 3), np.uint8), np.empty((n, TOKENS), np.int64), n)
        self.chunks.append(chunk)
        if n == 0:
            return
        x_all = torch.from_numpy(crops).permute(0, 3, 1, 2).to(s.device)  # one copy to the device per chunk
        for w in sorted(set(weights)):

            @torch.inference_mode()
            def run(batch: list[int], w: float = w) -> None:
                x = network_input(x_all[_rows(batch)], s.fmt)
                with bf16_autocast(s.device, s.bf16):
                    encoded = encode(self.net, x, keep_features=w > 0)
                for j, i in enumerate(batch):
                    part = encoded[j : j + 1]
                    self.pending.append(_Pending(chunk, i, faces[i], w, part))
                    track = faces[i].track
                    if track is not None:
                        self.tracks.setdefault(track, []).append((frames[i], part.logits))

            run_in_batches(run, [i for i in range(n) if weights[i] == w], s.batch_size,
                           check_interrupt=self.check_interrupt, what="CodeFormer")
        self.last_frame = max(frames)

    def decode_ready(self) -> None:
        """Decode the faces whose window is complete (untracked faces at once), then forget what no face needs."""
        ready = [p for p in self.pending if self.ended or p.face.track is None
                 or p.face.source_index + self.radius <= self.last_frame]
        if ready:
            self._decode(ready)
        done = {id(p) for p in ready}
        self.pending = [p for p in self.pending if id(p) not in done]
        low = min((p.face.source_index for p in self.pending), default=self.last_frame + 1) - self.radius
        for track, entries in list(self.tracks.items()):
            self.tracks[track] = [(t, logits) for t, logits in entries if t >= low]
            if not self.tracks[track]:
                del self.tracks[track]

    def _smoothed(self, p: _Pending) -> torch.Tensor:
        """The mean logits of the face's track over the frames of its window that hold it (summed in frame order,
        in fp32, given back in the network's dtype: a lone face's logits stay as they are, bit for bit)."""
        if p.face.track is None or self.radius == 0:
            return p.encoded.logits
        t = p.face.source_index
        near = sorted((e for e in self.tracks[p.face.track] if abs(e[0] - t) <= self.radius), key=lambda e: e[0])
        return torch.stack([logits.float() for _, logits in near]).mean(0).to(p.encoded.logits.dtype)

    def _decode(self, ready: list[_Pending]) -> None:
        s, n = self.settings, len(ready)
        y_all = torch.empty((n, FACE_SIZE, FACE_SIZE, 3), dtype=torch.uint8, device=s.device)
        codes_all = torch.empty((n, TOKENS), dtype=torch.int64, device=s.device)
        for w in sorted({p.weight for p in ready}):

            @torch.inference_mode()
            def run(batch: list[int], w: float = w) -> None:
                with bf16_autocast(s.device, s.bf16):  # the picks too: softmax under autocast, as in forward
                    codes = pick_codes(torch.cat([self._smoothed(ready[i]) for i in batch]))
                    y = decode_codes(self.net, Encoded.cat([ready[i].encoded for i in batch]), codes, w)
                y_all[batch] = network_output(y)
                codes_all[batch] = codes[:, :, 0]

            run_in_batches(run, [i for i in range(n) if ready[i].weight == w], s.batch_size,
                           check_interrupt=self.check_interrupt, what="CodeFormer")
        y_host, codes_host = y_all.cpu().numpy(), codes_all.cpu().numpy()  # one copy back per step
        for p, y, codes in zip(ready, y_host, codes_host, strict=True):
            p.chunk.restored[p.row] = finish_face(y, p.chunk.crops[p.row], p.face.is_gray)
            p.chunk.codes[p.row] = codes
            p.chunk.left -= 1

    def finished(self) -> Iterator[RestoredChunk]:
        while self.chunks and self.chunks[0].left == 0:
            chunk = self.chunks.pop(0)
            yield RestoredChunk(chunk.restored, chunk.codes)


def check_window(window: int, what: str = "code window") -> None:
    """Raise InputError unless ``window`` (frames averaged: code logits, or restored faces) is odd: centred on its
    frame."""
    if window < 1 or window % 2 == 0:
        raise InputError(f"{what} must be an odd number of frames (1 = no smoothing), got {window}")


def restore_clip_faces(
    model: CodeFormerModel,
    chunks: Iterable[tuple[Sequence[Face], np.ndarray]],
    fidelity: Fidelity = 0.5,
    *,
    window: int = 3,
    device: torch.device | str = "cpu",
    batch_size: int | None = None,
    precision: str | None = None,
    check_interrupt: Interrupt | None = None,
) -> Iterator[RestoredChunk]:
    """Restore the faces of consecutive video frames, each face's code logits averaged over its track.

    ``chunks``: per chunk, the faces of some consecutive frames (``source_index`` = frame number, increasing across
    chunks; ``track`` = the face's track, None = not smoothed) and their aligned crops ``[n, 512, 512, 3]``.
    The logits of the face of track k at frame t become the mean of track k's logits at frames t-r..t+r
    (r = ``window // 2``) that hold it (uniform: a Gaussian of the same reach only acts as a shorter window,
    bench/codes_flicker.py); everything else is ``restore_found_faces``' (gray rule, fidelity per face,
    precision, batching), and ``window=1`` gives its result bit for bit. The network runs as the module
    (``model.compile`` is not used here).

    Yields one RestoredChunk per chunk, in order, as soon as the look-ahead of its faces is known: a chunk's faces
    may wait for the next chunk(s). Memory: the encoded faces not yet decoded (~47 MB each in fp32) and the logits
    of the last r frames per track.

    Restorers without code logits (GFPGAN, RestoreFormer) restore each chunk as ``restore_found_faces`` (the clip
    keeps its tracked, smoothed landmarks; ``window`` is not used) and yield ``codes=None``.
    """
    check_window(window)
    if not restorer_of(model).has_codes:
        for faces, crops in chunks:
            check_crops(crops, faces)
            restored = restore_faces(model, crops, face_weights(fidelity, faces), gray=[f.is_gray for f in faces],
                                     device=device, batch_size=batch_size, precision=precision,
                                     check_interrupt=check_interrupt)
            yield RestoredChunk(restored, None)
        return
    settings = run_settings(model, device, precision, batch_size)
    stream = _Stream(placed_network(model, settings), settings, window // 2, fidelity, check_interrupt)
    for faces, crops in chunks:  # the next chunk is read only when the ones before cannot be yielded yet
        check_crops(crops, faces)
        stream.add(faces, _as_batch(crops))
        stream.decode_ready()
        yield from stream.finished()
    stream.ended = True
    stream.decode_ready()
    yield from stream.finished()


def restore_blended_chunks(
    model: CodeFormerModel,
    chunks: Iterable[tuple[K, Sequence[Face], np.ndarray]],
    fidelity: Fidelity = 0.5,
    *,
    window: int = 3,
    face_window: int = 1,
    **kwargs: Any,
) -> Iterator[tuple[K, np.ndarray, np.ndarray | None]]:
    """``restore_clip_faces`` then ``face_blend.blend_clip_faces`` over ``face_window`` frames: per chunk
    ``(key, faces, crops)`` (``key``: anything the caller needs back), ``(key, restored crops, codes)`` in order.
    ``kwargs`` are those of ``restore_clip_faces``. On the device path the blend runs on the device."""
    check_window(face_window, "face window")
    fed: deque[tuple[K, Sequence[Face], np.ndarray]] = deque()  # handed to the restorer, not yet back
    back: deque[tuple[K, np.ndarray | None]] = deque()  # restored, not yet blended

    def restorer_input() -> Iterator[tuple[Sequence[Face], np.ndarray]]:
        for key, faces, crops in chunks:
            fed.append((key, faces, crops))
            yield faces, crops

    def restored_chunks() -> Iterator[FaceChunk]:
        for done in restore_clip_faces(model, restorer_input(), fidelity, window=window, **kwargs):
            key, faces, crops = fed.popleft()
            back.append((key, done.codes))
            yield FaceChunk(faces, crops, done.restored)

    device = kwargs.get("device", "cpu")
    for blended in blend_clip_faces(restored_chunks(), face_window, device if use_device_path(device) else None):
        key, codes = back.popleft()
        yield key, blended, codes


def restore_tracked_faces(
    model: CodeFormerModel,
    faces: Faces,
    crops: np.ndarray | Sequence[np.ndarray],
    fidelity: Fidelity = 0.5,
    *,
    window: int = 3,
    face_window: int = 1,
    frames_per_chunk: int = 8,
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``restore_clip_faces`` over a whole batch of frames (``faces.source_sizes``: one image per frame), fed
    ``frames_per_chunk`` frames at a time, then each restored face blended along its track over ``face_window``
    frames (``face_blend``); returns (restored ``[N, 512, 512, 3]`` uint8, codes ``[N, 256]`` int64, or None for
    restorers without codes) in ``faces`` order. ``kwargs`` are those of ``restore_clip_faces``."""
    check_crops(crops, faces)
    if frames_per_chunk < 1:
        raise InputError(f"frames_per_chunk must be at least 1, got {frames_per_chunk}")
    crops = _as_batch(crops)
    by_frame = faces.by_image()
    parts = [[i for frame in by_frame[start : start + frames_per_chunk] for i, _ in frame]
             for start in range(0, len(by_frame), frames_per_chunk)]
    restored = np.empty((len(faces), FACE_SIZE, FACE_SIZE, 3), np.uint8)
    codes: np.ndarray | None = np.empty((len(faces), TOKENS), np.int64) if restorer_of(model).has_codes else None
    chunks = ((part, tuple(faces.faces[i] for i in part), crops[part]) for part in parts)
    for part, blended, chunk_codes in restore_blended_chunks(model, chunks, fidelity, window=window,
                                                             face_window=face_window, **kwargs):
        restored[part] = blended
        if codes is not None and chunk_codes is not None:
            codes[part] = chunk_codes
    return restored, codes


__all__ = ["Encoded", "RestoredChunk", "check_window", "decode", "decode_codes", "encode", "pick_codes",
           "restore_blended_chunks", "restore_clip_faces",
           "restore_tracked_faces"]
