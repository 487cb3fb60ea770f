"""Decoding an audio stream to float samples at a requested rate and channel count.

Downmixing follows ITU-R BS.775 (the standard 5.1 -> stereo fold-down): centre and surrounds join the
front channels at -3 dB, LFE is dropped, no renormalisation. Mono is the mean of that stereo pair; a mono
source is copied to both sides. Resampling is polyphase (scipy), exact in length: n * rate / source_rate
rounded up. When the file has video, sample 0 is the first video frame's time.
"""

from __future__ import annotations

import fractions
import logging
import math
import os

import av
import numpy as np
from scipy import signal

from data_pipelines.media import container as containers
from data_pipelines.media.errors import CorruptMediaError, MediaError

MIN_RATE, MAX_RATE = 1000, 768000
MAX_SECONDS = 6 * 3600  # refuse to hold more than this much audio in memory
PREROLL_S = 0.25  # decoded and dropped before a window read from a seek (decode_audio_window)
_SIDE = math.sqrt(0.5)
# Channel name -> (gain into left, gain into right).
_STEREO = {
    "FL": (1.0, 0.0),
    "FR": (0.0, 1.0),
    "FC": (_SIDE, _SIDE),
    "LFE": (0.0, 0.0),
    "LFE2": (0.0, 0.0),
    "BL": (_SIDE, 0.0),
    "BR": (0.0, _SIDE),
    "SL": (_SIDE, 0.0),
    "SR": (0.0, _SIDE),
    "BC": (0.5, 0.5),
    "FLC": (1.0, 0.0),
    "FRC": (0.0, 1.0),
    "TC": (0.5, 0.5),
}
# Files that do not say which channel is which (WAV without a channel mask) get FFmpeg's default order.
_DEFAULT_LAYOUT = {2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_SCALE = {"s16": 2.0**15, "s32": 2.0**31, "s64": 2.0**63, "flt": 1.0, "dbl": 1.0}


def downmix_matrix(names: list[str], channels: int) -> np.ndarray:
    """(channels, len(names)) gains taking source channels (FFmpeg names: FL, FR, FC, LFE, ...) to
    `channels` (1 or 2) output channels."""
    if len(names) == 1:
        return np.ones((channels, 1))
    if not set(names) <= set(_STEREO) and len(names) in _DEFAULT_LAYOUT:
        names = [c.name for c in av.AudioLayout(_DEFAULT_LAYOUT[len(names)]).channels]
    stereo = np.array([_STEREO.get(n, (0.5, 0.5)) for n in names]).T
    return stereo if channels == 2 else stereo.mean(axis=0, keepdims=True)


def _samples(frame: av.AudioFrame) -> np.ndarray:
    """(samples, source channels) float64 in [-1, 1] from any sample format."""
    raw = frame.to_ndarray()
    channels = len(frame.layout.channels)
    raw = raw if frame.format.is_planar else raw.reshape(-1, channels).T
    base = frame.format.name.rstrip("p")
    if base == "u8":
        return (raw.T.astype(np.float64) - 128.0) / 128.0
    return raw.T.astype(np.float64) / _SCALE[base]


def _check_request(path: str, sample_rate: int, channels: int) -> None:
    if not (isinstance(sample_rate, int | np.integer) and MIN_RATE <= sample_rate <= MAX_RATE):
        raise MediaError(
            f"{path}: sample_rate={sample_rate!r} is not accepted; use {MIN_RATE}..{MAX_RATE} Hz."
        )
    if channels not in (1, 2):
        raise MediaError(f"{path}: channels={channels!r} is not accepted; use 1 (mono) or 2 (stereo).")


def decode_audio(
    path: str | os.PathLike, sample_rate: int, channels: int = 2, *, allow_partial: bool = False
) -> np.ndarray:
    """(samples, channels) float32 at `sample_rate`. Corrupt or truncated streams raise
    CorruptMediaError carrying what was decoded, or return it when allow_partial=True."""
    path = os.fspath(path)
    _check_request(path, sample_rate, channels)
    with containers.open_input(path) as container:
        stream = containers.pick_stream(container, "audio", path)
        videos = [s for s in container.streams.video if s.start_time is not None]
        declared = containers.declared_seconds(stream)
        if declared is not None and declared > MAX_SECONDS:
            raise MediaError(f"{path}: audio is {declared:.0f} s long; at most {MAX_SECONDS} s is accepted.")
        chunks, source_rate, names, first, damage = [], None, None, None, None
        try:
            for frame in container.decode(stream):
                if source_rate is None:
                    source_rate, names = frame.sample_rate, [c.name for c in frame.layout.channels]
                    first = frame.time
                elif frame.sample_rate != source_rate or len(frame.layout.channels) != len(names):
                    damage = "sample rate or channel layout changes midway"
                    break
                chunks.append(_samples(frame))
        except av.error.FFmpegError as e:
            damage = containers.reason(e)
        offset = 0.0
        if videos and first is not None:
            offset = first - float(videos[0].start_time * videos[0].time_base)
    if not chunks:
        if damage:
            raise MediaError(f"{path}: audio stream cannot be decoded ({damage}).")
        raise MediaError(f"{path}: audio stream has no samples.")
    source = np.concatenate(chunks) @ downmix_matrix(names, channels).T
    if declared is not None and damage is None:
        # Encoders pad the last packet (AAC: up to 1024 samples); the container says where sound ends.
        if source.shape[0] / source_rate < declared - 0.25:
            damage = f"the stream ends early; {declared:.2f} s declared"
        source = source[: max(1, round(declared * source_rate))]
    shift = round(offset * source_rate)
    source = np.pad(source, ((shift, 0), (0, 0))) if shift > 0 else source[-shift:]
    audio = _resample(source, source_rate, sample_rate).astype(np.float32)
    if damage:
        seconds = audio.shape[0] / sample_rate
        message = f"{path}: audio is corrupt or truncated after {seconds:.2f} s ({damage})."
        if not allow_partial:
            raise CorruptMediaError(message, audio, seconds)
        logging.warning(message)
    return audio


def _resample(x: np.ndarray, source_rate: int, rate: int) -> np.ndarray:
    if source_rate == rate:
        return x
    ratio = fractions.Fraction(rate, source_rate)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=0)


def audio_seconds(path: str | os.PathLike) -> float | None:
    """The audio stream's duration as the file states it (no decoding), or None when it states none."""
    path = os.fspath(path)
    with containers.open_input(path) as container:
        return containers.declared_seconds(containers.pick_stream(container, "audio", path))


def decode_audio_window(
    path: str | os.PathLike, sample_rate: int, channels: int, start: int, samples: int
) -> np.ndarray:
    """(samples, channels) float32: samples [start, start + samples) at `sample_rate` of what
    `decode_audio` gives, decoding only from a seek shortly before them (zero outside the sound). For crops
    of long recordings, where decoding the whole file would be most of the work."""
    path = os.fspath(path)
    _check_request(path, sample_rate, channels)
    with containers.open_input(path) as container:
        stream = containers.pick_stream(container, "audio", path)
        # Decoding starts PREROLL_S before the window: lossy decoders play silence for their first frames
        # after a seek (MP3: three frames of 26 ms), and resampling reaches a few ms around each sample.
        # Resampling by up/down puts output sample j at source sample j * down / up, so the decoded
        # stretch starts on a multiple of `down` to fall on that grid: up to `down` source samples more.
        down = fractions.Fraction(sample_rate, stream.sample_rate or sample_rate).denominator
        margin = PREROLL_S + down / (stream.sample_rate or sample_rate)
        first_s, last_s = start / sample_rate - margin, (start + samples) / sample_rate + margin
        # Sample 0 is at the first video frame's time, as in decode_audio, else at the audio's start.
        videos = [v for v in container.streams.video if v.start_time is not None]
        zero = videos[0] if videos else stream
        base = float(zero.start_time * zero.time_base) if zero.start_time is not None else 0.0
        # Where the sound ends, as decode_audio cuts it: encoders pad the last packet.
        declared = containers.declared_seconds(stream)
        begins = float(stream.start_time * stream.time_base) if stream.start_time is not None else base
        end = None if declared is None else round((begins + declared - base) * sample_rate)
        chunks, source_rate, names, at = [], None, None, None
        try:
            if first_s > 0:
                container.seek(int((base + first_s) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                if source_rate is None:
                    source_rate, names = frame.sample_rate, [c.name for c in frame.layout.channels]
                    at = round((frame.time - base) * source_rate)  # the file's sample index of chunk 0
                elif frame.sample_rate != source_rate or len(frame.layout.channels) != len(names):
                    raise MediaError(f"{path}: sample rate or channel layout changes midway.")
                chunks.append(_samples(frame))
                if frame.time - base + frame.samples / source_rate >= last_s:
                    break
        except av.error.FFmpegError as e:
            raise MediaError(f"{path}: audio stream cannot be decoded ({containers.reason(e)}).") from None
    out = np.zeros((samples, channels), np.float32)
    if not chunks:
        return out  # the window lies past the end
    source = np.concatenate(chunks) @ downmix_matrix(names, channels).T
    ratio = fractions.Fraction(sample_rate, source_rate)
    skip = -at % ratio.denominator
    audio = _resample(source[skip:], source_rate, sample_rate)
    offset = start - (at + skip) * ratio.numerator // ratio.denominator  # the window's start in `audio`
    lo, hi = max(0, offset), max(0, min(len(audio), offset + samples))
    out[lo - offset : hi - offset] = audio[lo:hi]
    if end is not None:
        out[max(0, min(samples, end - start)) :] = 0.0
    return out
