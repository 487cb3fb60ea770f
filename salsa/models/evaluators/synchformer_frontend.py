"""Synchformer's input protocol in JAX (the field's DeSync, as MMAudio's av-benchmark computes it).

video: RGB frames at 25 fps, the short side resized to 224 (bicubic), a centre 224 x 224 crop, scaled to
[-1, 1] ((x / 255 - 0.5) / 0.5); cut into segments of 16 frames (0.64 s) every 8 frames (0.32 s).
audio: mono 16 kHz; cut into segments of 10 240 samples (0.64 s) every 5 120 (0.32 s); each segment ->
a centred 1024-point STFT (reflect padding) every 160 samples with a 400-tap periodic Hann window in
its middle, power, 128 HTK-scale triangular mel filters (0 to 8 kHz, no area normalisation) ->
log(mel + 1e-6) (65 frames) -> zero-padded to 66 frames -> (x + 4.2677393) / (2 * 4.5689974).
An 8 s clip gives 24 segments of each; the offset classifier reads 14 consecutive segments (4.8 s), and
DeSync averages the first and the last such window (`window_starts`).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from salsa.models.evaluators.imagebind_frontend import short_side_size


@dataclasses.dataclass(frozen=True)
class SynchformerFrontend:
    fps: float = 25.0
    image_size: int = 224
    segment_frames: int = 16
    frame_step: int = 8
    sample_rate: int = 16000
    segment_samples: int = 10240
    sample_step: int = 5120
    n_fft: int = 1024
    win: int = 400
    hop: int = 160
    n_mels: int = 128
    mel_frames: int = 66  # the 65 STFT frames of a segment, zero-padded by one (after the log)
    mean: float = -4.2677393
    std: float = 4.5689974
    window_segments: int = 14  # what the offset classifier reads: 4.8 s
    clip_seconds: float = 8.0

    @property
    def segment_seconds(self) -> float:
        return self.segment_frames / self.fps

    @property
    def window_seconds(self) -> float:
        return ((self.window_segments - 1) * self.frame_step + self.segment_frames) / self.fps


def num_segments(length: int, size: int, step: int) -> int:
    """Segments of `size` every `step` in `length` items (0 when shorter than one)."""
    return 0 if length < size else (length - size) // step + 1


def segment(x: jax.Array, size: int, step: int, axis: int) -> jax.Array:
    """x cut along `axis` into windows of `size` every `step`: that axis becomes (segments, size)."""
    axis = axis % x.ndim
    n = num_segments(x.shape[axis], size, step)
    if n == 0:
        raise ValueError(f"{x.shape[axis]} items along axis {axis} are fewer than one segment of {size}.")
    idx = np.arange(n)[:, None] * step + np.arange(size)[None, :]
    return jnp.take(x, idx, axis=axis)


def window_starts(segments: int, c: SynchformerFrontend = SynchformerFrontend()) -> tuple[int, int]:
    """First segments of the two windows DeSync averages: the first and the last `window_segments`
    (the same window twice when there are exactly that many)."""
    if segments < c.window_segments:
        raise ValueError(
            f"{segments} segments are fewer than the {c.window_segments} ({c.window_seconds:.2f} s) "
            "the offset classifier reads."
        )
    return 0, segments - c.window_segments


def htk_mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None):
    """Triangular filters (n_fft // 2 + 1, n_mels) evenly spaced on 2595 log10(1 + f / 700), peak 1."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)

    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)

    pts = 700.0 * (10 ** (np.linspace(mel(fmin), mel(fmax), n_mels + 2) / 2595.0) - 1.0)
    slopes = pts[None, :] - fft_hz[:, None]  # (freqs, n_mels + 2)
    diff = np.diff(pts)
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


def log_mel(segments: jax.Array, c: SynchformerFrontend = SynchformerFrontend()) -> jax.Array:
    """Audio segments (..., segment_samples) in [-1, 1] -> the audio tower's input (..., 66, 128)."""
    if segments.shape[-1] != c.segment_samples:
        raise ValueError(f"audio segments of {segments.shape[-1]} samples; expected {c.segment_samples}.")
    pad = c.n_fft // 2
    x = segments.astype(jnp.float32)
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode="reflect")
    frames = 1 + c.segment_samples // c.hop
    idx = np.arange(frames)[:, None] * c.hop + np.arange(c.n_fft)[None, :]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(c.win) / c.win)  # periodic Hann
    left = (c.n_fft - c.win) // 2
    window = np.pad(window, (left, c.n_fft - c.win - left)).astype(np.float32)
    spec = jnp.fft.rfft(x[..., idx] * window, n=c.n_fft, axis=-1)
    power = jnp.real(spec) ** 2 + jnp.imag(spec) ** 2
    banks = htk_mel_filters(c.sample_rate, c.n_fft, c.n_mels)
    mel = jnp.log(jnp.matmul(power, banks, precision=jax.lax.Precision.HIGHEST) + 1e-6)
    if c.mel_frames < frames:
        raise ValueError(f"mel_frames {c.mel_frames} is fewer than the {frames} STFT frames of a segment.")
    mel = jnp.pad(mel, [(0, 0)] * (mel.ndim - 2) + [(0, c.mel_frames - frames), (0, 0)])
    return (mel - c.mean) / (2 * c.std)


def audio_segments(
    waveform: np.ndarray | jax.Array, c: SynchformerFrontend = SynchformerFrontend()
) -> jax.Array:
    """Mono 16 kHz audio (..., samples) -> log-mel segments (..., segments, 66, 128)."""
    x = segment(jnp.asarray(waveform, jnp.float32), c.segment_samples, c.sample_step, axis=-1)
    return log_mel(x, c)


def center_crop_offset(length: int, size: int) -> int:
    """The top/left of a centre crop as torchvision takes it: round((length - size) / 2)."""
    return int(round((length - size) / 2.0))


def resized_crop(frames: np.ndarray | jax.Array, c: SynchformerFrontend = SynchformerFrontend()) -> jax.Array:
    """RGB frames (..., time, height, width, 3) in 0..255 -> (..., time, image_size, image_size, 3),
    whole numbers in 0..255 as float32: short side resized to image_size (bicubic, antialiased when
    shrinking; rounded to 0..255 as the reference's uint8 resize is), centre crop. Exact in uint8."""
    shape = np.shape(frames)
    if len(shape) < 4 or shape[-1] != 3:
        raise ValueError(f"frames of shape {shape}; expected (..., time, height, width, 3) RGB.")
    h, w = shape[-3:-1]
    x = jnp.asarray(frames).astype(jnp.float32)
    nh, nw = short_side_size(h, w, c.image_size)
    if (nh, nw) != (h, w):
        x = jax.image.resize(x, (*shape[:-3], nh, nw, 3), method="cubic", antialias=True)
        x = jnp.clip(jnp.round(x), 0, 255)
    s = c.image_size
    y0, x0 = center_crop_offset(nh, s), center_crop_offset(nw, s)
    return x[..., y0 : y0 + s, x0 : x0 + s, :]


def scale_pixels(x: np.ndarray | jax.Array) -> jax.Array:
    """0..255 -> [-1, 1]: (x / 255 - 0.5) / 0.5, the reference's normalisation."""
    return (jnp.asarray(x).astype(jnp.float32) / 255.0 - 0.5) / 0.5


def video_pixels(frames: np.ndarray | jax.Array, c: SynchformerFrontend = SynchformerFrontend()) -> jax.Array:
    """RGB frames (..., time, height, width, 3) in 0..255 -> (..., time, image_size, image_size, 3) in
    [-1, 1] (`resized_crop`, then `scale_pixels`)."""
    return scale_pixels(resized_crop(frames, c))


def video_segments(
    frames: np.ndarray | jax.Array, c: SynchformerFrontend = SynchformerFrontend()
) -> jax.Array:
    """RGB frames at 25 fps (..., time, height, width, 3) in 0..255 -> the video tower's input
    (..., segments, 16, image_size, image_size, 3)."""
    return segment(video_pixels(frames, c), c.segment_frames, c.frame_step, axis=-4)


def clip_lengths(
    c: SynchformerFrontend = SynchformerFrontend(), seconds: float | None = None
) -> tuple[int, int]:
    """(frames, samples) of the protocol's clip: the first `seconds` (default clip_seconds) at 25 fps
    and 16 kHz, rounded down as av-benchmark's int(rate * seconds)."""
    seconds = c.clip_seconds if seconds is None else seconds
    return math.floor(c.fps * seconds + 1e-9), math.floor(c.sample_rate * seconds + 1e-9)


def window_spans(
    segments: int, c: SynchformerFrontend = SynchformerFrontend()
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """What each of DeSync's two windows reads of a clip cut into `segments` segments: [(frames [a, b),
    samples [a, b)), ...] for the first and the last window (`window_starts`); 4.8 s each."""
    spans = []
    for s in window_starts(segments, c):
        last = s + c.window_segments - 1
        frames = (s * c.frame_step, last * c.frame_step + c.segment_frames)
        samples = (s * c.sample_step, last * c.sample_step + c.segment_samples)
        spans.append((frames, samples))
    return spans
