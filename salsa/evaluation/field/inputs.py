"""The clips of a field evaluation: two folders paired by file name, and audio read as the protocol reads it.

REAL and GEN hold videos (or audio files). A generated clip pairs with the real clip of the same stem;
a trailing `.salsa` in the generated stem is ignored, so both what `salsa.extend --video FOLDER` writes
(a folder of the inputs' names) and single-file outputs (`name.salsa.mp4`) pair with `name.mp4`. Clips
that pair with nothing are listed, never dropped silently; two clips of one stem in a folder are an error.

Reading (the av-benchmark protocol's): channels averaged, resampled, the mean of the whole file
removed (not for Synchformer, whose reading keeps it), the first `seconds` kept. A clip that ends
within `SHORT_TOLERANCE_S` of `seconds` (encoders round the last audio packet) is zero-padded to
exactly `seconds`; a shorter one, one without audio or one that cannot be decoded raises `Skip`, whose
reason the report lists.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
from collections.abc import Callable

import numpy as np

from data_pipelines.media import VIDEO_EXTENSIONS, MediaError, decode_audio
from data_pipelines.media.video import VideoFrames
from salsa.errors import UserError

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus")
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS
GENERATED_SUFFIX = ".salsa"  # salsa.extend's single-file output: name.salsa.mp4
SHORT_TOLERANCE_S = 0.1


class Skip(Exception):
    """A clip the protocol cannot score; str() is the reason shown in the report."""


@dataclasses.dataclass(frozen=True)
class Pair:
    name: str
    real: str
    generated: str


@dataclasses.dataclass(frozen=True)
class Pairing:
    pairs: list[Pair]
    unpaired_real: list[str]
    unpaired_generated: list[str]
    other_files: list[str]  # files in either folder that are not media by their extension


def _clips(folder: str, flag: str, strip: str | None) -> tuple[dict[str, str], list[str]]:
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "no such folder"
        raise UserError(f"{flag} {folder}: {what}; give a folder of videos or audio files.")
    clips, other = {}, []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isfile(path) or name.startswith("."):
            continue
        stem, ext = os.path.splitext(name)
        if ext.lower() not in MEDIA_EXTENSIONS:
            other.append(path)
            continue
        if strip and stem.endswith(strip):
            stem = stem[: -len(strip)]
        if stem in clips:
            raise UserError(
                f"{flag} {folder}: two clips are named {stem!r} ({os.path.basename(clips[stem])}, {name}); "
                "keep one per name, pairing is by name."
            )
        clips[stem] = path
    if not clips:
        raise UserError(f"{flag} {folder}: holds no videos or audio files ({', '.join(MEDIA_EXTENSIONS)}).")
    return clips, other


def pair_folders(real: str, generated: str) -> Pairing:
    """The pairs of REAL and GEN by name (sorted), and what pairs with nothing; UserError for a missing
    or empty folder, two clips of one name, or no pair at all."""
    r, r_other = _clips(real, "--real", None)
    g, g_other = _clips(generated, "--generated", GENERATED_SUFFIX)
    names = sorted(set(r) & set(g))
    if not names:
        raise UserError(
            f"no clip of --generated {generated} has a namesake in --real {real} (e.g. {next(iter(g))!r} "
            f"vs {next(iter(r))!r}); clips pair by file name."
        )
    return Pairing(
        pairs=[Pair(n, r[n], g[n]) for n in names],
        unpaired_real=sorted(r[n] for n in set(r) - set(g)),
        unpaired_generated=sorted(g[n] for n in set(g) - set(r)),
        other_files=r_other + g_other,
    )


@dataclasses.dataclass(frozen=True)
class AudioReader:
    """Mono audio at `rate`, mean removed (unless `center` is False: Synchformer's reading keeps it),
    exactly `seconds` long (the protocol's input to an embedder)."""

    rate: int
    seconds: float
    center: bool = True

    def key(self) -> str:
        return f"audio:{self.rate}:{self.seconds!r}:{SHORT_TOLERANCE_S!r}" + ("" if self.center else ":dc")

    def read(self, path: str) -> np.ndarray:
        try:
            audio = decode_audio(path, self.rate, channels=1)[:, 0]
        except MediaError as e:
            text = str(e).removeprefix(f"{path}: ")
            raise Skip("no audio" if "has no audio stream" in text else f"unreadable: {text}") from None
        need = round(self.seconds * self.rate)
        if audio.size < need - round(SHORT_TOLERANCE_S * self.rate):
            raise Skip(
                f"short: {audio.size / self.rate:.2f} s of audio, the protocol reads {self.seconds:g} s"
            )
        if self.center:
            audio = (audio - np.mean(audio, dtype=np.float64)).astype(np.float32)
        audio = audio[:need]
        return np.pad(audio, (0, need - audio.size))


def video_skip(path: str, e: MediaError) -> Skip:
    """Why `path` has no usable video, from the MediaError its reading raised."""
    text = str(e).removeprefix(f"{path}: ")
    return Skip("no video" if "has no video stream" in text else f"video: {text}")


def video_frames(path: str, fps: float, n: int, need: int):
    """The first `n` frames of `path` at `fps`, one at a time; Skip when there is no video stream, the
    file cannot be read, or damage ends it before `need` frames (a clean shorter ending is the
    caller's to judge)."""
    seen = 0
    try:
        reader = VideoFrames(path, fps)
        for frame in reader:
            yield frame
            seen += 1
            if seen >= n:
                return
    except MediaError as e:
        raise video_skip(path, e) from None
    if reader.damage and seen < need:
        raise Skip(f"video: unreadable after {seen} frames ({reader.damage})")


MEMO = 64  # video embeddings remembered by input content (real and generated usually share a video)


def memoised(embed: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """`embed` of one video's frames, remembered by their content (the last MEMO distinct ones)."""
    memo: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()

    def cached(frames: np.ndarray) -> np.ndarray:
        key = hashlib.sha256(frames.tobytes()).hexdigest()
        if key not in memo:
            memo[key] = embed(frames)
            if len(memo) > MEMO:
                memo.popitem(last=False)
        return memo[key]

    return cached


def audio_and_video(x: dict, audio: np.ndarray, video: np.ndarray, embed) -> dict[str, np.ndarray]:
    """A batch's features: `audio`, and `video` (zeros, B first) filled by `embed` on the rows of `x`
    that have video; the video flags of `x` carried along."""
    for i, has in enumerate(x["has_video"]):
        if has:
            video[i] = embed(x["video"][i])
    return {"audio": audio, "video": video, "has_video": x["has_video"], "video_missing": x["video_missing"]}
