"""Audio for held-out clips from a pipeline checkpoint, and the time its sampling loop takes.

Clip i's noise comes from fold_in(key(seed), clip index), so step counts, checkpoints and batches see
the same noise and the rows of a table differ only in what they compare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np

from data_pipelines.synthetic.heldout import ClipGeometry, TestClip, test_clip, world_settings
from salsa.inference import codec as vae_codec
from salsa.inference import long_form
from salsa.inference import pipeline as pipeline_lib


def clip_geometry(p: pipeline_lib.Pipeline) -> ClipGeometry:
    """The rates and frame sizes of the checkpoint's encoders, to render held-out clips at."""
    v = p.config.video
    (size8, _), (size24, _) = p.frame_sizes
    return ClipGeometry(
        sample_rate=p.sample_rate,
        channels=p.channels,
        sync_fps=float(v.sync_fps),
        semantic_fps=float(v.semantic_fps),
        sync_size=size24,
        semantic_size=size8,
    )


def test_clips(
    p: pipeline_lib.Pipeline, split: str, indices: Sequence[int], seconds: float, world=None
) -> list[TestClip]:
    """Held-out clips `indices` of `split`, `seconds` long, at the checkpoint's geometry, in the world
    `world` (hidden acoustics and shutter, heldout.world_settings; None: the default world)."""
    geometry = clip_geometry(p)
    return [test_clip(geometry, split, i, seconds, world) for i in indices]


test_clips.__test__ = False  # a renderer, not a pytest test


def checkpoint_world(p: pipeline_lib.Pipeline) -> dict:
    """The world the checkpoint was trained in (its config's data.world, heldout.world_settings): the
    one its held-out clips are rendered in."""
    return world_settings(p.config.data.get("world"))


def held_out(p: pipeline_lib.Pipeline, clips: int, split: str = "test") -> list[TestClip]:
    """The first `clips` clips of `split` in the checkpoint's world, one window long (the evaluation's)."""
    return test_clips(p, split, range(clips), float(p.config.window_s), checkpoint_world(p))


def generate(
    p: pipeline_lib.Pipeline,
    clips: Sequence[TestClip],
    *,
    steps: int,
    cfg: float,
    seed: int,
    window_s: float | None = None,
    reference_s: float = 0.0,
    batch: int = 16,
    texts: Sequence[str] | None = None,
    cfg_audio: float | None = None,
) -> list[np.ndarray]:
    """(samples, channels) audio per clip, in windows of window_s (None: the config's; long clips are
    extended window by window). reference_s > 0: the clip's first reference_s seconds of ground-truth
    audio are given as clean reference from 0 s. texts: a prompt per clip (None: no text). cfg: the
    video and text guidance scale; cfg_audio: the reference's (None: the config's; p.guidance)."""
    geo = long_form.geometry(p.config, window_s)
    inputs = _inputs(p, clips, seed, reference_s, texts)
    guidance = p.guidance(cfg, audio=cfg_audio)
    events = long_form.run(p, inputs, geo=geo, steps=steps, guidance=guidance, batch=batch)
    pieces: list[list[np.ndarray]] = [[] for _ in clips]
    for i, audio, _, _ in pipeline_lib.decode_windows(p, events, geo):
        pieces[i].append(audio)
    return [np.concatenate(a) for a in pieces]


def codec(p: pipeline_lib.Pipeline, clips: Sequence[TestClip]) -> list[np.ndarray]:
    """Each clip's ground-truth audio encoded and decoded by the checkpoint's VAE: the codec's ceiling."""
    out = []
    for c in clips:
        audio = np.asarray(c.audio, np.float32)
        decoded = vae_codec.decode(p.vae, vae_codec.encode(p.vae, audio))[: len(audio)]
        out.append(np.pad(decoded, ((0, len(audio) - len(decoded)), (0, 0))))
    return out


def _inputs(
    p, clips: Sequence[TestClip], seed: int, reference_s: float = 0.0, texts: Sequence[str] | None = None
) -> list[long_form.Clip]:
    inputs = []
    for i, c in enumerate(clips):
        ref = None
        if reference_s > 0:
            ref = p.reference_latents(c.audio[: round(reference_s * c.sample_rate)])
        inputs.append(
            long_form.Clip(
                frames8=c.frames8,
                frames24=c.frames24,
                key=jax.random.fold_in(jax.random.key(seed), c.index),
                seconds=c.seconds,
                reference=ref,
                text=None if texts is None else p.text_features(texts[i]),
            )
        )
    return inputs


def sampling_seconds(
    p: pipeline_lib.Pipeline,
    clips: Sequence[TestClip],
    *,
    steps: int,
    cfg: float,
    seed: int,
    batch: int,
    repeats: int = 3,
    cfg_audio: float | None = None,
) -> float:
    """Wall seconds per clip of the generator's sampling loop alone (no encoders, no VAE) over the
    first `batch` clips in one call: compiled by a first, untimed run, then the best of `repeats`."""
    inputs = _inputs(p, clips[:batch], seed)
    geo = long_form.geometry(p.config)
    guidance = p.guidance(cfg, audio=cfg_audio)
    best = math.inf
    for i in range(repeats + 1):
        timings: dict[str, float] = {}
        for _ in long_form.run(
            p, inputs, geo=geo, steps=steps, guidance=guidance, batch=batch, timings=timings
        ):
            pass
        if i:
            best = min(best, timings["network"])
    return best / len(inputs)
