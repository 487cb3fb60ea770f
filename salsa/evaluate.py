"""Evaluation of a pipeline checkpoint on held-out synthetic-world clips (paper §4, Table 1-2, Fig. 5-6).

    python -m salsa.evaluate --checkpoint DIR --split test --steps 1,2,4,8,32 --out OUT \
        [--compare FLOW_DIR] [--guided BAKED_DIR] [--clips 32] [--long-clips 4] [--long-seconds 60] \
        [--seed 0]

Writes OUT/metrics.md, OUT/metrics.json and four PNG plots (salsa/eval_report.py): metrics against
sampling steps (Fig. 5 left), against the position in long clips for iterative extension and one-shot
generation (Fig. 5 right), against the length of a ground-truth reference (Fig. 6), and shortcut
against flow-only training at equal steps (Table 2, with --compare), and a generator with guidance baked
into training at one branch per step against the checkpoint's CFG at two (with --guided; quality and
sampling time at each of `guided_steps`). Every clip comes with the world's
exact events, so onsets and materials are scored against ground truth (docs/evaluation.md). Generated
audio is cached under OUT/.cache, so a rerun after an interruption resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy.special import log_softmax

from data_pipelines.media import pick_frames, resize
from data_pipelines.synthetic import WorldConfig, make_clip, material_probe
from data_pipelines.synthetic.builder import SPLIT_SEEDS
from salsa.inference import long_form
from salsa.inference import pipeline as pipeline_lib
from salsa.metrics import bootstrap, classifier, desync, frechet, onsets, swsd
from salsa.sampling import guidance as guidance_lib
from salsa.sampling.euler import check_steps

SPLITS = ("test", "validation")  # the builder's held-out splits; "train" shares seed 0 with training
LONG_FIRST = 100_000  # long clips are indices LONG_FIRST.. of the split's seed, apart from window clips
MIN_GENERATED_S = 0.5  # a reference must leave at least this much of the window to generate
MATERIAL_TEMPERATURE_DB = 5.0  # softmax(-distance / T) over the material probe's centroids
EMBED_HOP = 4  # sync-tower embeddings every snippet / EMBED_HOP for the Fréchet distance
EMBED_CHUNK = 32


class EvalError(ValueError):
    """Bad evaluation input (settings, checkpoints, output folder); one sentence naming it."""


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What to evaluate. cfg / fixed_steps None: the pipeline's config.sampling values. fixed_steps is
    the step count of the long-clip and reference experiments; segment_seconds the segment length of
    the long-clip plot; batch the clips per generator call; guided_steps the step counts of the
    baked-guidance comparison; timing_repeats the timed sampling runs per step count there (best kept)."""

    split: str = "test"
    steps: tuple[int, ...] = (1, 2, 4, 8, 32)
    clips: int = 32
    long_clips: int = 4
    long_seconds: float = 60.0
    reference_seconds: tuple[float, ...] = (0.5, 1.0, 2.0)
    cfg: float | None = None
    seed: int = 0
    fixed_steps: int | None = None
    segment_seconds: float = 10.0
    batch: int = 16
    guided_steps: tuple[int, ...] = (1, 2, 4, 8)
    timing_repeats: int = 3

    def __post_init__(self):
        object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        object.__setattr__(self, "guided_steps", tuple(int(s) for s in self.guided_steps))
        object.__setattr__(self, "reference_seconds", tuple(float(r) for r in self.reference_seconds))

    def check(self) -> None:
        """EvalError naming the first setting outside what is accepted."""
        checks = [
            ("split", self.split in SPLITS, f"one of {', '.join(SPLITS)}"),
            ("steps", bool(self.steps) and min(self.steps) >= 1, "one or more step counts >= 1"),
            ("clips", self.clips >= 2, "at least 2 (Fréchet distance and IS need two clips)"),
            ("long_clips", self.long_clips >= 0, "0 (no long-clip experiment) or more"),
            ("long_seconds", 2.0 <= self.long_seconds <= 120.0, "between 2 and 120 (the world's range)"),
            ("reference_seconds", all(r > 0 for r in self.reference_seconds), "lengths > 0 s"),
            ("cfg", self.cfg is None or self.cfg >= 0, "a guidance scale >= 0"),
            ("fixed_steps", self.fixed_steps is None or self.fixed_steps >= 1, "a step count >= 1"),
            ("segment_seconds", self.segment_seconds > 0, "a length > 0 s"),
            ("batch", self.batch >= 1, "at least 1"),
            ("guided_steps", bool(self.guided_steps) and min(self.guided_steps) >= 1, "step counts >= 1"),
            ("timing_repeats", self.timing_repeats >= 1, "at least 1"),
        ]
        for name, ok, accepted in checks:
            if not ok:
                raise EvalError(f"{name}={getattr(self, name)!r} is not accepted; use {accepted}.")


# ------------------------------------------------------------------------------------------ test clips


@dataclasses.dataclass
class TestClip:
    """A held-out clip at the pipeline's geometry: frames8 / frames24 (T, H, W, 3) uint8 sized for
    SigLIP and the sync encoder, ground-truth audio (samples, channels), the world's annotation."""

    index: int
    frames8: np.ndarray
    frames24: np.ndarray
    audio: np.ndarray
    annotation: dict
    seconds: float
    fps: float
    sample_rate: int
    memo: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)  # ground-truth features

    def section(self, start_s: float) -> TestClip:
        """The clip from `start_s` on, as a clip of its own (frames, audio and events shifted)."""
        a, f = round(start_s * self.sample_rate), round(start_s * self.fps)
        events = [
            {**e, "time": e["time"] - start_s, "sample": e["sample"] - a}
            for e in self.annotation["events"]
            if e["time"] >= start_s
        ]
        return dataclasses.replace(
            self,
            frames8=self.frames8[round(start_s * len(self.frames8) / self.seconds) :],
            frames24=self.frames24[f:],
            audio=self.audio[a:],
            annotation={**self.annotation, "events": events, "duration": self.seconds - start_s},
            seconds=self.seconds - start_s,
            memo={},
        )


def world_seed(split: str) -> int:
    """The synthetic world's seed of a split, as data_pipelines/synthetic/builder.py defines it."""
    return SPLIT_SEEDS[split]


def test_clip(p: pipeline_lib.Pipeline, split: str, index: int, seconds: float) -> TestClip:
    """Clip `index` of the split's world seed, rendered at the checkpoint's rates and frame sizes (the
    sync encoder's size, 8 fps frames picked and resized for SigLIP as extraction does)."""
    v = p.config.video
    (size8, _), (size24, _) = p.frame_sizes
    world = WorldConfig(
        seconds=max(2.0, seconds),  # the world renders at least 2 s; shorter clips are cut from it
        fps=v.sync_fps,
        height=size24,
        width=size24,
        sample_rate=p.sample_rate,
        channels=p.channels,
    )
    clip = make_clip(world, world_seed(split), index)
    n24, n = round(seconds * v.sync_fps), round(seconds * p.sample_rate)
    frames24 = clip.frames[:n24]
    frames8 = pick_frames(frames24, v.sync_fps, v.semantic_fps, round(n24 * v.semantic_fps / v.sync_fps))
    events = [e for e in clip.annotation["events"] if e["time"] < seconds]
    return TestClip(
        index=index,
        frames8=resize(frames8, size8),
        frames24=frames24,
        audio=clip.audio[:n],
        annotation={**clip.annotation, "events": events, "duration": seconds},
        seconds=seconds,
        fps=v.sync_fps,
        sample_rate=p.sample_rate,
    )


# ------------------------------------------------------------------------------------------ generation


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
) -> list[np.ndarray]:
    """(samples, channels) audio per clip. Clip i's noise comes from fold_in(key(seed), clip index), so
    step counts, checkpoints and batches see the same noise. reference_s > 0: the clip's first
    reference_s seconds of ground-truth audio are given as clean reference from 0 s."""
    geo = long_form.geometry(p.config, window_s)
    inputs = _inputs(p, clips, seed, reference_s)
    events = long_form.run(p, inputs, geo=geo, steps=steps, cfg=cfg, batch=batch)
    pieces: list[list[np.ndarray]] = [[] for _ in clips]
    for i, audio, _, _ in pipeline_lib.decode_windows(p, events, geo):
        pieces[i].append(audio)
    return [np.concatenate(a) for a in pieces]


def _inputs(p, clips: Sequence[TestClip], seed: int, reference_s: float = 0.0) -> list[long_form.Clip]:
    inputs = []
    for c in clips:
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
) -> float:
    """Wall seconds per clip of the generator's sampling loop alone (no encoders, no VAE) over the
    first `batch` clips in one call: compiled by a first, untimed run, then the best of `repeats`."""
    inputs = _inputs(p, clips[:batch], seed)
    geo = long_form.geometry(p.config)
    best = math.inf
    for i in range(repeats + 1):
        timings: dict[str, float] = {}
        for _ in long_form.run(p, inputs, geo=geo, steps=steps, cfg=cfg, batch=batch, timings=timings):
            pass
        if i:
            best = min(best, timings["network"])
    return best / len(inputs)


class Cache:
    """Generated audio under OUT/.cache, one .npz per part, named by a hash of what made it."""

    def __init__(self, out: str, checkpoint_signature: str):
        self.folder, self.signature = os.path.join(out, ".cache"), checkpoint_signature

    def get_or_make(self, spec: dict, make) -> list[np.ndarray]:
        key = hashlib.sha256(json.dumps([self.signature, spec], sort_keys=True).encode()).hexdigest()[:20]
        path = os.path.join(self.folder, f"{spec['part']}-{key}.npz")
        if os.path.isfile(path):
            with np.load(path) as f:
                return [f[f"a{i}"] for i in range(len(f.files))]
        audio = make()
        os.makedirs(self.folder, exist_ok=True)
        fd, temp = tempfile.mkstemp(suffix=".npz", dir=self.folder)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{f"a{i}": a for i, a in enumerate(audio)})
        os.chmod(temp, 0o644)
        os.replace(temp, path)
        return audio


def checkpoint_signature(directory: str) -> str:
    """Changes when the checkpoint's description or generator parameters change."""
    h = hashlib.sha256()
    with open(os.path.join(directory, pipeline_lib.FILE), "rb") as f:
        h.update(f.read())
    gen = os.path.join(directory, pipeline_lib.NAMES["generator"], "params.npz")
    st = os.stat(gen)
    h.update(f"{os.path.realpath(gen)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------ scoring


@nnx.jit
def _audio_embeddings(model: nnx.Module, audio: jax.Array) -> jax.Array:
    return model.audio_features(audio).mean(axis=1)


def sync_embeddings(
    sync_model: nnx.Module, audio: Sequence[np.ndarray], sample_rate: int
) -> list[np.ndarray]:
    """(snippets, width) embeddings per clip of audio (samples, channels) by the sync model's audio
    tower: its 0.667 s snippets every snippet / 4, each time-averaged; audio shorter than a snippet is
    zero-padded to one. The Fréchet distance's embedding (as FAD pools VGGish's 0.96 s frames). All
    clips' snippets go through the model together, `EMBED_CHUNK` per call."""
    c = sync_model.config
    length = c.snippet_samples
    hop = max(1, length // EMBED_HOP)
    pieces, counts = [], []
    for clip in audio:
        y = desync.model_audio(sync_model, clip, sample_rate)
        y = np.pad(y, (0, max(0, length - y.size)))
        starts = range(0, y.size - length + 1, hop)
        pieces += [y[s : s + length] for s in starts]
        counts.append(len(starts))
    x = np.stack(pieces)
    x = np.concatenate([x, np.zeros((-len(x) % EMBED_CHUNK, length), np.float32)])
    out = np.concatenate(
        [
            np.asarray(_audio_embeddings(sync_model, jnp.asarray(x[i : i + EMBED_CHUNK])))
            for i in range(0, len(x), EMBED_CHUNK)
        ]
    )
    return np.split(out[: len(pieces)], np.cumsum(counts)[:-1])


def material_logits(audio: np.ndarray, sample_rate: int, probe: material_probe.MaterialProbe) -> np.ndarray:
    """(materials,) log class probabilities of a clip by the material probe: at every onset detected
    in it, softmax(-distance to each material's centroid / 5 dB) of its 30 ms band features; the clip's
    distribution is the mean over its onsets (uniform with none). The KL / IS classifier."""
    times = onsets.detect_onsets(audio, sample_rate)
    features = material_probe.impact_features(audio, sample_rate, [round(t * sample_rate) for t in times])
    features = features[~np.isnan(features).any(axis=1)]
    k = len(probe.names)
    if not len(features):
        return np.full(k, -math.log(k))
    d = np.linalg.norm(features[:, None, :] - probe.centroids[None], axis=-1)
    probs = np.exp(log_softmax(-d / MATERIAL_TEMPERATURE_DB, axis=1)).mean(axis=0)
    return np.log(np.maximum(probs, 1e-12))


def score(
    generated: Sequence[np.ndarray],
    clips: Sequence[TestClip],
    sync_model: nnx.Module,
    *,
    segments: Sequence[tuple[float, float]] = (),
    with_desync: bool = True,
) -> dict:
    """Every metric of generated audio (one (samples, channels) array per clip) against the clips'
    ground truth: onsets (pooled P/R/F1, mean |offset|, per segment), material accuracy, SWSD (mean over
    clips), Fréchet distance over sync-tower embeddings, KL (ground truth ‖ generated) and IS over the
    material probe, DeSync (None when with_desync is False or a clip is shorter than one snippet).
    Scoring the ground truth itself gives the ceiling: SWSD, FD and KL 0, F1 near 1. With two clips or
    more, "interval" holds each metric's 95% bootstrap interval over clips (salsa/metrics/bootstrap.py)."""
    if len(generated) != len(clips):
        raise ValueError(f"{len(generated)} generated clips for {len(clips)} test clips.")
    sr = clips[0].sample_rate
    probe = material_probe.fit(sr)
    events = [
        onsets.clip_events(g, sr, c.annotation, segments, probe=probe)
        for g, c in zip(generated, clips, strict=True)
    ]
    pooled = onsets.pool_events(events)
    real = [c.audio for c in clips]
    missing = [c for c in clips if "embedding" not in c.memo]
    if missing:  # the ground truth's side is computed once per clip
        for c, e in zip(missing, sync_embeddings(sync_model, [c.audio for c in missing], sr), strict=True):
            c.memo.update(embedding=e, logits=material_logits(c.audio, sr, probe))
    ref_logits = np.stack([c.memo["logits"] for c in clips])
    gen_logits = np.stack([material_logits(g, sr, probe) for g in generated])
    real_per_clip = [c.memo["embedding"] for c in clips]
    gen_per_clip = sync_embeddings(sync_model, generated, sr)
    real_embedded, gen_embedded = np.concatenate(real_per_clip), np.concatenate(gen_per_clip)
    per_clip_swsd = np.array([swsd.swsd(r, g, sr) for r, g in zip(real, generated, strict=True)])
    out = {
        **{k: pooled["onsets"][k] for k in ("precision", "recall", "f1", "mean_abs_offset_s")},
        "onsets": pooled["onsets"]["references"],
        "detected": pooled["onsets"]["estimates"],
        "material_accuracy": pooled["material_accuracy"],
        "material_count": pooled["material_count"],
        "swsd": float(np.mean(per_clip_swsd)),
        "fd": frechet.frechet_distance(real_embedded.astype(np.float64), gen_embedded.astype(np.float64)),
        "kl": classifier.kl_divergence(ref_logits, gen_logits),
        "is": classifier.inception_score(gen_logits)[0],
        "desync": None,
    }
    per_clip_desync = None
    if with_desync and all(len(c.frames24) >= sync_model.config.snippet_frames for c in clips):
        pairs = [(c.frames24, g) for c, g in zip(clips, generated, strict=True)]
        per_clip_desync = desync.desync_per_clip(sync_model, pairs, audio_rate=sr)
        out["desync"] = float(np.mean(per_clip_desync))
    if len(clips) >= 2:
        out["interval"] = bootstrap.intervals(
            bootstrap.ClipParts(
                references=np.array([e.onsets.references for e in events], np.float64),
                estimates=np.array([e.onsets.estimates for e in events], np.float64),
                matched=np.array([e.onsets.matched for e in events], np.float64),
                offset_sum=np.array([e.onsets.abs_offset_sum for e in events], np.float64),
                material_correct=np.array(
                    [e.material_accuracy * e.material_count if e.material_count else 0.0 for e in events]
                ),
                material_count=np.array([e.material_count for e in events], np.float64),
                swsd=per_clip_swsd,
                kl=classifier.kl_per_clip(ref_logits, gen_logits),
                gen_logits=gen_logits,
                real_embeddings=real_per_clip,
                gen_embeddings=gen_per_clip,
                desync=per_clip_desync,
            )
        )
    if segments:
        out["segments"] = [
            {
                "start": float(a),
                "end": float(b),
                "f1": s["f1"],
                "onsets": s["references"],
                "swsd": segment_swsd(real, generated, sr, a, b),
            }
            for (a, b), s in zip(segments, pooled["segments"], strict=True)
        ]
    return out


def segment_swsd(real, generated, sample_rate: int, start: float, end: float) -> float:
    a, b = round(start * sample_rate), round(end * sample_rate)
    pairs = zip(real, generated, strict=True)
    return float(np.mean([swsd.swsd(r[a:b], g[a:b], sample_rate) for r, g in pairs]))


# ------------------------------------------------------------------------------------------ evaluate


def _load(directory, what: str) -> pipeline_lib.Pipeline:
    try:
        return pipeline_lib.load(directory)
    except pipeline_lib.PipelineError as e:
        raise EvalError(f"{what}: {e}") from None


def _check_out(out: str) -> None:
    out = os.path.abspath(out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise EvalError(f"--out {out}: exists and is not a folder; give a folder to write the results in.")
    parent = out
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise EvalError(f"--out {out}: cannot be created, {parent} is not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EvalError(f"--out {out}: {parent} is not writable; give a folder you can write in.")


def _geometry(p: pipeline_lib.Pipeline) -> dict:
    c = p.config
    return {
        "sample_rate": p.sample_rate,
        "channels": p.channels,
        "window_s": float(c.window_s),
        "context_s": float(c.context_s),
        "semantic_fps": float(c.video.semantic_fps),
        "sync_fps": float(c.video.sync_fps),
        "frame_sizes": [list(s) for s in p.frame_sizes],
    }


def evaluate(checkpoint, out, *, compare=None, guided=None, settings: EvalSettings = EvalSettings()) -> dict:
    """checkpoint: a pipeline checkpoint dir (salsa/inference/pipeline.py format). compare: optional second
    pipeline checkpoint trained flow-only (objective.sc_fraction = 0) for Table 2 in miniature. guided:
    optional pipeline checkpoint trained with guidance baked in (objective.sc_guidance > 0), sampled at
    its default (one branch per step) against `checkpoint` at its CFG scale (two branches).
    Writes out/metrics.md, out/metrics.json and PNG plots; returns the metrics.json dict.
    Re-running with the same arguments after an interruption reuses the generated audio of finished
    parts (out/.cache). EvalError (nothing written) on bad input."""
    from salsa import eval_report

    start_time = time.perf_counter()
    settings.check()
    checkpoint, out = os.fspath(checkpoint), os.path.abspath(os.fspath(out))
    _check_out(out)
    flow = None if compare is None else _load(os.fspath(compare), "--compare")
    baked = None if guided is None else _load(os.fspath(guided), "--guided")
    p = _load(checkpoint, "--checkpoint")
    steps, cfg = p.sampling(settings.fixed_steps, settings.cfg)
    grid = p.config.objective.grid
    for s in (*settings.steps, steps, *(settings.guided_steps if baked is not None else ())):
        try:
            check_steps(s, grid)
        except ValueError as e:
            raise EvalError(f"--steps: {e}") from None
    for flag, other, path in (("--compare", flow, compare), ("--guided", baked, guided)):
        if other is not None and _geometry(other) != _geometry(p):
            raise EvalError(
                f"{flag} {path}: its audio/video geometry {_geometry(other)} differs from the "
                f"checkpoint's {_geometry(p)}; compare checkpoints made for the same data."
            )
    if baked is not None and not guidance_lib.baked(baked.config):
        raise EvalError(
            f"--guided {guided}: its generator was trained without guidance baked in "
            "(objective.sc_guidance is 0); give a checkpoint trained with objective.sc_guidance > 0."
        )
    os.makedirs(out, exist_ok=True)

    window = float(p.config.window_s)
    seed = world_seed(settings.split)
    log = logging.getLogger(__name__)
    log.info("rendering %d %s clips of %g s (world seed %d)", settings.clips, settings.split, window, seed)
    clips = [test_clip(p, settings.split, i, window) for i in range(settings.clips)]
    common = dict(split=settings.split, clips=settings.clips, seconds=window, seed=settings.seed, cfg=cfg)

    def run(model, name, sig, spec, cfg=cfg, **kw):
        log.info("%s: %s", name, spec)
        cache = Cache(out, sig)
        return cache.get_or_make(
            {"part": name, **common, "cfg": cfg, **spec},
            lambda: generate(model, clips, cfg=cfg, seed=settings.seed, batch=settings.batch, **kw),
        )

    sig = checkpoint_signature(checkpoint)
    snippet = p.sync.config.snippet_frames / p.sync.config.fps
    result = {
        "checkpoint": os.path.abspath(checkpoint),
        "compare": None if compare is None else os.path.abspath(os.fspath(compare)),
        "guided": None if guided is None else os.path.abspath(os.fspath(guided)),
        "settings": {**dataclasses.asdict(settings), "cfg": cfg, "fixed_steps": steps},
        "split": {
            "name": settings.split,
            "world_seed": seed,
            "clip_indices": [0, settings.clips],
            "long_clip_indices": [LONG_FIRST, LONG_FIRST + settings.long_clips],
        },
        "geometry": _geometry(p),
        "embedding": f"sync model audio tower, {snippet:.3g} s snippets every {snippet / EMBED_HOP:.3g} s, "
        "time-averaged",
        "classifier": "material probe over detected onsets (4 materials)",
        "ground_truth": score([c.audio for c in clips], clips, p.sync),
        "steps": {},
    }
    for s in settings.steps:
        audio = run(p, "steps", sig, {"steps": s}, steps=s)
        result["steps"][str(s)] = score(audio, clips, p.sync)

    result["reference"] = {"steps": steps, "lengths": {}, "skipped": []}
    for r in (0.0, *settings.reference_seconds):
        if window - r < MIN_GENERATED_S - 1e-9:
            result["reference"]["skipped"].append(r)
            continue
        audio = run(p, "reference", sig, {"steps": steps, "reference": r}, steps=steps, reference_s=r)
        cut = round(r * p.sample_rate)
        sections = [c.section(r) for c in clips]
        result["reference"]["lengths"][f"{r:g}"] = score([a[cut:] for a in audio], sections, p.sync)

    result["long"] = None
    if settings.long_clips:
        result["long"] = _long(p, settings, steps, cfg, sig, out, log)

    result["compare_steps"] = None
    if flow is not None:
        flow_sig = checkpoint_signature(os.fspath(compare))
        result["compare_steps"] = {}
        for s in settings.steps:
            audio = run(flow, "compare", flow_sig, {"steps": s}, steps=s)
            result["compare_steps"][str(s)] = score(audio, clips, p.sync)  # one sync model for both

    result["guided_steps"] = None
    if baked is not None:
        result["guided_steps"] = _guided(p, baked, guided, settings, clips, cfg, sig, run, log)
    result["seconds"] = time.perf_counter() - start_time
    eval_report.write(out, result)
    return eval_report.jsonable(result)


def _guided(p, baked, guided, settings: EvalSettings, clips, cfg: float, sig: str, run, log) -> dict:
    """Issue 14 part 4: the generator with guidance baked in at its default guidance (one branch per
    step) against the checkpoint with CFG at `cfg` (two branches), at each of settings.guided_steps:
    every metric and the sampling seconds per clip. The CFG side reuses the steps experiment's audio."""
    _, baked_cfg = baked.sampling()
    baked_sig = checkpoint_signature(os.fspath(guided))
    rows = {}
    for s in settings.guided_steps:
        sides = {}
        for name, model, side_cfg, part, side_sig in (
            ("baked", baked, baked_cfg, "guided", baked_sig),
            ("cfg", p, cfg, "steps", sig),
        ):
            audio = run(model, part, side_sig, {"steps": s}, cfg=side_cfg, steps=s)
            log.info("timing %s sampling at %d steps", name, s)
            seconds = sampling_seconds(
                model,
                clips,
                steps=s,
                cfg=side_cfg,
                seed=settings.seed,
                batch=settings.batch,
                repeats=settings.timing_repeats,
            )
            sides[name] = {
                **score(audio, clips, p.sync),
                "cfg": side_cfg,
                "branches": len(guidance_lib.Guidance.uniform(side_cfg).terms()),
                "sampling_seconds_per_clip": seconds,
            }
        rows[str(s)] = sides
    return {
        "baked_scale": float(baked.config.objective.sc_guidance),
        "baked_mix": float(baked.config.objective.get("sc_guidance_mix", 1.0)),
        "timing_clips": min(settings.batch, len(clips)),
        "steps": rows,
    }


def _long(p, settings: EvalSettings, steps: int, cfg: float, sig: str, out: str, log) -> dict:
    """Fig. 5 right: long clips by iterative extension (the config's windows) and by one window over
    the whole clip (positions past the training length), scored per segment."""
    length, seg = settings.long_seconds, min(settings.segment_seconds, settings.long_seconds)
    segments = [(a, min(a + seg, length)) for a in np.arange(0.0, length - 1e-6, seg)]
    log.info("rendering %d long %s clips of %g s", settings.long_clips, settings.split, length)
    clips = [test_clip(p, settings.split, LONG_FIRST + i, length) for i in range(settings.long_clips)]
    cache = Cache(out, sig)
    spec = dict(split=settings.split, clips=settings.long_clips, seconds=length, seed=settings.seed, cfg=cfg)
    res = {"steps": steps, "segment_seconds": seg, "segments": [list(s) for s in segments]}
    for name, window, batch in (("iterative", None, settings.batch), ("one_shot", length, 1)):
        log.info("long clips: %s", name)
        audio = cache.get_or_make(
            {"part": f"long_{name}", **spec, "steps": steps},
            lambda w=window, b=batch: generate(
                p, clips, steps=steps, cfg=cfg, seed=settings.seed, window_s=w, batch=b
            ),
        )
        res[name] = score(audio, clips, p.sync, segments=segments)
    res["ground_truth"] = score([c.audio for c in clips], clips, p.sync, segments=segments)
    return res


# ------------------------------------------------------------------------------------------ CLI


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def _steps(text: str) -> tuple[int, ...]:
    try:
        steps = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--steps {text!r} is not accepted; use comma-separated powers of two, e.g. 1,2,4,8,32."
        ) from None
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m salsa.evaluate", description=__doc__.split("\n")[0])
    d = EvalSettings()
    parser.add_argument("--checkpoint", required=True, help="pipeline checkpoint folder")
    parser.add_argument("--out", required=True, help="folder for metrics.md, metrics.json and plots")
    parser.add_argument("--split", default=d.split, help=f"synthetic-world split: {', '.join(SPLITS)}")
    parser.add_argument("--steps", type=_steps, default=d.steps, help="sampling steps, e.g. 1,2,4,8,32")
    parser.add_argument("--compare", help="flow-only pipeline checkpoint (Table 2 in miniature)")
    parser.add_argument(
        "--guided", help="pipeline checkpoint trained with guidance baked in: 1 branch vs CFG's 2 per step"
    )
    parser.add_argument("--clips", type=int, default=d.clips, help="window-length test clips")
    parser.add_argument("--long-clips", type=int, default=d.long_clips, help="long clips (0: skip)")
    parser.add_argument("--long-seconds", type=float, default=d.long_seconds, help="long clips' length")
    parser.add_argument("--seed", type=int, default=d.seed, help="noise seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    settings = EvalSettings(
        split=args.split,
        steps=args.steps,
        clips=args.clips,
        long_clips=args.long_clips,
        long_seconds=args.long_seconds,
        seed=args.seed,
    )
    try:
        evaluate(args.checkpoint, args.out, compare=args.compare, guided=args.guided, settings=settings)
    except EvalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(os.path.join(args.out, "metrics.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
