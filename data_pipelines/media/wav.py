"""A 16-bit PCM WAV that is a complete, playable file after every piece written to it."""

from __future__ import annotations

import os
import struct

import numpy as np


def pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] (clipped) as the 16-bit samples a WAV holds."""
    return np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")


def as_read_back(audio: np.ndarray) -> np.ndarray:
    """The float32 samples a 16-bit WAV of `audio` reads back as (libsndfile's scale, 1/32768)."""
    return pcm16(audio).astype(np.float32) / 32768.0


class GrowingWav:
    """A 16-bit PCM WAV written piece by piece; after every `write` the file is a valid WAV of all the
    samples so far (the two size fields of the header are rewritten), so a player can open it early."""

    def __init__(self, path: str | os.PathLike, sample_rate: int, channels: int):
        self.path, self.channels, self.frames = os.fspath(path), channels, 0
        self.file = open(self.path, "wb")  # noqa: SIM115 (a long-lived handle, closed by close())
        self.file.write(self._header(sample_rate))

    def _header(self, rate: int) -> bytes:
        block = 2 * self.channels
        fmt = struct.pack("<HHIIHH", 1, self.channels, rate, rate * block, block, 16)
        return (
            b"RIFF"
            + struct.pack("<I", 36)
            + b"WAVE"
            + b"fmt "
            + struct.pack("<I", 16)
            + fmt
            + b"data"
            + b"\0" * 4
        )

    def write(self, audio: np.ndarray) -> None:
        """Appends (samples, channels) float audio in [-1, 1] (clipped) and rewrites the header sizes."""
        self.file.write(pcm16(audio).tobytes())
        self.frames += audio.shape[0]
        size = self.frames * 2 * self.channels
        self.file.seek(4)
        self.file.write(struct.pack("<I", 36 + size))
        self.file.seek(40)
        self.file.write(struct.pack("<I", size))
        self.file.seek(0, os.SEEK_END)
        self.file.flush()

    @property
    def closed(self) -> bool:
        return self.file.closed

    def close(self) -> None:
        self.file.close()
