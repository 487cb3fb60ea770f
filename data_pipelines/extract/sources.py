"""Where clips come from: the synthetic world, a folder of videos, or a VGGSound-style manual_dir.

A source is an indexed list of clips, the same on every process: `len(source)`, `source.id(i)` and
`source.load(i, decoding)` -> `Media` (frames at both rates, audio at the VAE's rate, caption), which
raises MediaError for a clip that cannot be used (the extractor skips and reports it); settings that
do not describe a source raise UserError.

    synthetic  clips rendered from (seed, index) by data_pipelines/synthetic at the sync frame rate, the
               VAE's sample rate and channel count; caption = the world's caption
    folder     every video file under `dir` (sorted relative paths; ids are the paths without extension);
               optional `dir/captions.csv` with columns `file,caption` (file relative to dir)
    vggsound   `dir` in data_pipelines/real/vggsound.py's manual_dir layout: vggsound.csv + videos/;
               caption = the label, or with `captions` (AudioSetCaps's VGGSound_AudioSetCaps_caption.csv)
               the clip's AudioSetCaps caption where it has one; `split` keeps the rows of one split ("" keeps
               all)
    audio_text `dir` in data_pipelines/real/audio_text.py's layout (WavCaps captions.json, or
               captions.csv with id/file and caption, audio under audio/): audio and caption, no video,
               so the records have no semantic or sync features (audio-only, docs/records.md);
               `split` as for vggsound (rows without a split column are split by a hash of their id)
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
from typing import Any, Protocol

import numpy as np

from data_pipelines.media import (
    VIDEO_EXTENSIONS,
    MediaError,
    decode_audio,
    decode_video_rates,
    pick_frames,
    resize,
)
from salsa.errors import UserError


@dataclasses.dataclass(frozen=True)
class Decoding:
    """Rates and sizes the encoders want: frames at semantic_fps and sync_fps, square, of the given
    side; audio (samples, channels) at sample_rate."""

    semantic_fps: float
    sync_fps: float
    semantic_size: int
    sync_size: int
    sample_rate: int
    channels: int


@dataclasses.dataclass
class Media:
    """One decoded clip: frames8 (T8, s, s, 3) uint8, frames24 (T24, s', s', 3) uint8 (both None for
    audio without video), audio (samples, channels) float32, caption ("" when none)."""

    frames8: np.ndarray | None
    frames24: np.ndarray | None
    audio: np.ndarray
    caption: str


class Source(Protocol):
    def __len__(self) -> int: ...

    def id(self, index: int) -> str: ...

    def load(self, index: int, decoding: Decoding) -> Media: ...


class SyntheticSource:
    """`clips` clips of the synthetic world, clip i = make_clip(world, seed, first + i), rendered at `size`
    pixels (0: the sync encoder's frame size, at which the evaluation renders its held-out clips; another
    size is refused by the extraction, as it would train the generator on resized frames and test it on
    sharp ones); hidden_acoustics, hidden_caption_fraction and shutter are the world's
    (data_pipelines/synthetic/config.py). With audio_only the
    clips are captioned sound without their picture: a miniature audio-text set, whose records have no
    semantic or sync features (docs/records.md)."""

    def __init__(
        self,
        clips: int,
        seed: int = 0,
        first: int = 0,
        seconds: float = 2.0,
        size: int = 0,
        hidden_acoustics: bool = False,
        hidden_caption_fraction: float = 0.0,
        shutter: float = 0.0,
        audio_only: bool = False,
    ):
        self.clips, self.seed, self.first, self.seconds, self.size = clips, seed, first, seconds, size
        self.audio_only = bool(audio_only)
        self.world = dict(
            hidden_acoustics=bool(hidden_acoustics),
            hidden_caption_fraction=float(hidden_caption_fraction),
            shutter=float(shutter),
        )

    def __len__(self) -> int:
        return self.clips

    def id(self, index: int) -> str:
        return f"synthetic-{self.seed}-{self.first + index:06d}"

    def load(self, index: int, decoding: Decoding) -> Media:
        from data_pipelines.synthetic.clip import make_clip
        from data_pipelines.synthetic.config import WorldConfig

        config = WorldConfig(
            seconds=self.seconds,
            fps=decoding.sync_fps,
            height=self.size or decoding.sync_size,
            width=self.size or decoding.sync_size,
            sample_rate=decoding.sample_rate,
            channels=decoding.channels,
            **self.world,
        )
        clip = make_clip(config, self.seed, self.first + index)
        if self.audio_only:
            return Media(frames8=None, frames24=None, audio=clip.audio, caption=clip.annotation["caption"])
        count8 = round(config.num_frames * decoding.semantic_fps / decoding.sync_fps)
        frames8 = pick_frames(clip.frames, decoding.sync_fps, decoding.semantic_fps, count8)
        return Media(
            frames8=resize(frames8, decoding.semantic_size),
            frames24=resize(clip.frames, decoding.sync_size),
            audio=clip.audio,
            caption=clip.annotation["caption"],
        )


def _decode_file(path: str, caption: str, decoding: Decoding) -> Media:
    """Both frame rates and the audio of a media file (two decoding passes, one clip in memory)."""
    audio = decode_audio(path, decoding.sample_rate, decoding.channels)
    requests = [
        (decoding.semantic_fps, (decoding.semantic_size,) * 2),
        (decoding.sync_fps, (decoding.sync_size,) * 2),
    ]
    frames8, frames24 = decode_video_rates(path, requests)
    return Media(frames8=frames8, frames24=frames24, audio=audio, caption=caption)


class FolderSource:
    """Every video file under `dir`, in sorted order of relative path."""

    def __init__(self, dir: str, captions: str = "captions.csv"):
        if not os.path.isdir(dir):
            raise UserError(f"source.dir {dir!r} is not a folder of videos.")
        self.dir = dir
        self.files = sorted(
            os.path.relpath(os.path.join(root, name), dir)
            for root, _, names in os.walk(dir)
            for name in names
            if name.lower().endswith(VIDEO_EXTENSIONS)
        )
        self.captions: dict[str, str] = {}
        table = os.path.join(dir, captions) if captions else ""
        if table and os.path.isfile(table):
            with open(table, newline="") as f:
                for row in csv.DictReader(f):
                    if "file" not in row or "caption" not in row:
                        raise UserError(f"{table}: expected the columns 'file,caption', got {list(row)}.")
                    self.captions[os.path.normpath(row["file"])] = row["caption"].strip()

    def __len__(self) -> int:
        return len(self.files)

    def id(self, index: int) -> str:
        return os.path.splitext(self.files[index])[0]

    def load(self, index: int, decoding: Decoding) -> Media:
        name = self.files[index]
        return _decode_file(os.path.join(self.dir, name), self.captions.get(name, ""), decoding)


class VggsoundSource:
    """Rows of DIR/vggsound.csv whose video is DIR/videos/ID_START.mp4 (or a variant). With `captions`
    (an AudioSetCaps caption CSV; a relative path is taken in DIR) a clip's caption is its AudioSetCaps
    caption, joined by (id, start second); clips it lacks keep their label, and how many is logged."""

    def __init__(self, dir: str, split: str = "", captions: str = ""):
        from data_pipelines.real.vggsound import read_captions, read_rows

        table = os.path.join(dir, "vggsound.csv")
        if not os.path.isfile(table):
            raise UserError(f"source.dir {dir!r} has no vggsound.csv (data_pipelines/real/vggsound.py).")
        self.dir = dir
        self.rows = [r for r in read_rows(table) if not split or r[3] == split]
        if captions:
            path = os.path.join(dir, captions)
            if not os.path.isfile(path):
                raise UserError(
                    f"source.captions {path!r} is not a file; give AudioSetCaps's "
                    "VGGSound_AudioSetCaps_caption.csv (absolute, or relative to source.dir)."
                )
            by_clip = read_captions(path)
            lacking = sum((clip_id, start) not in by_clip for clip_id, start, _, _ in self.rows)
            self.rows = [(c, s, by_clip.get((c, s), label), sp) for c, s, label, sp in self.rows]
            logging.log(
                logging.WARNING if lacking else logging.INFO,
                "%d of %d clips of %s have an AudioSetCaps caption in %s; %d keep their label as caption",
                len(self.rows) - lacking,
                len(self.rows),
                table,
                path,
                lacking,
            )

    def __len__(self) -> int:
        return len(self.rows)

    def id(self, index: int) -> str:
        clip_id, start, _, _ = self.rows[index]
        return f"{clip_id}_{start}"

    def load(self, index: int, decoding: Decoding) -> Media:
        from data_pipelines.real.vggsound import find_video

        clip_id, start, caption, _ = self.rows[index]  # the label, or its AudioSetCaps caption
        path = find_video(os.path.join(self.dir, "videos"), clip_id, start)
        if path is None:
            raise MediaError(f"{clip_id}_{start}: no video file in {os.path.join(self.dir, 'videos')}.")
        return _decode_file(path, caption, decoding)


class AudioTextSource:
    """Captioned audio without video: the rows of DIR/captions.json or DIR/captions.csv whose audio file
    is found (data_pipelines/real/audio_text.py)."""

    def __init__(self, dir: str, split: str = ""):
        from data_pipelines.real.audio_text import read_captions

        if not os.path.isdir(dir):
            raise UserError(f"source.dir {dir!r} is not a folder of captioned audio.")
        try:
            rows = read_captions(dir)
        except FileNotFoundError:
            raise UserError(
                f"source.dir {dir!r} has neither captions.json (WavCaps) nor captions.csv "
                "(data_pipelines/real/audio_text.py)."
            ) from None
        except (KeyError, ValueError) as e:
            raise UserError(f"the captions in {dir!r} do not have the expected fields ({e}).") from None
        self.dir = dir
        self.rows = [r for r in rows if not split or r["split"] == split]

    def __len__(self) -> int:
        return len(self.rows)

    def id(self, index: int) -> str:
        return self.rows[index]["id"]

    def load(self, index: int, decoding: Decoding) -> Media:
        from data_pipelines.real.audio_text import find_audio

        row = self.rows[index]
        path = find_audio(self.dir, row)
        if path is None:
            raise MediaError(f"{row['id']}: no audio file for it in {self.dir} (nor in its audio/).")
        audio = decode_audio(path, decoding.sample_rate, decoding.channels)
        return Media(frames8=None, frames24=None, audio=audio, caption=str(row["caption"]).strip())


def make(source: Any) -> Source:
    """The source named by the config's `source` section (kind = synthetic | folder | vggsound |
    audio_text)."""
    settings = dict(source)
    kind = settings.pop("kind", None)
    kinds = {
        "synthetic": SyntheticSource,
        "folder": FolderSource,
        "vggsound": VggsoundSource,
        "audio_text": AudioTextSource,
    }
    if kind not in kinds:
        raise UserError(f"source.kind {kind!r} is not known; use one of {', '.join(kinds)}.")
    try:
        return kinds[kind](**settings)
    except TypeError as e:
        raise UserError(f"source settings {settings} do not fit source.kind={kind!r} ({e}).") from None


def trim(media: Media, decoding: Decoding) -> tuple[Media, float]:
    """Cuts every stream to the shortest one's duration (seconds, whole sync frames); returns both.
    Audio without video is cut to whole sync frames too, so that every record's duration is on one grid."""
    video = media.frames8 is not None
    seconds = media.audio.shape[0] / decoding.sample_rate
    if video:
        seconds = min(
            seconds,
            media.frames24.shape[0] / decoding.sync_fps,
            media.frames8.shape[0] / decoding.semantic_fps,
        )
    duration = math.floor(seconds * decoding.sync_fps + 1e-6) / decoding.sync_fps
    cut = Media(
        frames8=media.frames8[: max(1, round(duration * decoding.semantic_fps))] if video else None,
        frames24=media.frames24[: round(duration * decoding.sync_fps)] if video else None,
        audio=media.audio[: round(duration * decoding.sample_rate)],
        caption=media.caption,
    )
    return cut, duration
