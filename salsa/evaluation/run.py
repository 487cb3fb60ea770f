"""An evaluation from start to end: check the input, load the checkpoints, run the experiments, write.

`evaluate(checkpoint, out, compare=..., guided=..., settings=EvalSettings(...))` is what
`python -m salsa.evaluate` and the tiny pipeline's evaluate stage call.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

from data_pipelines.synthetic.heldout import LONG_FIRST, world_seed
from salsa.evaluation import experiments, generation, hidden, report
from salsa.evaluation import targets as targets_lib
from salsa.evaluation.cache import Cache, checkpoint_signature
from salsa.evaluation.settings import EvalError, EvalSettings
from salsa.inference import pipeline as pipeline_lib
from salsa.metrics import embeddings
from salsa.sampling import guidance as guidance_lib
from salsa.sampling.euler import check_steps

log = logging.getLogger(__name__)
DEFAULT_SETTINGS = EvalSettings()


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


def _check(p, settings: EvalSettings, steps: int, others: dict) -> None:
    """EvalError for a step count off the shortcut grid or a comparison checkpoint that cannot be
    compared (other geometry; --guided without guidance baked in). others: {flag: (pipeline, path)}."""
    baked = others.get("--guided", (None, None))[0]
    for s in (*settings.steps, steps, *(settings.guided_steps if baked is not None else ())):
        try:
            check_steps(s, p.config.objective.grid)
        except ValueError as e:
            raise EvalError(f"--steps: {e}") from None
    for flag, (other, path) in others.items():
        if other is not None and _geometry(other) != _geometry(p):
            raise EvalError(
                f"{flag} {path}: its audio/video geometry {_geometry(other)} differs from the "
                f"checkpoint's {_geometry(p)}; compare checkpoints made for the same data."
            )
    if baked is not None and not guidance_lib.baked(baked.config):
        raise EvalError(
            f"--guided {others['--guided'][1]}: its generator was trained without guidance baked in "
            "(objective.sc_guidance is 0); give a checkpoint trained with objective.sc_guidance > 0."
        )


def held_out_world(p: pipeline_lib.Pipeline, settings: EvalSettings) -> dict:
    """The held-out clips' world fields: the checkpoint's training world (its config's data.world), the
    hidden acoustics unless settings.hidden_acoustics says otherwise."""
    world = generation.checkpoint_world(p)
    if settings.hidden_acoustics is not None and settings.hidden_acoustics != world["hidden_acoustics"]:
        fraction = world["hidden_caption_fraction"] if settings.hidden_acoustics else 0.0
        world = {**world, "hidden_acoustics": settings.hidden_acoustics, "hidden_caption_fraction": fraction}
    return world


def evaluate(
    checkpoint,
    out,
    *,
    compare=None,
    guided=None,
    settings: EvalSettings = DEFAULT_SETTINGS,
    targets: str | os.PathLike = targets_lib.DEFAULT,
) -> dict:
    """checkpoint: a pipeline checkpoint dir (salsa/inference/pipeline.py format). compare: optional second
    pipeline checkpoint trained flow-only (objective.sc_fraction = 0) for Table 2 in miniature. guided:
    optional pipeline checkpoint trained with guidance baked in (objective.sc_guidance > 0), sampled at
    its default (one branch per step) against `checkpoint` at its CFG scale (two branches). targets: the
    targets file the report checks (docs/targets.json).
    Writes out/metrics.md, out/metrics.json and PNG plots; returns the metrics.json dict.
    Re-running with the same arguments after an interruption reuses the generated audio of finished
    parts (out/.cache). EvalError (nothing written) on bad input."""
    start_time = time.perf_counter()
    settings.check()
    checkpoint, out = os.fspath(checkpoint), os.path.abspath(os.fspath(out))
    _check_out(out)
    goals = targets_lib.load(targets)
    flow = None if compare is None else _load(os.fspath(compare), "--compare")
    baked = None if guided is None else _load(os.fspath(guided), "--guided")
    p = _load(checkpoint, "--checkpoint")
    steps, cfg = p.sampling(settings.fixed_steps, settings.cfg)
    _check(p, settings, steps, {"--compare": (flow, compare), "--guided": (baked, guided)})
    os.makedirs(out, exist_ok=True)

    shared = inputs(p, Cache(out, checkpoint_signature(checkpoint)), settings)
    world, n_reference, n_text = shared.world, len(shared.reference_clips), len(shared.text_clips)
    try:
        result = metrics(shared, flow, None if flow is None else Cache(out, checkpoint_signature(compare)))
        shared.ahead.close(wait=True)  # every part is scored: nothing runs beside the timed experiment
        if baked is not None:
            baked_cache = Cache(out, checkpoint_signature(guided))
            result["guided_steps"] = experiments.guided(shared, baked, baked_cache)
    finally:
        shared.ahead.close()  # nothing left queued after an error, and the thread ends
    snippet = p.sync.config.snippet_frames / p.sync.config.fps
    result = {
        "checkpoint": os.path.abspath(checkpoint),
        "compare": None if compare is None else os.path.abspath(os.fspath(compare)),
        "guided": None if guided is None else os.path.abspath(os.fspath(guided)),
        "settings": {
            **dataclasses.asdict(settings),
            "cfg": cfg,
            "cfg_audio": p.guidance(cfg, audio=settings.cfg_audio).audio,
            "fixed_steps": steps,
        },
        "split": {
            "name": settings.split,
            "world_seed": world_seed(settings.split),
            "clip_indices": [0, settings.clips],
            "reference_clip_indices": [0, n_reference],
            "text_clip_indices": [0, n_text],
            "long_clip_indices": [LONG_FIRST, LONG_FIRST + settings.long_clips],
        },
        "geometry": _geometry(p),
        "embedding": f"sync model audio tower, {snippet:.3g} s snippets every "
        f"{snippet / embeddings.HOP:.3g} s, time-averaged",
        "classifier": "material probe over detected onsets (4 materials)",
        "world": world,
        **result,
    }
    result["seconds"] = time.perf_counter() - start_time
    report.write(out, result, goals)
    return report.jsonable(result)


def inputs(p: pipeline_lib.Pipeline, cache: Cache, settings: EvalSettings) -> experiments.Shared:
    """What the experiments share for checkpoint `p` (its audio cached in `cache`): the held-out clips of
    its world rendered (the window-length clips, and as many more as the reference and text experiments
    take), the hidden-property probes where that world has hidden acoustics, and the fixed steps and
    guidance scale of `settings` (resolved by the checkpoint's sampling defaults)."""
    steps, cfg = p.sampling(settings.fixed_steps, settings.cfg)
    window, seed = float(p.config.window_s), world_seed(settings.split)
    world = held_out_world(p, settings)
    n_reference = settings.clips if settings.reference_clips is None else settings.reference_clips
    n_text = settings.text_clips if world["hidden_acoustics"] else 0  # the text experiment needs them
    n = max(settings.clips, n_reference, n_text)
    log.info("rendering %d %s clips of %g s (world seed %d)", n, settings.split, window, seed)
    rendered = generation.test_clips(p, settings.split, range(n), window, world)
    probes = hidden.probes(p.sample_rate) if world["hidden_acoustics"] else None
    return experiments.Shared(
        p,
        cache,
        rendered[: settings.clips],
        rendered[:n_reference],
        rendered[:n_text],
        settings,
        steps,
        cfg,
        probes,
        world,
    )


# The experiments of metrics.json's rows, in its order (the guided one, timed, runs apart).
EXPERIMENTS = ("steps", "reference", "text", "long", "compare_steps")


def metrics(
    shared: experiments.Shared,
    flow: pipeline_lib.Pipeline | None = None,
    flow_cache: Cache | None = None,
    names: tuple[str, ...] = EXPERIMENTS,
) -> dict:
    """The metrics rows of the experiments `names` (a row None when not run, compare_steps also without
    `flow`), with the ground truth and the codec: every experiment's parts queued for generation first
    (the codec's decode of the clips, then the experiments in the order of metrics.json), then scored in
    that order while the parts after them are generated (experiments.Ahead). The guided experiment,
    timed, comes after, alone."""
    unknown = sorted(set(names) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiments {unknown}; the experiments are {', '.join(EXPERIMENTS)}.")
    p, clips, probes = shared.pipeline, shared.clips, shared.probes
    coded = shared.ahead.submit(lambda: generation.codec(p, clips))
    queue = {
        "steps": lambda: experiments.steps(shared),
        "reference": lambda: experiments.reference(shared),
        "text": lambda: experiments.text(shared),
        "long": lambda: experiments.long(shared),
        "compare_steps": lambda: experiments.compare(shared, flow, flow_cache),
    }
    runs = [n for n in EXPERIMENTS if n in names and (n != "compare_steps" or flow is not None)]
    pending = {name: queue[name]() for name in runs}
    return {
        "ground_truth": hidden.scored([c.audio for c in clips], clips, shared.sync, probes),
        "codec": hidden.scored(coded.result(), clips, shared.sync, probes),
        # each experiment's audio let go when scored
        **{name: pending.pop(name)() if name in pending else None for name in EXPERIMENTS},
        "guided_steps": None,
    }
