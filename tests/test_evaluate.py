"""`python -m salsa.evaluate` on the random-weight tiny pipeline (salsa/testing.py).

The weights are random, so the generated audio is noise-like and its scores are meaningless; what is
tested is the mechanics: every file and every metric for every step count, ground truth scored through
the same code as the ceiling, the flow-only comparison, resuming from the cache, and bad input.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from salsa import evaluate as ev
from salsa.inference import pipeline

SETTINGS = ev.EvalSettings(
    steps=(1, 2),
    clips=2,
    long_clips=1,
    long_seconds=4.0,
    reference_seconds=(0.5, 2.0),
    segment_seconds=2.0,
    fixed_steps=2,  # the long-clip and reference runs reuse the 2-step compilation
)
METRICS = ("precision", "recall", "f1", "mean_abs_offset_s", "material_accuracy", "swsd", "fd", "kl", "is")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluated(tiny_pipeline_dir, tmp_path_factory):
    """One evaluation with the checkpoint compared against itself (as the flow-only one)."""
    out = str(tmp_path_factory.mktemp("eval") / "out")
    result = ev.evaluate(tiny_pipeline_dir, out, compare=tiny_pipeline_dir, settings=SETTINGS)
    return out, result


def test_writes_every_metric_for_every_step_and_the_plots(evaluated):
    out, result = evaluated
    with open(os.path.join(out, "metrics.json")) as f:
        saved = json.load(f)
    assert saved == result
    assert set(saved["steps"]) == {"1", "2"}
    for s in ("1", "2"):
        row = saved["steps"][s]
        assert set(METRICS) | {"desync"} <= set(row)
        for k in ("precision", "recall", "f1", "swsd", "fd", "kl", "is"):
            assert isinstance(row[k], float) and math.isfinite(row[k]), (s, k)
        assert 0.0 <= row["desync"] <= 2.0
    assert saved["split"] == {
        "name": "test",
        "world_seed": 2,
        "clip_indices": [0, 2],
        "long_clip_indices": [ev.LONG_FIRST, ev.LONG_FIRST + 1],
    }
    for name in ("steps.png", "long.png", "reference.png", "compare.png"):
        with open(os.path.join(out, name), "rb") as f:
            assert f.read(8) == PNG, name
    with open(os.path.join(out, "metrics.md")) as f:
        md = f.read()
    assert "| ground truth |" in md and "| 2 |" in md and "Table 2" in md
    # a 2 s reference leaves nothing of a 2 s window (configs/tiny.py) to generate
    fits = saved["geometry"]["window_s"] - 2.0 >= ev.MIN_GENERATED_S
    assert set(saved["reference"]["lengths"]) == ({"0", "0.5", "2"} if fits else {"0", "0.5"})
    assert saved["reference"]["skipped"] == ([] if fits else [2.0])
    long = saved["long"]
    assert [len(long[m]["segments"]) for m in ("iterative", "one_shot", "ground_truth")] == [2, 2, 2]


def test_ground_truth_scored_through_the_same_code_is_the_ceiling(evaluated, tiny_pipeline_dir):
    _, result = evaluated
    gt = result["ground_truth"]
    assert gt["swsd"] == 0.0 and gt["kl"] == 0.0 and abs(gt["fd"]) < 1e-6
    # the onset detector finds ~98% of the world's impacts (docs/metrics.md), not all of them
    assert gt["f1"] >= 0.8 and gt["material_accuracy"] >= 0.9
    assert result["long"]["ground_truth"]["f1"] >= 0.8

    p = pipeline.load(tiny_pipeline_dir)
    clips = [ev.test_clip(p, "test", i, p.config.window_s) for i in range(2)]
    again = ev.score([c.audio for c in clips], clips, p.sync)
    interval = again.pop("interval")
    assert again == pytest.approx({k: v for k, v in gt.items() if k != "interval"}, nan_ok=True)
    # every metric carries a bootstrap interval around its value (FD of identical sets: 0 up to round-off)
    for key, (lo, hi) in interval.items():
        assert lo - 1e-5 <= again[key] <= hi + 1e-5, key
    # the reference experiment scores what follows the reference as a clip of its own
    c, s = clips[0], clips[0].section(0.5)
    v = p.config.video
    assert (len(s.audio), len(s.frames24), len(s.frames8)) == (
        len(c.audio) - p.sample_rate // 2,
        len(c.frames24) - round(v.sync_fps / 2),
        len(c.frames8) - round(v.semantic_fps / 2),
    )
    late = [e["time"] - 0.5 for e in c.annotation["events"] if e["time"] >= 0.5]
    assert [e["time"] for e in s.annotation["events"]] == pytest.approx(late) and late
    silence = ev.score([np.zeros_like(c.audio) for c in clips], clips, p.sync, with_desync=False)
    assert silence["f1"] == 0.0 and silence["detected"] == 0 and silence["swsd"] > 1e-3
    assert silence["desync"] is None


def test_compare_adds_the_flow_only_table(evaluated):
    out, result = evaluated
    # the same checkpoint as "flow-only", with the same noise, scores the same
    assert result["compare_steps"] == result["steps"]
    with open(os.path.join(out, "metrics.md")) as f:
        md = f.read()
    assert "| 1 shortcut |" in md and "| 2 flow-only |" in md
    # equal scores are not "shortcut better than flow-only": the target reads as not met
    versus = [t for t in result["targets"] if t["target"].startswith("shortcut F1 > flow-only")]
    assert len(versus) == 2 and not any(t["met"] for t in versus)
    assert "## Targets (issue 7)" in md


def test_rerun_reuses_the_cached_audio(evaluated, tiny_pipeline_dir):
    out, result = evaluated
    cached = sorted(os.listdir(os.path.join(out, ".cache")))
    assert len(cached) == 8  # 2 steps, 2 references, 2 long methods, 2 compare steps
    fewer = dataclasses.replace(SETTINGS, long_clips=0, reference_seconds=())  # scores less, same audio
    again = ev.evaluate(tiny_pipeline_dir, out, settings=fewer)
    assert sorted(os.listdir(os.path.join(out, ".cache"))) == cached
    assert again["steps"] == result["steps"] and again["ground_truth"] == result["ground_truth"]
    assert again["long"] is None and again["compare_steps"] is None


def test_guided_compares_baked_guidance_at_one_branch_with_cfg_at_two(evaluated, tiny_pipeline_dir, tmp_path):
    """The CFG side is the steps experiment's audio (from the cache); the baked side is new."""
    from configs import generator
    from salsa import testing

    out, result = evaluated
    config = generator.get_config("tiny")
    config.objective.sc_guidance = 4.0
    baked = testing.tiny_pipeline(str(tmp_path / "baked"), config)
    cached = set(os.listdir(os.path.join(out, ".cache")))
    settings = dataclasses.replace(
        SETTINGS, long_clips=0, reference_seconds=(), guided_steps=(1, 2), timing_repeats=1
    )
    again = ev.evaluate(tiny_pipeline_dir, out, guided=baked, settings=settings)
    new = set(os.listdir(os.path.join(out, ".cache"))) - cached
    assert sorted(n.split("-")[0] for n in new) == ["guided", "guided"]
    g = again["guided_steps"]
    assert g["baked_scale"] == 4.0 and set(g["steps"]) == {"1", "2"}
    for k, sides in g["steps"].items():
        assert (sides["baked"]["cfg"], sides["baked"]["branches"]) == (1.0, 1)
        assert (sides["cfg"]["cfg"], sides["cfg"]["branches"]) == (4.0, 2)
        for side in sides.values():
            assert side["sampling_seconds_per_clip"] > 0
        assert {m: sides["cfg"][m] for m in METRICS} == {m: result["steps"][k][m] for m in METRICS}
    with open(os.path.join(out, "metrics.md")) as f:
        md = f.read()
    assert "## Guidance baked into training vs CFG at sampling" in md and "| 2 | baked in | 1 |" in md
    assert "Baked guidance is as good as or better than CFG at" in md
    with open(os.path.join(out, "guided.png"), "rb") as f:
        assert f.read(8) == PNG
    with pytest.raises(ev.EvalError, match="--guided .* trained without guidance baked in"):
        ev.evaluate(tiny_pipeline_dir, out, guided=tiny_pipeline_dir, settings=settings)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--checkpoint", "{missing}", "--out", "{out}"], "no such checkpoint folder"),
        (["--checkpoint", "{ckpt}", "--out", "{out}", "--steps", "1,x"], "--steps"),
        (["--checkpoint", "{ckpt}", "--out", "{out}", "--steps", "3"], "power of two"),
        (["--checkpoint", "{ckpt}", "--out", "{out}", "--split", "train"], "split='train'"),
        (["--checkpoint", "{ckpt}", "--out", "{out}", "--clips", "1"], "clips=1"),
        (["--checkpoint", "{ckpt}", "--out", "{file}"], "not a folder"),
        (["--checkpoint", "{ckpt}", "--out", "{file}/out"], "cannot be created"),
        (["--checkpoint", "{ckpt}", "--out", "{out}", "--compare", "{missing}"], "--compare"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words, tiny_pipeline_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    paths = dict(missing=str(tmp_path / "nope"), out=str(tmp_path / "out"), ckpt=tiny_pipeline_dir)
    paths["file"] = str(tmp_path / "file")
    try:
        code = ev.main([a.format(**paths) for a in args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], err
    assert not os.path.exists(tmp_path / "out")


def test_command_line_exit_status(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.getcwd()}
    args = ["--checkpoint", str(tmp_path / "no"), "--out", str(tmp_path)]
    r = subprocess.run(
        [sys.executable, "-m", "salsa.evaluate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 2 and r.stderr.strip().endswith("no such checkpoint folder."), r.stderr
    assert os.listdir(tmp_path) == []
