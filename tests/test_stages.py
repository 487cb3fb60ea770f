"""The stage runner (salsa/training/stages.py) and the tiny pipeline's wiring (configs/tiny.py).

The runner's tests use stand-in stages (functions that write files), and the wiring tests stand-in
train/check functions that record what they are given, so they take seconds; the slow test at the end
runs every real stage with minimal sizes through `python -m salsa.train --config=configs/tiny.py`."""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from bench import tiny_minimal
from configs import generator as generator_sizes
from configs import tiny
from salsa.training import processes, stages
from salsa.training.setup import BadInput
from tests import train_cli


def _counting_stage(name: str, calls: list[str], fail_first: bool = False) -> stages.Stage:
    """Appends its name to calls; with fail_first, the first call leaves a file and is interrupted."""

    def run(out: str) -> None:
        calls.append(name)
        if fail_first and not os.path.exists(os.path.join(out, "half")):
            open(os.path.join(out, "half"), "w").close()
            raise KeyboardInterrupt
        assert not fail_first or os.path.exists(os.path.join(out, "half"))  # resumed in the same folder
        with open(os.path.join(out, "result"), "w") as f:
            f.write(name)

    return stages.Stage(name, run, settings={"steps": 3})


def test_finished_stages_are_skipped_and_an_interrupted_one_resumes(tmp_path, monkeypatch):
    calls: list[str] = []
    pipeline = [
        _counting_stage("vae", calls),
        _counting_stage("extract", calls, fail_first=True),
        _counting_stage("evaluate", calls),
    ]
    trimmed: list[str] = []  # after the stage that ran last, finished or interrupted
    monkeypatch.setattr(stages.malloc, "trim", lambda: trimmed.append(calls[-1]))
    with pytest.raises(KeyboardInterrupt):
        stages.run(pipeline, str(tmp_path))
    assert calls == ["vae", "extract"]
    assert trimmed == ["vae", "extract"]  # each stage hands back what it freed before the next starts
    assert os.path.exists(tmp_path / "vae" / "done.json")
    assert not os.path.exists(tmp_path / "extract" / "done.json")
    assert os.path.exists(tmp_path / "extract" / "partial.json")

    logged: list[str] = []
    summary = stages.run(pipeline, str(tmp_path), log=logged.append)
    assert calls == ["vae", "extract", "extract", "evaluate"]  # vae not again; extract resumed
    assert (tmp_path / "eval" / "result").read_text() == "evaluate"  # the evaluate stage's folder is eval/
    assert summary["vae"]["skipped"] and not summary["extract"]["skipped"] and summary["extract"]["resumed"]
    assert not os.path.exists(tmp_path / "extract" / "partial.json")
    with open(tmp_path / "stages.json") as f:
        assert json.load(f) == summary
    assert logged[-1].splitlines()[0].split() == ["stage", "wall", "time", "note"]
    assert [line.split()[0] for line in logged[-1].splitlines()[1:]] == [
        "vae",
        "extract",
        "evaluate",
        "total",
    ]

    stages.run(pipeline, str(tmp_path), log=logged.append)
    assert calls == ["vae", "extract", "extract", "evaluate"]  # everything done: nothing runs


def test_changed_settings_of_a_finished_stage_are_reported(tmp_path):
    calls: list[str] = []
    stages.run([_counting_stage("vae", calls)], str(tmp_path))
    changed = stages.Stage("vae", lambda out: calls.append("again"), settings={"steps": 4})
    logged: list[str] = []
    stages.run([changed], str(tmp_path), log=logged.append)
    assert calls == ["vae"] and any("finished with other settings" in line for line in logged)


def test_a_finished_stage_that_reruns_on_changed_settings_runs_again(tmp_path):
    calls: list[str] = []
    first = stages.Stage(
        "evaluate", lambda out: calls.append("first"), {"guided": None}, rerun_if_changed=True
    )
    stages.run([first], str(tmp_path))
    stages.run([first], str(tmp_path))
    assert calls == ["first"]  # same settings: skipped
    second = dataclasses.replace(first, run=lambda out: calls.append("second"), settings={"guided": "g"})
    summary = stages.run([second], str(tmp_path))
    assert calls == ["first", "second"] and not summary["evaluate"]["skipped"]
    with open(tmp_path / "eval" / "done.json") as f:
        assert json.load(f)["settings"] == {"guided": "g"}


def _meeting_stage(name: str, others: tuple[str, ...], fail_once: bool, out: str) -> None:
    """Marks itself started (its process id in NAME.started), waits up to 60 s for each of `others`: for
    OTHER to have started, or for its result with "OTHER/" (so it passes only when the stages overlap as
    asked), fails its first attempt with fail_once, then writes its process id as the result."""
    root = os.path.dirname(out)
    with open(os.path.join(root, f"{name}.started"), "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + 60
    for other in others:
        path = (
            os.path.join(root, other, "result")
            if other.endswith("/")
            else os.path.join(root, f"{other}.started")
        )
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} ran without {other}")
            time.sleep(0.05)
    if fail_once and not os.path.exists(os.path.join(out, "failed")):
        open(os.path.join(out, "failed"), "w").close()
        raise RuntimeError(f"{name} fails once")
    with open(os.path.join(out, "result"), "w") as f:
        f.write(str(os.getpid()))


def test_parallel_stages_run_a_wave_at_once_each_process_taking_the_next_stage_when_free(tmp_path, capfd):
    def stage(name, *others, fail_once=False, after=()):
        run = functools.partial(_meeting_stage, name, others, fail_once)
        return stages.Stage(name, run, settings={"n": 1}, after=after)

    # vae, sync and siglip wait for nothing (one wave); extract comes after them. vae runs here and sync
    # in a second process, and sync ends only after siglip has: siglip must be taken by this process
    # when vae ends, not wait behind sync (which then fails once).
    pipeline = [
        stage("vae", "sync"),
        stage("sync", "vae", "siglip/", fail_once=True),
        stage("siglip"),
        stage("extract", after=("vae", "sync", "siglip")),
    ]
    assert [[s.name for s in w] for w in processes.waves(pipeline)] == [
        ["vae", "sync", "siglip"],
        ["extract"],
    ]
    with pytest.raises(processes.StageFailed, match="stage\\(s\\) sync failed in a second process"):
        stages.run(pipeline, str(tmp_path), parallel=2)
    pids = {n: int((tmp_path / f"{n}.started").read_text()) for n in ("vae", "sync", "siglip")}
    assert pids["vae"] == pids["siglip"] == os.getpid() != pids["sync"]  # two processes; siglip taken here
    logged = capfd.readouterr().err  # the second process logs its stages as this one does
    assert f"==== [2/4] sync -> {tmp_path / 'sync'} (process {pids['sync']}) ====" in logged
    assert "RuntimeError: sync fails once" in logged
    assert (tmp_path / "siglip" / "done.json").exists() and (tmp_path / "sync" / "partial.json").exists()
    assert not (tmp_path / "extract").exists()  # after a failed wave nothing later starts

    summary = stages.run(pipeline, str(tmp_path), parallel=2)
    assert summary["vae"]["skipped"] and summary["siglip"]["skipped"] and summary["sync"]["resumed"]
    assert (tmp_path / "extract" / "result").exists() and not (tmp_path / "sync" / "partial.json").exists()


def test_the_total_is_the_wall_time_of_waves_that_ran_side_by_side():
    summary = {n: dict(seconds=t, skipped=False, resumed=False) for n, t in (("a", 60), ("b", 30), ("c", 10))}
    assert stages.table(summary).splitlines()[-1].split() == ["total", "1:40"]
    last = stages.table(summary, [["a", "b"], ["c"]]).splitlines()[-1]
    assert last.split()[:2] == ["total", "1:10"] and last.endswith("their times add up to 1:40")
    # A measured wave time counts where it is longer than the wave's longest stage (b waited for a
    # process); a stage resumed from an earlier command counts its whole time.
    summary["a"]["wave_seconds"] = summary["b"]["wave_seconds"] = 85
    summary["c"].update(seconds=50, wave_seconds=20)
    assert stages.table(summary, [["a", "b"], ["c"]]).splitlines()[-1].split()[:2] == ["total", "2:15"]


def _sleeping_stage(seconds: float, out: str) -> None:
    time.sleep(seconds)


def test_a_wave_of_more_stages_than_processes_counts_its_wall_time_and_keeps_it_when_skipped(tmp_path):
    # Three one-second stages on two processes: whichever way they are taken, one process runs two of
    # them in turn, so the wave takes at least 2 s while its longest stage takes about 1 s.
    pipeline = [stages.Stage(n, functools.partial(_sleeping_stage, 1.0)) for n in ("vae", "sync", "siglip")]
    summary = stages.run(pipeline, str(tmp_path), parallel=2)
    walls = {s["wave_seconds"] for s in summary.values()}
    assert len(walls) == 1 and min(walls) >= 2.0 > max(s["seconds"] for s in summary.values())
    with open(tmp_path / "sync" / "done.json") as f:
        assert json.load(f)["wave_seconds"] == summary["sync"]["wave_seconds"]

    logged: list[str] = []
    again = stages.run(pipeline, str(tmp_path), log=logged.append, parallel=2)  # all done: nothing runs
    assert all(s["skipped"] for s in again.values())
    assert logged[-1].splitlines()[-1].split()[:2] == ["total", stages._duration(min(walls))]


def test_parallel_stages_must_be_a_whole_number_of_at_least_one():
    config = tiny.get_config()
    assert processes.parallel(config) == config.parallel_stages
    config.parallel_stages = 0
    with pytest.raises(BadInput, match="config.parallel_stages must be a whole number >= 1, got 0"):
        processes.parallel(config)


def test_run_selects_stages_in_pipeline_order_and_rejects_unknown_names():
    config = tiny.get_config()
    assert config.run == "default"
    assert stages.selected(config) == [n for n in stages.ORDER if n != "generator_guided"]
    config.run = "all"
    assert stages.selected(config) == list(stages.ORDER) and "generator_guided" in stages.ORDER
    config.run = "evaluate, generator"
    assert stages.selected(config) == ["generator", "evaluate"]
    config.run = "generator,nonsense"
    with pytest.raises(
        BadInput, match="unknown stage\\(s\\) 'nonsense'; give 'default', 'all' or a comma-separated subset"
    ):
        stages.selected(config)


def _record(tmp_path, run: str):
    """tiny_pipeline(config with run) with stand-in train/check functions: the stages, and the calls."""
    config = tiny.get_config()
    config.run = run
    trained: list[tuple[str, object]] = []
    checked: list[str] = []
    pipeline = stages.tiny_pipeline(
        config,
        str(tmp_path),
        train=lambda c, workdir: trained.append((os.path.basename(workdir), c)),
        check=lambda c, workdir: checked.append(os.path.basename(workdir)),
    )
    return pipeline, trained, checked


def test_tiny_pipeline_gives_each_training_stage_its_config_and_folder(tmp_path):
    pipeline, trained, checked = _record(tmp_path, "vae,sync,siglip,extract,generator,generator_flow")
    assert [s.name for s in pipeline] == ["vae", "sync", "siglip", "extract", "generator", "generator_flow"]
    assert checked == ["vae", "sync", "siglip", "generator", "generator_flow"]  # all before anything runs
    for stage in pipeline:
        if stage.name != "extract":
            stage.run(stages.folder(str(tmp_path), stage.name))
    by_folder = dict(trained)
    assert [by_folder[n].task for n in ("vae", "sync", "siglip", "generator")] == [
        "vae",
        "sync",
        "siglip",
        "generator",
    ]
    generator, flow = by_folder["generator"], by_folder["generator_flow"]
    for c in (generator, flow):
        assert c.data.dir == str(tmp_path / "extract") and not c.data.make_toy_if_missing
        assert not set(stages.PIPELINE_KEYS) & set(c.keys())  # the generator config alone
    assert generator.objective.sc_fraction == 0.25 and flow.objective.sc_fraction == 0.0
    extract = next(s for s in pipeline if s.name == "extract").settings
    assert extract["components"]["vae"] == str(tmp_path / "vae" / "vae")
    assert extract["components"]["tokenizer"] == str(tmp_path / "siglip" / "export" / "tokenizer.json")
    assert extract["features"] == generator_sizes.get_config("tiny").features.to_dict()


def test_the_long_variant_gives_the_generators_3x_the_steps_and_changes_nothing_else():
    default, long = tiny.get_config().to_dict(), tiny.get_config("long").to_dict()
    assert {k for k in default if default[k] != long[k]} == {"workdir", "total_steps"}
    assert (long["workdir"], long["total_steps"]) == ("runs/tiny_long", 3 * default["total_steps"])
    assert long["stages"]["extract"]["source"]["clips"] == 1536  # the default's
    with pytest.raises(ValueError, match="configs/tiny.py takes no argument or one of long; got 'short'"):
        tiny.get_config("short")


def test_the_guided_generator_bakes_guidance_in_and_evaluate_records_what_it_compares(tmp_path):
    for name in ("extract", "generator", "generator_flow"):  # a finished default run
        os.makedirs(tmp_path / name)
        (tmp_path / name / "done.json").write_text('{"seconds": 1.0}')
    pipeline, trained, _ = _record(tmp_path, "generator_guided")
    pipeline[0].run(stages.folder(str(tmp_path), "generator_guided"))
    ((_, guided),) = trained
    assert guided.objective.sc_guidance == tiny.get_config().sampling.cfg == 4.0
    assert guided.objective.sc_fraction == 0.25 and guided.data.dir == str(tmp_path / "extract")

    def evaluate_settings(run):
        (stage,) = [s for s in _record(tmp_path, run)[0] if s.name == "evaluate"]
        assert stage.rerun_if_changed
        return stage.settings

    before = evaluate_settings("evaluate")
    assert before["checkpoint"] == str(tmp_path / "generator" / "pipeline")
    assert before["compare"] == str(tmp_path / "generator_flow" / "pipeline") and before["guided"] is None
    after = evaluate_settings("generator_guided,evaluate")
    assert after["guided"] == str(tmp_path / "generator_guided" / "pipeline")
    assert {**after, "guided": None} == before  # only the comparison changed: evaluate runs again


def test_a_stage_whose_inputs_are_neither_selected_nor_finished_is_rejected_up_front(tmp_path):
    with pytest.raises(BadInput, match="stage 'generator' needs extract, neither selected in config.run"):
        _record(tmp_path, "generator")
    os.makedirs(tmp_path / "extract")
    (tmp_path / "extract" / "done.json").write_text('{"seconds": 1.0}')
    pipeline, _, checked = _record(tmp_path, "generator")
    assert [s.name for s in pipeline] == ["generator"] and checked == ["generator"]


def test_cli_unknown_stage_is_one_line_and_exit_code_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "salsa.train", "--config=configs/tiny.py", f"--workdir={tmp_path}"]
        + ["--config.run=vae,nonsense"],
        cwd=train_cli.REPO,
        env=train_cli.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: config.run 'vae,nonsense' names unknown stage(s) 'nonsense'")
    assert os.listdir(tmp_path) == []  # nothing ran


@pytest.mark.slow
def test_tiny_pipeline_runs_end_to_end_and_its_pipeline_loads(tmp_path):
    """The real stages at minimal sizes (random-ish weights after 2 steps: this tests wiring, not
    quality); evaluate runs when salsa/evaluate.py exists. A second run skips every stage."""
    from salsa.inference import pipeline

    run = ",".join(n for n in stages.ORDER if n != "evaluate" or importlib.util.find_spec("salsa.evaluate"))
    command = [sys.executable, "-m", "salsa.train", "--config=configs/tiny.py", f"--workdir={tmp_path}"]
    command += tiny_minimal.flags() + [f"--config.run={run}"]
    proc = subprocess.run(command, cwd=train_cli.REPO, env=train_cli.env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(tmp_path / "stages.json") as f:
        summary = json.load(f)
    assert list(summary) == run.split(",") and not any(s["skipped"] for s in summary.values())
    loaded = pipeline.load(str(tmp_path / "generator" / "pipeline"))
    assert loaded.config.features.sync_dim == 64
    pipeline.load(str(tmp_path / "generator_flow" / "pipeline"))

    again = subprocess.run(command, cwd=train_cli.REPO, env=train_cli.env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-4000:]
    with open(tmp_path / "stages.json") as f:
        assert all(s["skipped"] for s in json.load(f).values())
