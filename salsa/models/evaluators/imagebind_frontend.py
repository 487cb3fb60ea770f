"""ImageBind's preprocessing (the reference's `load_and_transform_{video,audio}_data`), in numpy and JAX.

Clips: ImageBind's sampler (pytorchvideo's ConstantClipsPerVideoSampler) places `n` clips of 2 s at
starts k (d - 2) / n, k = 0 .. n-1, for a recording of d seconds (all at 0 when d <= 2); times are exact
fractions, as the reference computes them.

- video: 5 clips; of each clip's frames [ceil(fps start), min(ceil(fps end), T)) the first and the
  last (a uniform subsample of 2); scaled to [0, 1], the short side resized to 224 (bilinear, half-pixel
  centres, no antialiasing), CLIP's mean/std normalisation, then 3 square 224 crops along the long
  side (start, centre, end): 15 two-frame clips per video.
- audio (16 kHz): 3 clips, samples [int(16000 start), int(16000 end)); each clip's mean is subtracted
  from the waveform in place, one clip after the other (the reference does this on a view of the
  recording, so with d < 8 s an earlier clip's subtraction shifts the overlap a later clip sees; kept
  for parity); Kaldi fbank (25 ms Hann frames every 10 ms, edges snipped, per-frame DC removal,
  pre-emphasis 0.97, 512-point power spectrum, 128 Kaldi mel filters 20 Hz-8 kHz, ln(max(., eps))),
  zero-padded or cropped to 204 frames, then (x + 4.268) / 9.138.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

from salsa.models.evaluators.passt_frontend import kaldi_mel_banks

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


@dataclasses.dataclass(frozen=True)
class ImageBindFrontend:
    clip_seconds: float = 2.0
    video_clips: int = 5
    frames_per_clip: int = 2
    image_size: int = 224
    crops: int = 3
    sample_rate: int = 16000
    audio_clips: int = 3
    n_mels: int = 128
    target_frames: int = 204
    win: int = 400  # 25 ms
    hop: int = 160  # 10 ms
    n_fft: int = 512
    fmin: float = 20.0
    preemphasis: float = 0.97
    mean: float = -4.268
    std: float = 9.138


def clip_times(duration: float, clips: int, clip_seconds: float = 2.0) -> list[tuple[Fraction, Fraction]]:
    """(start, end) in seconds of ImageBind's `clips` evenly placed clips of a `duration` s recording."""
    step = Fraction(max(duration - clip_seconds, 0)) / clips
    return [(step * k, step * k + Fraction(clip_seconds)) for k in range(clips)]


# --- video -------------------------------------------------------------------------------------------


def clip_frame_indices(num_frames: int, fps: float, c: ImageBindFrontend = ImageBindFrontend()) -> np.ndarray:
    """(video_clips, frames_per_clip) indices into a video of `num_frames` frames at `fps`. The rate is
    taken as a float, as the reference's decoder reports it: an exact integer rate would place some clip
    edges one frame later (float rounding of fps * start is part of the protocol)."""
    fps = float(fps)
    if num_frames < 1 or fps <= 0:
        raise ValueError(f"a video of {num_frames} frames at {fps} fps has nothing to embed.")
    out = []
    for start, end in clip_times(num_frames / fps, c.video_clips, c.clip_seconds):
        first, stop = math.ceil(fps * start), min(math.ceil(fps * end), num_frames)
        if stop <= first:
            raise ValueError(
                f"no frame of a {num_frames}-frame video at {fps} fps lies in [{start}, {end}) s."
            )
        out.append(
            np.linspace(first, stop - 1, c.frames_per_clip).astype(int)
        )  # truncated, as torch's .long()
    return np.stack(out)


def short_side_size(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) with the short side `size`, the long side floor(long / short * size)."""
    if w < h:
        return int(math.floor(h / w * size)), size
    return size, int(math.floor(w / h * size))


def crop_offsets(h: int, w: int, size: int, crops: int = 3) -> list[tuple[int, int]]:
    """(y, x) corners of the square crops: with 3, the start, centre and end of the long side (width
    when square); with 1, the centre."""
    if crops not in (1, 3):
        raise ValueError(f"crops is {crops}; ImageBind takes 1 or 3 spatial crops.")
    y, x = math.ceil((h - size) / 2), math.ceil((w - size) / 2)
    if crops == 1:
        return [(y, x)]
    if h > w:
        return [(0, x), (y, x), (h - size, x)]
    return [(y, 0), (y, x), (y, w - size)]


def video_clips(
    frames: np.ndarray | jax.Array, fps: float, c: ImageBindFrontend = ImageBindFrontend()
) -> jax.Array:
    """RGB frames (..., time, height, width, 3) in 0..255 at `fps` -> the vision tower's input
    (..., video_clips * crops, frames_per_clip, image_size, image_size, 3), normalised."""
    shape = np.shape(frames)
    if len(shape) < 4 or shape[-1] != 3:
        raise ValueError(f"frames of shape {shape}; expected (..., time, height, width, 3) RGB.")
    *lead, t, h, w, _ = shape
    # only the 10 frames used leave the caller's array (numpy or JAX)
    x = jnp.asarray(frames[..., clip_frame_indices(t, fps, c), :, :, :]).astype(jnp.float32) / 255.0
    nh, nw = short_side_size(h, w, c.image_size)
    x = jax.image.resize(x, (*x.shape[:-3], nh, nw, 3), method="linear", antialias=False)
    x = (x - CLIP_MEAN) / CLIP_STD
    s = c.image_size
    crops = [x[..., y : y + s, xo : xo + s, :] for y, xo in crop_offsets(nh, nw, s, c.crops)]
    x = jnp.stack(crops, axis=-5)  # (..., clips, crops, frames, s, s, 3)
    return x.reshape(*lead, -1, *x.shape[-4:])


# --- audio -------------------------------------------------------------------------------------------


def audio_clip_waveforms(
    audio: np.ndarray | jax.Array, c: ImageBindFrontend = ImageBindFrontend()
) -> list[np.ndarray]:
    """(..., samples) at 16 kHz -> the `audio_clips` clips (..., clip_samples), each with its mean
    removed in the reference's order (in place on one copy of the recording)."""
    x = np.array(audio, np.float32)  # a copy: the subtraction below works on views of it, as the reference
    out = []
    for start, end in clip_times(x.shape[-1] / c.sample_rate, c.audio_clips, c.clip_seconds):
        clip = x[..., int(start * c.sample_rate) : int(end * c.sample_rate)]
        clip -= clip.mean(axis=-1, keepdims=True, dtype=np.float32)
        out.append(clip.copy())
    return out


def kaldi_fbank(audio: jax.Array, c: ImageBindFrontend = ImageBindFrontend()) -> jax.Array:
    """Kaldi's log mel filterbank (torchaudio.compliance.kaldi.fbank, as ImageBind calls it):
    (..., samples) -> (..., frames, n_mels), frames = 1 + (samples - 400) // 160."""
    n = audio.shape[-1]
    if n < c.win:
        raise ValueError(f"an audio clip of {n} samples is shorter than one {c.win}-sample Kaldi frame.")
    frames = 1 + (n - c.win) // c.hop
    idx = np.arange(frames)[:, None] * c.hop + np.arange(c.win)[None, :]
    x = audio.astype(jnp.float32)[..., idx]  # (..., frames, win)
    x = x - x.mean(axis=-1, keepdims=True)
    x = x - c.preemphasis * jnp.concatenate([x[..., :1], x[..., :-1]], axis=-1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(c.win) / (c.win - 1))  # symmetric Hann
    spec = jnp.abs(jnp.fft.rfft(x * window.astype(np.float32), n=c.n_fft, axis=-1)) ** 2
    banks = kaldi_mel_banks(c.n_mels, c.n_fft, c.sample_rate, c.fmin, c.sample_rate / 2)
    mel = jnp.matmul(spec, banks, precision=jax.lax.Precision.HIGHEST)
    return jnp.log(jnp.maximum(mel, np.finfo(np.float32).eps))


def audio_clips(audio: np.ndarray | jax.Array, c: ImageBindFrontend = ImageBindFrontend()) -> jax.Array:
    """(..., samples) mono at 16 kHz -> the audio tower's input (..., audio_clips, n_mels, target_frames)."""
    if np.shape(audio)[-1] < c.win:
        raise ValueError(
            f"audio of {np.shape(audio)[-1]} samples is shorter than one Kaldi frame (25 ms at 16 kHz)."
        )
    out = []
    for clip in audio_clip_waveforms(audio, c):
        mel = jnp.swapaxes(kaldi_fbank(jnp.asarray(clip), c), -1, -2)[..., : c.target_frames]
        pad = c.target_frames - mel.shape[-1]
        mel = jnp.pad(mel, [(0, 0)] * (mel.ndim - 1) + [(0, pad)])
        out.append((mel - c.mean) / c.std)
    return jnp.stack(out, axis=-3)
