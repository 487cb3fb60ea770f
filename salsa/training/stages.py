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
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable, Sequence

import ml_collections

from salsa import io
from salsa.training import lock
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
# Top-level keys of a pipeline config that are not the generator's.
PIPELINE_KEYS = ("workdir", "run", "stages", "evaluate")
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


def run(stages: Sequence[Stage], workdir: str, log: Callable[[str], None] = logging.info) -> dict[str, dict]:
    """Runs `stages` in order in workdir/<folder>, skipping those with a done.json; returns and writes
    workdir/stages.json: {name: {"seconds", "skipped", "resumed"}} for every stage given."""
    os.makedirs(workdir, exist_ok=True)
    with lock.hold(workdir):  # one pipeline per workdir; each training stage also locks its folder
        return _run(stages, workdir, log)


def _run(stages: Sequence[Stage], workdir: str, log: Callable[[str], None]) -> dict[str, dict]:
    summary: dict[str, dict] = {}
    for i, stage in enumerate(stages, 1):
        out = folder(workdir, stage.name)
        done_path, partial_path = os.path.join(out, DONE), os.path.join(out, PARTIAL)
        done = _read_json(done_path)
        changed = done is not None and done.get("settings") != json.loads(json.dumps(stage.settings))
        if changed and stage.rerun_if_changed:
            log(f"[{i}/{len(stages)}] {stage.name}: finished with other settings; running it again")
            done = None
        if done is not None:
            log(f"[{i}/{len(stages)}] {stage.name}: done already ({done['seconds']:.0f} s; {out}/{DONE})")
            if changed:
                log(f"  {stage.name} finished with other settings; delete {out} to run it again with these")
            summary[stage.name] = dict(
                seconds=done["seconds"], skipped=True, resumed=done.get("resumed", False)
            )
            continue
        earlier = _read_json(partial_path, {}).get("seconds", 0.0)
        resumed = os.path.isdir(out) and bool(os.listdir(out))
        log(
            f"==== [{i}/{len(stages)}] {stage.name} -> {out}"
            + (" (resuming" + (f"; {earlier:.0f} s spent before)" if earlier else ")") if resumed else "")
            + " ===="
        )
        os.makedirs(out, exist_ok=True)
        start = time.perf_counter()
        try:
            stage.run(out)
        except BaseException:  # interrupted or failed: keep the time spent for the final tally
            io.write_json(partial_path, {"seconds": earlier + time.perf_counter() - start})
            raise
        seconds = earlier + time.perf_counter() - start
        io.write_json(
            done_path,
            {"stage": stage.name, "seconds": seconds, "resumed": resumed, "settings": stage.settings},
        )
        if os.path.exists(partial_path):
            os.remove(partial_path)
        log(f"==== {stage.name} done in {seconds:.0f} s ====")
        summary[stage.name] = dict(seconds=seconds, skipped=False, resumed=resumed)
    io.write_json(os.path.join(workdir, "stages.json"), summary)
    log(table(summary))
    return summary


def table(summary: dict[str, dict]) -> str:
    """The per-stage wall times as a text table (a skipped stage shows its time from when it ran)."""
    rows = [f"{'stage':<16}{'wall time':>12}  note"]
    for name, s in summary.items():
        note = "finished earlier" if s["skipped"] else ("resumed" if s["resumed"] else "")
        rows.append(f"{name:<16}{_duration(s['seconds']):>12}  {note}".rstrip())
    rows.append(f"{'total':<16}{_duration(sum(s['seconds'] for s in summary.values())):>12}")
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

    stage_configs: dict[str, ml_collections.ConfigDict] = {}
    for name in ("vae", "sync", "siglip"):
        stage_configs[name] = config.stages[name]
    for name in ("generator", "generator_flow", "generator_guided"):
        stage_configs[name] = _generator_stage_config(config, workdir, name)
    stages = []
    for name in names:
        if name == "extract":
            c = _extract_config(config, workdir)
            stages.append(Stage(name, lambda out, c=c: _extract(c, out), settings=c.to_dict()))
        elif name == "evaluate":
            inputs = _evaluate_inputs(config, workdir, names)
            stages.append(
                Stage(name, lambda out, i=inputs: _evaluate(i, out), settings=inputs, rerun_if_changed=True)
            )
        else:
            c = stage_configs[name]
            check(c, folder(workdir, name))
            stages.append(
                Stage(name, lambda out, c=c: train(c, out), settings=json.loads(c.to_json_best_effort()))
            )
    return stages
