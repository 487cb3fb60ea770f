"""Frames and captions of the synthetic world, for training tiny SigLIP towers (image <-> caption).

A batch is `batch` distinct clips, one frame each (drawn anywhere in the clip) with the clip's caption as
token ids; with `MelSpec` given, also the whole clip's log-mel spectrogram (computed once, at render
time), for learning captions against the sound (the SigLIP task's audio term); in a world with hidden
acoustics and `misworded`, also one caption per row that names one hidden property wrong
(`acoustics.misworded`), the audio term's hard negatives.

The tokenizer is a word-level `tokenizers` model whose vocabulary is the words of the
captions it was built from (`build_tokenizer`), saved as the `tokenizer.json` the feature functions read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import grain
import numpy as np

from data_pipelines.synthetic import WorldConfig, acoustics, make_clip

PAD, UNK = "<pad>", "<unk>"


def build_tokenizer(captions: Sequence[str]):
    """A word-level `tokenizers.Tokenizer` over the captions' words (punctuation split off, lower case);
    <pad> is id 0, words never seen are <unk> (id 1)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(captions, trainers.WordLevelTrainer(special_tokens=[PAD, UNK], min_frequency=1))
    return tok


def encode(tok, captions: Sequence[str], length: int) -> np.ndarray:
    """(N, length) int32 token ids, cut or padded with <pad> (as `salsa.inference.encoders.tokenize`)."""
    pad = tok.token_to_id(PAD)
    ids = np.full((len(captions), length), pad, np.int32)
    for i, c in enumerate(captions):
        e = tok.encode(c).ids[:length]
        ids[i, : len(e)] = e
    return ids


@dataclasses.dataclass(frozen=True)
class MelSpec:
    """A log-mel spectrogram: `mels` bands, windows of n_fft samples every `hop` samples."""

    mels: int = 32
    n_fft: int = 1024
    hop: int = 512


def log_mel(audio: np.ndarray, sample_rate: int, spec: MelSpec) -> np.ndarray:
    """(samples, channels) audio -> (frames, mels) float32 log-mel power of the channels' mean, in units of
    10 dB (re 1.0, floored at -100 dB): most values lie in [-5, 1]."""
    import librosa

    mono = np.asarray(audio, np.float32).mean(axis=-1)
    power = librosa.feature.melspectrogram(
        y=mono, sr=sample_rate, n_fft=spec.n_fft, hop_length=spec.hop, n_mels=spec.mels
    )
    return (librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None).T / 10.0).astype(np.float32)


class CaptionedClips:
    """`count` clips of the world (frames and caption), rendered once; with `mel`, also each clip's
    log-mel spectrogram, `audio` (count, frames, mels) float32 (None without), each band standardised
    by its mean and standard deviation over all the clips' frames (as AST normalises its inputs). With
    `misworded` in a world with hidden acoustics, `misworded` holds each clip's captions that name one
    hidden property wrong (`acoustics.misworded`; None otherwise)."""

    def __init__(
        self, world: WorldConfig, seed: int, count: int, mel: MelSpec | None = None, misworded: bool = False
    ):
        self.world = world
        clips = [make_clip(world, seed, i) for i in range(count)]
        self.frames = [c.frames for c in clips]
        self.captions = [c.annotation["caption"] for c in clips]
        self.misworded = None
        if misworded and world.hidden_acoustics:
            self.misworded = [acoustics.misworded(c.annotation) for c in clips]
        self.audio = None
        if mel is not None:
            audio = np.stack([log_mel(c.audio, world.sample_rate, mel) for c in clips])
            mean, std = audio.mean(axis=(0, 1)), audio.std(axis=(0, 1))
            self.audio = ((audio - mean) / np.maximum(std, 1e-3)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.captions)


def captioned_batch(
    source: CaptionedClips,
    tokens: np.ndarray,
    batch: int,
    seed: int,
    step: int,
    misworded: np.ndarray | None = None,
) -> dict:
    """Batch number `step`: {'image': (batch, H, W, 3) uint8, 'tokens': (batch, length) int32}, each row
    a different clip, its frame drawn uniformly from the clip; when the clips keep their log-mel
    spectrograms, also 'audio' (batch, frames, mels) float32, the rows' whole clips; with `misworded`
    (clips, variants, length) token ids, also 'misworded' (batch, length), one of the row's clip's drawn
    uniformly."""
    rng = np.random.default_rng([seed, step])
    picks = rng.choice(len(source), batch, replace=False)
    images = [source.frames[i][rng.integers(source.frames[i].shape[0])] for i in picks]
    out = {"image": np.stack(images), "tokens": tokens[picks]}
    if source.audio is not None:
        out["audio"] = source.audio[picks]
    if misworded is not None:
        out["misworded"] = misworded[picks, rng.integers(misworded.shape[1], size=batch)]
    return out


def captioned_dataset(
    source_fn: Callable[[], tuple[CaptionedClips, np.ndarray, np.ndarray | None]],
    batch: int,
    seed: int,
    shard_index: int,
    shard_count: int,
) -> grain.DatasetIterator:
    """A checkpointable iterator of this process's batches; `source_fn` gives the clips, their
    captions' token ids (len(clips), length) and their misworded captions' (len(clips), variants,
    length) or None."""
    source, tokens, misworded = source_fn()
    ds = grain.MapDataset.range(2**40)[shard_index::shard_count]
    ds = ds.map(lambda step: captioned_batch(source, tokens, batch, seed, int(step), misworded))
    return iter(ds.to_iter_dataset())
