"""The experiments of an evaluation (paper §4, Table 2, Fig. 5-6), each a function over `Shared`.

Each generates what it needs through the checkpoint's audio cache (a part already generated is read
back) and scores it against the clips' ground truth (`scoring.score`), one metrics row per condition.
Calling an experiment queues its parts for generation on `Shared.ahead` (one background thread) and
returns what is left to do, the scoring (`Pending`): `run.evaluate` queues every experiment's parts
first, then scores the experiments in turn while the parts after them are generated. The guided
experiment, which times its sampling, runs alone after them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np
from flax import nnx

from data_pipelines.synthetic import acoustic_probes, acoustics
from data_pipelines.synthetic.heldout import LONG_FIRST, TestClip
from salsa.evaluation import generation, hidden
from salsa.evaluation.cache import Cache
from salsa.evaluation.scoring import score
from salsa.evaluation.settings import MIN_GENERATED_S, EvalSettings
from salsa.inference import pipeline as pipeline_lib

log = logging.getLogger(__name__)


class Ahead:
    """Generation ahead of scoring: what is submitted runs in order on one background thread while the
    caller scores what came before. Sampling keeps XLA's threads busy and scoring is mostly numpy,
    librosa and small sync-model calls, so the two overlap on 2 cores (a row of 128 clips at 8 steps:
    11.1 s against 12.5 s in turn; docs/performance.md). The thread is a daemon, so an interrupted
    evaluation does not wait for the part it is generating. A result is held by its future alone, so
    it is freed once the caller has read and dropped it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue | None = None  # the running thread's own
        self._thread: threading.Thread | None = None

    def submit(self, make: Callable[[], object]) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._thread is None:
                self._queue = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._work, args=(self._queue,), name="evaluation-generation", daemon=True
                )
                self._thread.start()
            self._queue.put((make, future))
        return future

    def close(self, wait: bool = False) -> None:
        """Cancels everything submitted that has not started (the evaluation stopped early) and ends the
        thread after the part it is generating, if any; wait: until then (so that nothing runs beside
        what comes next)."""
        with self._lock:
            thread, work, self._thread, self._queue = self._thread, self._queue, None, None
            if work is None:
                return
            while True:
                try:
                    _, future = work.get_nowait()
                except queue.Empty:
                    break
                future.cancel()
            work.put(None)
        if wait:
            thread.join()

    @staticmethod
    def _work(work: queue.SimpleQueue) -> None:
        while (item := work.get()) is not None:
            make, future = item
            del item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(make())
                except BaseException as e:  # re-raised in the thread that asks for the result
                    future.set_exception(e)
            del make, future  # the result is the caller's to keep or drop


# What an experiment leaves to do once its parts are queued: score them (its metrics rows).
Pending = Callable[[], object]


def in_turn(ahead: Ahead, makes: list[Callable[[], list[np.ndarray]]]) -> Iterator[list[np.ndarray]]:
    """Each make()'s audio in order, every one submitted to `ahead` now; each is let go once the caller
    moves on to the next, and the parts not yet started are cancelled when the caller stops reading
    early (`Ahead.close` cancels them too)."""
    return _results([ahead.submit(m) for m in makes])


def _results(futures: list[concurrent.futures.Future | None]) -> Iterator[list[np.ndarray]]:
    def take(i: int) -> list[np.ndarray]:  # no local of the suspended generator keeps the audio
        future, futures[i] = futures[i], None
        return future.result()

    try:
        for i in range(len(futures)):
            yield take(i)
    finally:
        for f in futures:
            if f is not None:
                f.cancel()


@dataclasses.dataclass(frozen=True)
class Shared:
    """What every experiment shares: the checkpoint and its cache, the window-length clips, the
    reference experiment's clips (settings.reference_clips of them; the same when that is None) and the
    text experiment's (the first settings.text_clips, rendered past the evaluation's when more), the
    settings, the step count and guidance scale of the fixed-step experiments, the hidden-property
    probes (None when the clips' world has no hidden acoustics), and the sync model every row is scored
    with (None: the checkpoint's). FD and DeSync read that model's embedding, so rows compared with each
    other must share it: the flow-only checkpoint's rows are scored with it, and so are several training
    runs' in bench.training_draws."""

    pipeline: pipeline_lib.Pipeline
    cache: Cache
    clips: list[TestClip]
    reference_clips: list[TestClip]
    text_clips: list[TestClip]
    settings: EvalSettings
    steps: int
    cfg: float
    probes: acoustic_probes.AcousticProbes | None = None
    world: dict | None = None  # the clips' world fields: hidden acoustics, shutter (heldout.world_settings)
    sync: nnx.Module | None = None
    ahead: Ahead = dataclasses.field(default_factory=Ahead)

    def __post_init__(self):
        if self.sync is None:
            object.__setattr__(self, "sync", self.pipeline.sync)


def _part(
    shared: Shared,
    model: pipeline_lib.Pipeline,
    cache: Cache,
    part: str,
    *,
    steps: int,
    cfg: float,
    reference_s: float | None = None,
    texts: tuple[str, list[str]] | None = None,
    clips: list[TestClip] | None = None,
) -> Callable[[], list[np.ndarray]]:
    """What makes the window-length clips generated by `model` (cached in `cache` as `part`; `_audio`
    calls it, `in_turn` runs it ahead of the scoring); reference_s: the
    seconds of each clip's own audio given as reference (the reference experiment's parts); texts:
    (name, one prompt per clip) (the text experiment's parts); clips: other clips than shared.clips (the
    reference and text experiments')."""
    s = shared.settings
    clips = shared.clips if clips is None else clips
    spec = {
        "part": part,
        "split": s.split,
        "clips": len(clips),
        "hidden_acoustics": shared.probes is not None,
        "seconds": float(shared.pipeline.config.window_s),
        "seed": s.seed,
        "cfg": cfg,
        "steps": steps,
        # the reference's guidance scale matters only where there is one (guidance.py)
        **(
            {}
            if reference_s is None
            else {"reference": reference_s, "cfg_audio": model.guidance(cfg, audio=s.cfg_audio).audio}
        ),
        **({} if texts is None else {"text": texts[0]}),
    }

    def make() -> list[np.ndarray]:
        log.info("%s: %s", part, spec)
        return cache.get_or_make(
            spec,
            lambda: generation.generate(
                model,
                clips,
                steps=steps,
                cfg=cfg,
                seed=s.seed,
                reference_s=reference_s or 0.0,
                batch=s.batch,
                texts=None if texts is None else texts[1],
                cfg_audio=s.cfg_audio,
            ),
        )

    return make


def _audio(shared: Shared, *args, **kwargs) -> list[np.ndarray]:
    """`_part`'s audio, generated now (in this thread)."""
    return _part(shared, *args, **kwargs)()


def steps(shared: Shared) -> Pending:
    """Fig. 5 left: a metrics row at each of settings.steps, every clip generated in one window."""
    p, ks = shared.pipeline, shared.settings.steps
    audios = in_turn(
        shared.ahead, [_part(shared, p, shared.cache, "steps", steps=k, cfg=shared.cfg) for k in ks]
    )
    return lambda: _step_rows(shared, ks, audios)


def _step_rows(shared: Shared, ks: tuple[int, ...], audios: Iterator[list[np.ndarray]]) -> dict:
    """{str(k): the row of the window-length clips generated at k steps} from `in_turn`'s audio."""
    return {str(k): score(audio, shared.clips, shared.sync) for k, audio in zip(ks, audios, strict=True)}


def reference(shared: Shared) -> Pending:
    """Fig. 6: for each length L in 0 and settings.reference_seconds, the first L s of each clip's own
    audio given as reference, and every length scored on the same section: the window after the longest
    L kept (`scored_from`), so that the rows differ only in what the generator was given, not in how much
    audio each metric sees. Lengths that leave less than MIN_GENERATED_S to generate are listed under
    "skipped". Its clips are shared.reference_clips.

    "other_clip" is the control (two clips or more): the longest reference cut from another clip, the next
    one of the set (cyclically), on the same sections. It is what any reference of this world does to the
    sound, without the clip's own; the clip's own reference against it is what the reference carries of
    the clip (docs/evaluation.md)."""
    p, window = shared.pipeline, float(shared.pipeline.config.window_s)
    clips = shared.reference_clips
    lengths = [r for r in (0.0, *shared.settings.reference_seconds) if window - r >= MIN_GENERATED_S - 1e-9]
    start = max(lengths)
    skipped = [r for r in shared.settings.reference_seconds if r not in lengths]
    out = {
        "steps": shared.steps,
        "clips": len(clips),
        "scored_from": start,
        "lengths": {},
        "skipped": skipped,
    }
    cut = round(start * p.sample_rate)
    sections = [c.section(start) for c in clips]

    def part(name: str, reference_s: float | None, given: list[TestClip]):
        kw = dict(steps=shared.steps, cfg=shared.cfg, reference_s=reference_s, clips=given)
        return _part(shared, p, shared.cache, name, **kw)

    # no reference: the steps experiment's part at these steps (generated once when the clips agree)
    makes = {f"{r:g}": part("steps" if r == 0 else "reference", r or None, clips) for r in lengths}
    if start > 0 and len(clips) >= 2:
        makes["other_clip"] = part("reference_other_clip", start, others_audio(clips))
    audios = in_turn(shared.ahead, list(makes.values()))

    def finish() -> dict:
        for name, audio in zip(makes, audios, strict=True):
            row = hidden.scored([a[cut:] for a in audio], sections, shared.sync, shared.probes)
            (out if name == "other_clip" else out["lengths"])[name] = row
        return out

    return finish


def others_audio(clips: list[TestClip]) -> list[TestClip]:
    """Each clip with the next clip's audio (cyclically) and its own video, index (so its own noise) and
    annotation: the reference experiment's control takes its reference from this audio."""
    donors = clips[1:] + clips[:1]
    return [dataclasses.replace(c, audio=d.audio, memo={}) for c, d in zip(clips, donors, strict=True)]


def text(shared: Shared) -> Pending:
    """The text experiment: its clips (shared.text_clips) generated with each clip's caption without
    ("plain") and with ("hidden") the words naming its hidden acoustics, at the fixed steps, each scored
    with every metric and the hidden-property probes; its rows are None without hidden acoustics or
    clips."""
    p, clips = shared.pipeline, shared.text_clips
    n = len(clips)
    if shared.probes is None or not n:
        return lambda: None
    pairs = [acoustics.captions(c.annotation) for c in clips]
    out = {"steps": shared.steps, "clips": n}
    names = ("plain", "hidden")
    parts = [
        _part(
            shared,
            p,
            shared.cache,
            "text",
            steps=shared.steps,
            cfg=shared.cfg,
            texts=(name, [x[k] for x in pairs]),
            clips=clips,
        )
        for k, name in enumerate(names)
    ]
    audios = in_turn(shared.ahead, parts)

    def finish() -> dict:
        for name, audio in zip(names, audios, strict=True):
            out[name] = hidden.scored(audio, clips, shared.sync, shared.probes)
        out["example"] = {"plain": pairs[0][0], "hidden": pairs[0][1]}
        return out

    return finish


def long(shared: Shared) -> Pending:
    """Fig. 5 right: long clips by iterative extension (the config's windows) and by one window over
    the whole clip (positions past the training length), scored per segment; its rows are None with no
    long clips."""
    s, p = shared.settings, shared.pipeline
    if not s.long_clips:
        return lambda: None
    length, seg = s.long_seconds, min(s.segment_seconds, s.long_seconds)
    segments = [(a, min(a + seg, length)) for a in np.arange(0.0, length - 1e-6, seg)]
    log.info("rendering %d long %s clips of %g s", s.long_clips, s.split, length)
    indices = range(LONG_FIRST, LONG_FIRST + s.long_clips)
    clips = generation.test_clips(p, s.split, indices, length, shared.world)
    spec = dict(split=s.split, clips=s.long_clips, seconds=length, seed=s.seed, cfg=shared.cfg)
    spec["hidden_acoustics"] = shared.probes is not None
    out = {"steps": shared.steps, "segment_seconds": seg, "segments": [list(x) for x in segments]}
    ways = (("iterative", None, s.batch), ("one_shot", length, 1))

    def part(name: str, window: float | None, batch: int):
        def make() -> list[np.ndarray]:
            log.info("long clips: %s", name)
            return shared.cache.get_or_make(
                {"part": f"long_{name}", **spec, "steps": shared.steps},  # no reference: cfg_audio is moot
                lambda: generation.generate(
                    p,
                    clips,
                    steps=shared.steps,
                    cfg=shared.cfg,
                    seed=s.seed,
                    window_s=window,
                    batch=batch,
                    cfg_audio=s.cfg_audio,
                ),
            )

        return make

    audios = in_turn(shared.ahead, [part(*w) for w in ways])

    def finish() -> dict:
        iterative = score(next(audios), clips, shared.sync, segments=segments)
        # the ground truth while the one-shot windows are still being generated
        truth = score([c.audio for c in clips], clips, shared.sync, segments=segments)
        out.update(iterative=iterative, one_shot=score(next(audios), clips, shared.sync, segments=segments))
        out["ground_truth"] = truth
        return out

    return finish


def compare(shared: Shared, flow: pipeline_lib.Pipeline, flow_cache: Cache) -> Pending:
    """Table 2 in miniature: the flow-only checkpoint at each of settings.steps, same clips and noise,
    scored with shared.sync (one embedding for both)."""
    ks = shared.settings.steps
    audios = in_turn(
        shared.ahead, [_part(shared, flow, flow_cache, "compare", steps=k, cfg=shared.cfg) for k in ks]
    )
    return lambda: _step_rows(shared, ks, audios)


def guided(shared: Shared, baked: pipeline_lib.Pipeline, baked_cache: Cache) -> dict:
    """A generator with guidance baked in at its default guidance (one branch per step) against the
    checkpoint with CFG at shared.cfg (two branches), at each of settings.guided_steps: every metric and
    the sampling seconds per clip. The CFG side reuses the steps experiment's audio."""
    s, p = shared.settings, shared.pipeline
    _, baked_cfg = baked.sampling()
    rows = {}
    for k in s.guided_steps:
        sides = {}
        for name, model, cfg, part, cache in (
            ("baked", baked, baked_cfg, "guided", baked_cache),
            ("cfg", p, shared.cfg, "steps", shared.cache),
        ):
            audio = _audio(shared, model, cache, part, steps=k, cfg=cfg)
            log.info("timing %s sampling at %d steps", name, k)
            seconds = generation.sampling_seconds(
                model,
                shared.clips,
                steps=k,
                cfg=cfg,
                seed=s.seed,
                batch=s.batch,
                repeats=s.timing_repeats,
                cfg_audio=s.cfg_audio,
            )
            sides[name] = {
                **score(audio, shared.clips, shared.sync),
                "cfg": cfg,
                "branches": len(model.guidance(cfg).without_reference().terms()),  # no reference here
                "sampling_seconds_per_clip": seconds,
            }
        rows[str(k)] = sides
    return {
        "baked_scale": float(baked.config.objective.sc_guidance),
        "baked_mix": float(baked.config.objective.get("sc_guidance_mix", 1.0)),
        "timing_clips": min(s.batch, len(shared.clips)),
        "steps": rows,
    }
