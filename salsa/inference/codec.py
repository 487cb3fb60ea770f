"""Encode and decode audio of any length in bounded memory: fixed-size overlapping windows, trimmed.

The encoder and decoder are convolution stacks whose strides multiply to `hop`, so a window that starts
on a multiple of hop and carries `receptive_radius` latent frames of context on each side computes its
central frames exactly as the whole clip would (up to float rounding). Windows have one fixed size, so
each direction compiles once; the last window is shifted back to end on the clip's end rather than padded.
Each window's result is copied to the host and trimmed there (trimming the device array would compile a
slice per distinct offset), and written into one preallocated output: memory beyond the input and output
arrays is one window's, whatever the length. On a model replicated over n devices
(salsa/inference/placement.py) n windows go in each call, one per device.

Length rule: encode pads the audio with zeros to a multiple of hop (T = ceil(samples / hop) frames);
decode returns exactly T · hop samples.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from salsa.inference import placement, windows
from salsa.inference.module_jit import module_jit
from salsa.models.vae.model import VAE, receptive_radius


@module_jit
def _encode_window(model: VAE, audio: jax.Array) -> jax.Array:
    return model.encode(audio)[0]


@module_jit
def _decode_window(model: VAE, latents: jax.Array) -> jax.Array:
    return model.decode(latents)


def encode(model: VAE, audio: np.ndarray, chunk_frames: int = 256) -> np.ndarray:
    """(samples, audio_channels) float audio at the model's rate -> latent means (T, latent_dim),
    T = ceil(samples / hop); `chunk_frames` latent frames are produced per window."""
    hop = model.config.hop
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2 or audio.shape[1] != model.config.audio_channels:
        raise ValueError(f"audio must be (samples, {model.config.audio_channels}), got shape {audio.shape}.")
    total = max(1, math.ceil(audio.shape[0] / hop))
    context = receptive_radius(model.config)[0]
    out = np.empty((total, model.config.latent_dim), np.float32)

    def calls(spans: list[tuple[int, int]]) -> np.ndarray:
        pieces = np.concatenate([_window(audio, start * hop, end * hop) for start, end in spans])
        return np.asarray(_encode_window(model, placement.place(pieces, model)))

    return windows.run(calls, out, chunk_frames, context, per_call=placement.devices(model))


def _window(audio: np.ndarray, start: int, end: int) -> np.ndarray:
    """audio[start:end] as a (1, end - start, channels) batch, zero-padded past the end of the audio (only
    the last window of a length that is not a multiple of hop): no padded copy of the whole input."""
    piece = audio[start:end]
    if piece.shape[0] < end - start:
        piece = np.concatenate([piece, np.zeros((end - start - piece.shape[0], audio.shape[1]), np.float32)])
    return piece[None]


def decode(model: VAE, latents: np.ndarray, chunk_frames: int = 256) -> np.ndarray:
    """(T, latent_dim) latents -> (T · hop, audio_channels) float32 audio."""
    hop = model.config.hop
    latents = np.asarray(latents, np.float32)
    if latents.ndim != 2 or latents.shape[1] != model.config.latent_dim or latents.shape[0] < 1:
        raise ValueError(
            f"latents must be (frames >= 1, {model.config.latent_dim}), got shape {latents.shape}."
        )
    total = latents.shape[0]
    context = receptive_radius(model.config)[1]
    out = np.empty((total * hop, model.config.audio_channels), np.float32)

    def calls(spans: list[tuple[int, int]]) -> np.ndarray:
        pieces = np.stack([latents[start:end] for start, end in spans])
        return np.asarray(_decode_window(model, placement.place(pieces, model)))

    return windows.run(calls, out, chunk_frames, context, scale=hop, per_call=placement.devices(model))


class StreamDecoder:
    """`decode` for latents that arrive piece by piece: `push` returns the audio that is final so far,
    `finish` the rest. The concatenated output equals `decode` of all the latents with the same
    `chunk_frames` (the same windows are decoded), and memory stays bounded however many are pushed."""

    def __init__(self, model: VAE, chunk_frames: int = 256):
        self.model, self.core = model, chunk_frames
        self.context = receptive_radius(model.config)[1]
        self.size = chunk_frames + 2 * self.context
        self.buffer = np.zeros((0, model.config.latent_dim), np.float32)
        self.offset = 0  # latent index of buffer[0]
        self.done = 0  # latent frames whose audio has been returned
        self.last: tuple[int, int, np.ndarray] | None = None  # the last window decoded: (start, end, audio)

    def _decode(self, start: int, end: int, a: int, b: int) -> np.ndarray:
        hop = self.model.config.hop
        if self.last is None or self.last[:2] != (start, end):
            # A clip that fits one window is decoded once, not twice: `finish` shifts its last window
            # back onto the window `push` already decoded (the latents of a span never change).
            window = self.buffer[start - self.offset : end - self.offset]
            self.last = (start, end, np.asarray(_decode_window(self.model, window[None]))[0])
        return windows.kept(self.last[2], start, a, b, hop)  # trimmed on the host, as in `decode`

    def push(self, latents: np.ndarray) -> np.ndarray:
        """(n, latent_dim) more latents -> (m · hop, audio_channels) audio, m >= 0."""
        self.buffer = np.concatenate([self.buffer, np.asarray(latents, np.float32)])
        available = self.offset + self.buffer.shape[0]
        out = []
        # A chunk's window is the one `decode` would use as soon as enough latents follow it.
        while max(self.done - self.context, 0) + self.size <= available:
            start = max(self.done - self.context, 0)
            out.append(self._decode(start, start + self.size, self.done, self.done + self.core))
            self.done += self.core
        # Keep what the remaining windows may read, the clip's last one shifted back included.
        keep = max(0, min(self.done - self.context, available - self.size))
        self.buffer, self.offset = self.buffer[keep - self.offset :], keep
        return self._join(out)

    def finish(self) -> np.ndarray:
        """The audio of the latents not yet returned (the clip's end is known now)."""
        total = self.offset + self.buffer.shape[0]
        out = []
        for start, end, a, b in windows.spans(total, self.core, self.context):
            if a >= self.done:
                out.append(self._decode(start, end, a, b))
        self.done = total
        return self._join(out)

    def _join(self, parts: list[np.ndarray]) -> np.ndarray:
        if parts:
            return np.concatenate(parts)
        return np.zeros((0, self.model.config.audio_channels), np.float32)


def normalize(latents: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    """Per-channel standardisation with a bundle's statistics: (z - mean) / std."""
    return (latents - stats["mean"]) / stats["std"]


def denormalize(latents: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    return latents * stats["std"] + stats["mean"]


class RunningStats:
    """Per-channel mean and standard deviation accumulated over (frames, channels) batches (float64)."""

    def __init__(self, channels: int):
        self.n = 0
        self.sum = np.zeros(channels)
        self.sq = np.zeros(channels)

    def add(self, latents: np.ndarray) -> None:
        x = np.asarray(latents, np.float64).reshape(-1, self.sum.shape[0])
        self.n += x.shape[0]
        self.sum += x.sum(0)
        self.sq += (x * x).sum(0)

    def result(self) -> dict[str, np.ndarray]:
        if self.n == 0:
            raise ValueError("no latent frames were seen; statistics need at least one.")
        mean = self.sum / self.n
        std = np.sqrt(np.maximum(self.sq / self.n - mean * mean, 0.0))
        return {"mean": mean.astype(np.float32), "std": np.maximum(std, 1e-6).astype(np.float32)}


def latent_stats(model: VAE, clips, chunk_frames: int = 256) -> dict[str, np.ndarray]:
    """Per-channel mean/std of the latent means of `clips` (an iterable of (samples, channels) audio)."""
    acc = RunningStats(model.config.latent_dim)
    for audio in clips:
        acc.add(encode(model, audio, chunk_frames))
    return acc.result()
