"""Runs a pipeline of stages in one workdir, each in WORKDIR/<stage>, skipping finished ones.

A config with a `stages` section (configs/tiny.py) is a pipeline: `salsa.train` runs config.run (a
comma-separated subset of ORDER; "default", every stage but the OPTIONAL ones; or "all") in order.
Training stages go through salsa.training.loop, which resumes from the newest checkpoint in the stage's
folder; extraction resumes from its progress folder.
A stage that finishes writes WORKDIR/<stage>/done.json (its wall time) and is skipped on later runs, so
killing the command anywhere and running it again finishes the job. At the end the per-stage wall times
are logged as a table and written to WORKDIR/stages.json.

Stages and what they read and write:

    vae             config.stages.vae (task vae)        -> WORKDIR/vae/vae (VAE bundle)
    sync            config.stages.sync (task sync)      -> WORKDIR/sync/export
    siglip          config.stages.siglip (task siglip)  -> WORKDIR/siglip/export (+ tokenizer.json)
    extract         config.stages.extract, with the three exports and the generator's audio/video/features
                                                        -> WORKDIR/extract (record shards, extraction.json)
    generator       the generator config (the top level), data.dir = WORKDIR/extract
                                                        -> WORKDIR/generator/pipeline
    generator_flow  the same with config.stages.generator_flow applied (objective.sc_fraction = 0)
                                                        -> WORKDIR/generator_flow/pipeline
    generator_guided  (optional) the same with config.stages.generator_guided applied
                    (objective.sc_guidance = 4: guidance baked into training)
                                                        -> WORKDIR/generator_guided/pipeline
    evaluate        salsa.evaluation.run.evaluate(generator, compare=generator_flow, guided=generator_guided,
                                            settings=EvalSettings(**config.evaluate)), each comparison
                    when its stage is selected or finished
                                                        -> WORKDIR/eval (metrics.md, metrics.json, plots)

A finished stage whose settings changed is skipped with a note, except evaluate, which runs again (its
audio cache keeps what it already generated): so `--config.run=generator_guided,evaluate` after a default
run adds the baked-guidance comparison to the evaluation.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence

import ml_collections

from salsa import io, malloc
from salsa.training import lock, processes
from salsa.training.setup import BadInput

ORDER = ("vae", "sync", "siglip", "extract", "generator", "generator_flow", "generator_guided", "evaluate")
# Stages that config.run = "default" leaves out (they lengthen the run; "all" or naming them runs them).
OPTIONAL = ("generator_guided",)
# A stage's folder under the workdir, where it differs from its name.
FOLDERS = {"evaluate": "eval"}
# What each stage reads: those stages must run before it or have finished already.
NEEDS = {
    "extract": ("vae", "sync", "siglip"),
    "generator": ("extract",),
    "generator_flow": ("extract",),
    "generator_guided": ("extract",),
    "evaluate": ("generator",),
}
# What each stage waits for when they are run together (NEEDS, and the evaluation's comparisons).
AFTER = {**NEEDS, "evaluate": ("generator", "generator_flow", "generator_guided")}
# Top-level keys of a pipeline config that are not the generator's.
PIPELINE_KEYS = ("workdir", "run", "stages", "evaluate", "parallel_stages")
DONE = "done.json"
PARTIAL = "partial.json"  # seconds spent in earlier, interrupted attempts at the stage


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a pipeline: run(folder) does the work in `folder` and may be called again after an
    interruption (it resumes); `settings` (JSON-able) are recorded in done.json. A finished stage is
    skipped, unless its settings changed and `rerun_if_changed`."""

    name: str
    run: Callable[[str], None]
    settings: dict = dataclasses.field(default_factory=dict)
    rerun_if_changed: bool = False
    after: tuple[str, ...] = ()  # stages (if given to the same run) that must finish before this starts


def is_pipeline(config: ml_collections.ConfigDict) -> bool:
    """A config with stages, given no data of its own (data.dir, data.sources or the toy set): runs the
    stages. Given data, the same config trains the generator alone."""
    if "stages" not in config:
        return False
    data = config.get("data", {})
    return not data.get("dir") and not data.get("sources") and not data.get("make_toy_if_missing")


def generator_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The generator's config: `config` without the pipeline's keys (a copy)."""
    out = ml_collections.ConfigDict(config.to_dict())
    for key in PIPELINE_KEYS:
        if key in out:
            del out[key]
    return out


def folder(workdir: str, name: str) -> str:
    return os.path.join(workdir, FOLDERS.get(name, name))


def selected(config: ml_collections.ConfigDict) -> list[str]:
    """config.run as a list of stage names in ORDER; BadInput for an unknown name."""
    run = str(config.get("run", "default")).strip()
    if run == "all":
        return list(ORDER)
    if run == "default":
        return [n for n in ORDER if n not in OPTIONAL]
    names = [n.strip() for n in run.split(",") if n.strip()]
    unknown = [n for n in names if n not in ORDER]
    if unknown or not names:
        raise BadInput(
            f"config.run {run!r} names unknown stage(s) {', '.join(map(repr, unknown))}; "
            f"give 'default', 'all' or a comma-separated subset of {', '.join(ORDER)}."
        )
    return [n for n in ORDER if n in names]


def is_done(workdir: str, name: str) -> bool:
    return os.path.exists(os.path.join(folder(workdir, name), DONE))


def _read_json(path: str, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def run(
    stages: Sequence[Stage],
    workdir: str,
    log: Callable[[str], None] = logging.info,
    parallel: int = 1,
) -> dict[str, dict]:
    """Runs `stages` in workdir/<folder>, skipping those with a done.json; returns and writes
    workdir/stages.json: {name: {"seconds", "skipped", "resumed", "wave_seconds"}} for every stage given
    (wave_seconds: the wall time of the wave the stage ran in, None where it was not measured).

    parallel > 1 runs the stages of a wave (stages that do not wait for each other, processes.waves) at
    once: the first in this process, the others in up to parallel - 1 spawned processes, each process
    taking the next stage nobody has taken when its own ends (each stage's `run` must then pickle). A
    tiny stage alone leaves part of 2 CPU cores idle (compilation and data rendering run on one; two tiny
    generator steps side by side run at 0.87-0.98 steps/s each against 1.59 alone), so side by side they
    finish sooner than in turn. One process of a multi-host job runs them in turn."""
    os.makedirs(workdir, exist_ok=True)
    with lock.hold(workdir):  # one pipeline per workdir; each training stage also locks its folder
        return _run(stages, workdir, log, parallel)


def _run(stages: Sequence[Stage], workdir: str, log: Callable[[str], None], parallel: int) -> dict[str, dict]:
    import jax

    labels = {s.name: f"[{i}/{len(stages)}]" for i, s in enumerate(stages, 1)}
    summary: dict[str, dict] = {}
    alone = parallel == 1 or jax.process_count() > 1
    plan = [[s] for s in stages] if alone else processes.waves(stages)
    for wave in plan:
        pending = [s for s in wave if not _finished(s, workdir, labels[s.name], log, summary)]
        if not pending:
            continue
        start = time.perf_counter()
        jobs = [(s, labels[s.name]) for s in pending]
        # This process runs the wave's first stage; each process, this one included, then takes the next
        # stage nobody has taken when its own ends (processes.Claims).
        claims = processes.Claims(len(jobs), taken=1)
        rest = {k: jobs[k] for k in range(1, len(jobs))}
        children = [
            processes.start(_run_one, rest, claims, workdir) for _ in range(min(parallel - 1, len(rest)))
        ]
        here: int | None = 0
        try:
            while here is not None:
                stage, label = jobs[here]
                summary[stage.name] = _run_one(stage, workdir, label, log)
                here = claims.take()
        except BaseException as e:
            processes.stop(children, interrupted=isinstance(e, KeyboardInterrupt))
            raise
        for child in children:
            child.join()
        failed = []
        for s in pending:
            if s.name in summary:
                continue
            done = _read_json(os.path.join(folder(workdir, s.name), DONE))
            if done is None:
                failed.append(s.name)
            else:
                summary[s.name] = dict(seconds=done["seconds"], skipped=False, resumed=done["resumed"])
        if failed:
            raise processes.StageFailed(
                f"stage(s) {', '.join(failed)} failed in a second process (its log is above); run the same "
                f"command again to resume {'it' if len(failed) == 1 else 'them'}."
            )
        # The wave's wall time, from its start to the end of its last stage, is kept in each of its stages'
        # done.json: with more stages than processes it is longer than its longest stage.
        wall = time.perf_counter() - start
        for s in pending:
            summary[s.name]["wave_seconds"] = wall
            done_path = os.path.join(folder(workdir, s.name), DONE)
            io.write_json(done_path, {**_read_json(done_path), "wave_seconds": wall})
    summary = {s.name: summary[s.name] for s in stages}
    io.write_json(os.path.join(workdir, "stages.json"), summary)
    log(table(summary, [[s.name for s in wave] for wave in plan]))
    return summary


def _finished(stage: Stage, workdir: str, label: str, log, summary: dict) -> bool:
    """Whether the stage is done already (logged and put in summary) and is not to run again."""
    out = folder(workdir, stage.name)
    done = _read_json(os.path.join(out, DONE))
    changed = done is not None and done.get("settings") != json.loads(json.dumps(stage.settings))
    if changed and stage.rerun_if_changed:
        log(f"{label} {stage.name}: finished with other settings; running it again")
        return False
    if done is None:
        return False
    log(f"{label} {stage.name}: done already ({done['seconds']:.0f} s; {out}/{DONE})")
    if changed:
        log(f"  {stage.name} finished with other settings; delete {out} to run it again with these")
    summary[stage.name] = dict(
        seconds=done["seconds"],
        skipped=True,
        resumed=done.get("resumed", False),
        wave_seconds=done.get("wave_seconds"),
    )
    return True


def _run_one(stage: Stage, workdir: str, label: str, log: Callable[[str], None] = logging.info) -> dict:
    """Runs one stage in its folder: done.json when it finishes, partial.json (its time) when it does not."""
    out = folder(workdir, stage.name)
    done_path, partial_path = os.path.join(out, DONE), os.path.join(out, PARTIAL)
    earlier = _read_json(partial_path, {}).get("seconds", 0.0)
    resumed = os.path.isdir(out) and bool(os.listdir(out))
    log(
        f"==== {label} {stage.name} -> {out}"
        + (" (resuming" + (f"; {earlier:.0f} s spent before)" if earlier else ")") if resumed else "")
        + (f" (process {os.getpid()})" if multiprocessing.parent_process() else "")
        + " ===="
    )
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    try:
        stage.run(out)
    except BaseException:  # interrupted or failed: keep the time spent for the final tally
        io.write_json(partial_path, {"seconds": earlier + time.perf_counter() - start})
        raise
    finally:
        malloc.trim()  # what the stage freed goes back to the system, not under the next stage's peak
    seconds = earlier + time.perf_counter() - start
    io.write_json(
        done_path, {"stage": stage.name, "seconds": seconds, "resumed": resumed, "settings": stage.settings}
    )
    if os.path.exists(partial_path):
        os.remove(partial_path)
    log(f"==== {stage.name} done in {seconds:.0f} s ====")
    return dict(seconds=seconds, skipped=False, resumed=resumed)


def table(summary: dict[str, dict], waves: Sequence[Sequence[str]] | None = None) -> str:
    """The per-stage wall times as a text table (a skipped stage shows its time from when it ran). The
    total is the sum over `waves` (stage names that ran side by side; None: each stage alone) of each
    wave's wall time: its stages' measured "wave_seconds" (the wave's start to its last stage's end,
    which exceeds its longest stage when it has more stages than processes), or its longest stage where
    that is longer (a stage resumed from an earlier command) or nothing was measured."""
    rows = [f"{'stage':<16}{'wall time':>12}  note"]
    for name, s in summary.items():
        note = "finished earlier" if s["skipped"] else ("resumed" if s["resumed"] else "")
        rows.append(f"{name:<16}{_duration(s['seconds']):>12}  {note}".rstrip())
    waves = [[n] for n in summary] if waves is None else waves
    total = sum(
        max(max(summary[n]["seconds"], summary[n].get("wave_seconds") or 0.0) for n in wave)
        for wave in waves
        if wave
    )
    added = sum(s["seconds"] for s in summary.values())
    note = f"  stages side by side; their times add up to {_duration(added)}" if added > total + 0.5 else ""
    rows.append(f"{'total':<16}{_duration(total):>12}{note}")
    return "\n".join(rows)


def _duration(seconds: float) -> str:
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes}:{sec:02d}"


# The pipeline of configs/tiny.py.

TrainFn = Callable[[ml_collections.ConfigDict, str], None]


def _merge(config: ml_collections.ConfigDict, overrides: dict, where: str) -> None:
    for key, value in overrides.items():
        if key not in config:
            raise BadInput(f"{where}.{key} is not a generator config field.")
        if isinstance(value, dict):
            _merge(config[key], value, f"{where}.{key}")
        else:
            config[key] = value


def _generator_stage_config(config, workdir: str, name: str = "generator"):
    """The generator's config for stage `name`: config.stages.<name> (if any) applied to it."""
    c = generator_config(config)
    c.data.dir = folder(workdir, "extract")
    c.data.make_toy_if_missing = False
    overrides = config.stages.get(name)
    if name != "generator" and overrides:
        _merge(c, overrides.to_dict(), f"config.stages.{name}")
    return c


def _extract_config(config, workdir: str) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict(config.stages.extract.to_dict())
    for section in ("audio", "video", "features"):  # the generator's geometry, whatever the overrides
        c[section] = config[section].to_dict()
    siglip = os.path.join(folder(workdir, "siglip"), "export")
    c.components = dict(
        vae=os.path.join(folder(workdir, "vae"), "vae"),
        siglip=siglip,
        sync=os.path.join(folder(workdir, "sync"), "export"),
        tokenizer=os.path.join(siglip, "tokenizer.json"),
    )
    return c


def _extract(config: ml_collections.ConfigDict, out: str) -> None:
    from tqdm import tqdm

    from data_pipelines.extract import run as extract_run

    with tqdm(desc="extract", unit="clip", dynamic_ncols=True) as bar:
        result = extract_run.extract(config, out, on_clip=lambda clip_id, skip: bar.update(1))
    report = result.report
    logging.info(
        "extracted %d of %d clips, %d skipped", report["written"], report["clips"], len(report["skipped"])
    )
    for s in report["skipped"]:
        logging.warning("skipped %s: %s", s["source"], s["reason"])


def _evaluate_inputs(config: ml_collections.ConfigDict, workdir: str, names: Sequence[str]) -> dict:
    """The evaluate stage's checkpoints (each comparison when its stage is selected or finished) and
    settings, as recorded in its done.json."""

    def checkpoint(stage: str) -> str | None:
        ok = stage in names or is_done(workdir, stage)
        return os.path.join(folder(workdir, stage), "pipeline") if ok else None

    return dict(
        checkpoint=checkpoint("generator"),
        compare=checkpoint("generator_flow"),
        guided=checkpoint("generator_guided"),
        settings=config.evaluate.to_dict(),
    )


def _evaluate(inputs: dict, out: str) -> None:
    from salsa.evaluation import run
    from salsa.evaluation import settings as evaluation_settings

    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in inputs["settings"].items()}
    run.evaluate(
        inputs["checkpoint"],
        out,
        compare=inputs["compare"],
        guided=inputs["guided"],
        settings=evaluation_settings.EvalSettings(**settings),
    )


def tiny_pipeline(
    config: ml_collections.ConfigDict, workdir: str, train: TrainFn, check: TrainFn
) -> list[Stage]:
    """The stages config.run selects, checked before any runs: each stage's config (check(config,
    folder) raises BadInput), and that what a stage reads is selected before it or finished already."""
    names = selected(config)
    for name in names:
        missing = [n for n in NEEDS.get(name, ()) if n not in names and not is_done(workdir, n)]
        if missing:
            raise BadInput(
                f"stage {name!r} needs {', '.join(missing)}, neither selected in config.run nor finished "
                f"in {workdir}; add {'it' if len(missing) == 1 else 'them'} to config.run."
            )
    if "evaluate" in names and importlib.util.find_spec("salsa.evaluate") is None:
        raise BadInput(
            "stage 'evaluate' needs salsa/evaluate.py, which this checkout lacks; leave it out of config.run."
        )

    # Plain copies (references resolved), which pickle: a stage may run in a second process.
    stage_configs: dict[str, ml_collections.ConfigDict] = {}
    for name in ("vae", "sync", "siglip"):
        stage_configs[name] = ml_collections.ConfigDict(config.stages[name].to_dict())
    for name in ("generator", "generator_flow", "generator_guided"):
        stage_configs[name] = _generator_stage_config(config, workdir, name)
    stages = []
    for name in names:
        after = AFTER.get(name, ())
        if name == "extract":
            c = _extract_config(config, workdir)
            stages.append(Stage(name, functools.partial(_extract, c), settings=c.to_dict(), after=after))
        elif name == "evaluate":
            inputs = _evaluate_inputs(config, workdir, names)
            run_it = functools.partial(_evaluate, inputs)
            stages.append(Stage(name, run_it, settings=inputs, rerun_if_changed=True, after=after))
        else:
            c = stage_configs[name]
            check(c, folder(workdir, name))
            settings = json.loads(c.to_json_best_effort())
            stages.append(Stage(name, functools.partial(train, c), settings=settings, after=after))
    return stages
