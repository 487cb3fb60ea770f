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
import shutil
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines.synthetic.heldout import LONG_FIRST
from salsa import cli
from salsa import evaluate as evaluate_cli
from salsa.evaluation import generation
from salsa.evaluation.run import evaluate
from salsa.evaluation.scoring import score
from salsa.evaluation.settings import MIN_GENERATED_S, EvalError, EvalSettings
from salsa.inference import pipeline

SETTINGS = EvalSettings(
    steps=(1, 2),
    clips=2,
    long_clips=1,
    long_seconds=4.0,
    reference_seconds=(0.5, 2.0),
    segment_seconds=2.0,
    fixed_steps=2,  # the long-clip and reference runs reuse the 2-step compilation
    text_clips=2,
    hidden_acoustics=True,  # the random checkpoint's config has no data.world: the clips get them here
)
METRICS = ("precision", "recall", "f1", "mean_abs_offset_s", "material_accuracy", "swsd", "fd", "kl", "is")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluated(tiny_pipeline_dir, tmp_path_factory):
    """One evaluation with the checkpoint compared against itself (as the flow-only one)."""
    out = str(tmp_path_factory.mktemp("eval") / "out")
    result = evaluate(tiny_pipeline_dir, out, compare=tiny_pipeline_dir, settings=SETTINGS)
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
        "reference_clip_indices": [0, 2],  # reference_clips None: the evaluation's clips
        "text_clip_indices": [0, 2],
        "long_clip_indices": [LONG_FIRST, LONG_FIRST + 1],
    }
    for name in ("steps.png", "long.png", "reference.png", "compare.png", "text.png"):
        with open(os.path.join(out, name), "rb") as f:
            assert f.read(8) == PNG, name
    with open(os.path.join(out, "metrics.md")) as f:
        md = f.read()
    assert "| ground truth |" in md and "| 2 |" in md and "Table 2" in md
    # a 2 s reference leaves nothing of a 2 s window (configs/tiny.py) to generate
    fits = saved["geometry"]["window_s"] - 2.0 >= MIN_GENERATED_S
    assert set(saved["reference"]["lengths"]) == ({"0", "0.5", "2"} if fits else {"0", "0.5"})
    assert saved["reference"]["skipped"] == ([] if fits else [2.0])
    # every length is scored on the same section: the window after the longest reference kept
    assert saved["reference"]["scored_from"] == (2.0 if fits else 0.5)
    assert "scored on the same section, the window after" in md
    long = saved["long"]
    assert [len(long[m]["segments"]) for m in ("iterative", "one_shot", "ground_truth")] == [2, 2, 2]
    # hidden acoustics: the probes on every reference row and on both prompts of the text experiment,
    # each with its interval; the codec row scored like everything else
    assert saved["world"] == {"hidden_acoustics": True, "hidden_caption_fraction": 0.0, "shutter": 0.0}
    probes = ("room_accuracy", "microphone_accuracy", "pitch_accuracy")
    for row in [*saved["reference"]["lengths"].values(), saved["text"]["plain"], saved["text"]["hidden"]]:
        assert set(probes) <= set(row) and set(probes) <= set(row["interval"])
    text = saved["text"]
    assert text["clips"] == 2 and text["example"]["hidden"].startswith(text["example"]["plain"] + ", heard")
    assert set(METRICS) <= set(saved["codec"]) and "interval" in saved["codec"]
    assert "| codec |" in md and "| caption + hidden words |" in md and "room acc." in md
    # every row carries its material confusion, over the impacts its accuracy counts
    assert "## Materials heard at isolated impacts" in md and "| 2 steps |" in md
    for row in [saved["ground_truth"], saved["codec"], *saved["steps"].values()]:
        assert sum(n for r in row["material_confusion"].values() for n in r.values()) == row["material_count"]


def test_ground_truth_scored_through_the_same_code_is_the_ceiling(evaluated, tiny_pipeline_dir):
    _, result = evaluated
    gt = result["ground_truth"]
    assert gt["swsd"] == 0.0 and gt["kl"] == 0.0 and abs(gt["fd"]) < 1e-6
    # the onset detector finds ~98% of the world's impacts (docs/metrics.md), not all of them
    assert gt["f1"] >= 0.8 and gt["material_accuracy"] >= 0.9
    # one 4 s long clip of the hidden world: weak hits under a hall's tail or through a muffled
    # microphone go undetected (docs/synthetic_world.md, "Ground truth kept")
    assert result["long"]["ground_truth"]["f1"] >= 0.7

    p = pipeline.load(tiny_pipeline_dir)
    clips = generation.test_clips(p, "test", range(2), p.config.window_s, result["world"])
    again = score([c.audio for c in clips], clips, p.sync)
    interval = again.pop("interval")
    assert set(again.pop("draws").samples) == set(interval)  # the draws behind every interval
    assert again.pop("material_confusion") == gt["material_confusion"]
    assert again == pytest.approx({k: gt[k] for k in again}, nan_ok=True)
    # the hidden-property probes read the ground truth they were built for
    assert gt["room_read"] + gt["microphone_read"] + gt["pitch_read"] >= 4
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
    silence = score([np.zeros_like(c.audio) for c in clips], clips, p.sync, with_desync=False)
    assert silence["f1"] == 0.0 and silence["detected"] == 0 and silence["swsd"] > 1e-3
    assert silence["desync"] is None


def test_compare_adds_the_flow_only_table(evaluated):
    out, result = evaluated
    # the same checkpoint as "flow-only", with the same noise, scores the same
    assert result["compare_steps"] == result["steps"]
    with open(os.path.join(out, "metrics.md")) as f:
        md = f.read()
    assert "| 1 shortcut |" in md and "| 2 flow-only |" in md
    # equal scores do not show "shortcut better than flow-only" (nor contradict it): identical intervals;
    # they do show "shortcut F1 not below flow-only" (not separated below)
    versus = [t for t in result["targets"] if t["target"].startswith("shortcut FD < flow-only")]
    assert [t["verdict"] for t in versus] == ["not shown", "not shown"]
    assert versus[0]["interval"][0] == versus[0]["interval"][1] is not None
    no_worse = [t for t in result["targets"] if t["target"].startswith("shortcut F1 not below")]
    assert [t["verdict"] for t in no_worse] == ["shown", "shown"]
    assert "## Targets (docs/targets.json)" in md and "| not shown |" in md


def test_rerun_reuses_the_cached_audio(evaluated, tiny_pipeline_dir):
    out, result = evaluated
    cached = sorted(os.listdir(os.path.join(out, ".cache")))
    # 2 steps, 1 reference (0 s is the 2-step part) and its control from another clip, 2 long methods,
    # 2 compare steps, 2 text prompts
    assert len(cached) == 10
    fewer = dataclasses.replace(SETTINGS, long_clips=0, reference_seconds=())  # scores less, same audio
    again = evaluate(tiny_pipeline_dir, out, settings=fewer)
    assert sorted(os.listdir(os.path.join(out, ".cache"))) == cached
    assert again["steps"] == result["steps"] and again["ground_truth"] == result["ground_truth"]
    assert again["long"] is None and again["compare_steps"] is None


def test_the_reference_scale_regenerates_only_the_parts_with_a_reference(
    evaluated, tiny_pipeline_dir, tmp_path
):
    """--cfg-audio 4 (the paper's Eq. 3) against the config's 2: the reference rows are generated anew
    and differ, the steps rows (no reference, where both are the same guidance) come from the cache."""
    first, result = evaluated
    out = str(tmp_path / "out")  # a copy: the module's other tests read the first report
    shutil.copytree(first, out)
    assert result["settings"]["cfg_audio"] == 2.0
    cached = set(os.listdir(os.path.join(out, ".cache")))
    paper = dataclasses.replace(SETTINGS, long_clips=0, text_clips=0, reference_seconds=(0.5,), cfg_audio=4.0)
    again = evaluate(tiny_pipeline_dir, out, settings=paper)
    new = set(os.listdir(os.path.join(out, ".cache"))) - cached
    assert sorted(n.split("-")[0] for n in new) == ["reference", "reference_other_clip"]
    assert again["steps"] == result["steps"] and again["settings"]["cfg_audio"] == 4.0
    assert again["reference"]["lengths"]["0"] == result["reference"]["lengths"]["0"]
    assert again["reference"]["lengths"]["0.5"]["swsd"] != result["reference"]["lengths"]["0.5"]["swsd"]
    with open(os.path.join(out, "metrics.md")) as f:
        assert "cfg 4 (reference audio 4)" in f.read()


def test_reference_and_text_experiments_render_their_own_clips(evaluated, tiny_pipeline_dir, tmp_path):
    """reference_clips and text_clips > clips: those experiments score that many clips (rendered past the
    evaluation's), the other experiments keep theirs."""
    _, first = evaluated
    settings = dataclasses.replace(
        SETTINGS, steps=(2,), long_clips=0, text_clips=3, reference_seconds=(0.5,), reference_clips=3
    )
    result = evaluate(tiny_pipeline_dir, str(tmp_path / "out"), settings=settings)
    assert result["reference"]["clips"] == 3 and result["split"]["reference_clip_indices"] == [0, 3]
    assert result["text"]["clips"] == 3 and result["split"]["text_clip_indices"] == [0, 3]
    assert result["steps"]["2"]["onsets"] == first["steps"]["2"]["onsets"]  # still the first 2 clips
    p = pipeline.load(tiny_pipeline_dir)
    clips = generation.test_clips(p, "test", range(3), p.config.window_s, result["world"])
    sections = [c.section(0.5) for c in clips]
    truth = score([s.audio for s in sections], sections, p.sync, with_desync=False)
    for row in result["reference"]["lengths"].values():
        assert row["onsets"] == truth["onsets"]
    assert truth["onsets"] > score([s.audio for s in sections[:2]], sections[:2], p.sync)["onsets"]
    with open(tmp_path / "out" / "metrics.md") as f:
        assert "## Reference audio length (Fig. 6), 2 steps, 3 clips" in f.read()


def test_the_reference_control_gives_each_clip_the_next_clips_audio(tiny_pipeline_dir, tmp_path, monkeypatch):
    """The control row: the longest reference cut from the next clip's audio (cyclically), with the clip's
    own video and noise, scored on the same sections as the lengths and judged paired against the clip's
    own reference (docs/targets.json)."""
    calls = []
    real = generation.generate

    def recording(p, clips, **kw):
        calls.append((kw.get("reference_s", 0.0), [(c.index, c.audio.copy(), c.frames24) for c in clips]))
        return real(p, clips, **kw)

    monkeypatch.setattr(generation, "generate", recording)
    settings = dataclasses.replace(
        SETTINGS, steps=(2,), long_clips=0, text_clips=0, reference_seconds=(1.0,), clips=3
    )
    result = evaluate(tiny_pipeline_dir, str(tmp_path / "out"), settings=settings)
    p = pipeline.load(tiny_pipeline_dir)
    clips = generation.test_clips(p, "test", range(3), p.config.window_s, result["world"])
    own, other = [c for r, c in calls if r == 1.0]  # the 1 s rows, in order: own, then the control
    for i, (index, audio, frames) in enumerate(other):
        assert index == clips[i].index and np.array_equal(frames, clips[i].frames24)
        assert np.array_equal(audio, clips[(i + 1) % 3].audio)
    assert all(np.array_equal(audio, c.audio) for (_, audio, _), c in zip(own, clips, strict=True))
    control = result["reference"]["other_clip"]
    assert control["onsets"] == result["reference"]["lengths"]["1"]["onsets"]  # the same sections
    assert control["swsd"] != result["reference"]["lengths"]["1"]["swsd"]
    judged = {t["target"]: t for t in result["targets"]}
    for metric in ("SWSD", "FD"):
        t = judged[f"{metric}: the clip's own 1 s reference < another clip's (own / other)"]
        assert t["verdict"] in ("shown", "not shown", "contradicted") and "ratio" in t
    with open(tmp_path / "out" / "metrics.md") as f:
        assert "| 1 s of another clip |" in f.read()


def test_segments_keep_their_draws_so_that_two_segments_of_the_same_clips_pair(tiny_pipeline_dir):
    """One-shot's last segment against its first is judged draw by draw: each segment keeps the
    bootstrap draws behind its intervals, named by the clips."""
    from salsa.evaluation import targets
    from salsa.metrics import bootstrap

    p = pipeline.load(tiny_pipeline_dir)
    clips = generation.test_clips(p, "test", range(4), 2.0)
    # the first second as it is, the second one silent: the segments' F1 falls on every clip
    muted = [
        np.concatenate([c.audio[: c.sample_rate], np.zeros_like(c.audio[c.sample_rate :])]) for c in clips
    ]
    row = score(muted, clips, p.sync, segments=[(0.0, 1.0), (1.0, 2.0)], with_desync=False)
    first, last = row["segments"]
    assert first["draws"].clips == last["draws"].clips == row["draws"].clips
    assert first["interval"]["f1"] == list(bootstrap.interval(first["draws"].samples["f1"]))
    goal = {"claim": "c", "metric": "f1", "left": "long.one_shot.segments.-1", "comparison": "<"}
    goal |= {"right": "long.one_shot.segments.0", "paired": True, "source": "s"}
    checked = targets.check(goal, {"long": {"one_shot": row}})
    assert checked["ratio"]["value"] == pytest.approx(last["f1"] / first["f1"]) and last["f1"] == 0
    assert checked["verdict"] == "shown" and checked["ratio"]["interval"][1] < 1


def test_guided_compares_baked_guidance_at_one_branch_with_cfg_at_two(evaluated, tiny_pipeline_dir, tmp_path):
    """The CFG side is the steps experiment's audio (from the cache); the baked side is new."""
    from configs import generator
    from salsa import testing

    out, result = evaluated
    config = generator.get_config("tiny")
    config.objective.sc_guidance = 4.0
    baked = testing.random_pipeline(str(tmp_path / "baked"), config)
    cached = set(os.listdir(os.path.join(out, ".cache")))
    settings = dataclasses.replace(
        SETTINGS, long_clips=0, reference_seconds=(), text_clips=0, guided_steps=(1, 2), timing_repeats=1
    )
    again = evaluate(tiny_pipeline_dir, out, guided=baked, settings=settings)
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
    with pytest.raises(EvalError, match="--guided .* trained without guidance baked in"):
        evaluate(tiny_pipeline_dir, out, guided=tiny_pipeline_dir, settings=settings)


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
        code = cli.run(evaluate_cli.main, [a.format(**paths) for a in args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], err
    assert not os.path.exists(tmp_path / "out")


def test_every_setting_has_its_flag(monkeypatch, capsys):
    """The command line reaches every EvalSettings field (configs/tiny.py's evaluate stage sets some)."""
    seen = {}
    monkeypatch.setattr(evaluate_cli, "evaluate", lambda ckpt, out, **kw: seen.update(kw))
    flags = "--reference-seconds 0.25,1 --cfg 2.5 --cfg-audio 3 --fixed-steps 4 --segment-seconds 5 "
    flags += "--batch 4 --guided-steps 1,8 --timing-repeats 1 --split validation --steps 2,8 --clips 8 "
    flags += "--long-clips 0 --long-seconds 30 --seed 3 --text-clips 0 --reference-clips 64 "
    flags += "--no-hidden-acoustics"
    assert evaluate_cli.main(["--checkpoint", "c", "--out", "o", *flags.split()]) == 0
    want = EvalSettings(
        split="validation",
        steps=(2, 8),
        clips=8,
        long_clips=0,
        long_seconds=30.0,
        reference_seconds=(0.25, 1.0),
        cfg=2.5,
        cfg_audio=3.0,
        seed=3,
        fixed_steps=4,
        segment_seconds=5.0,
        batch=4,
        guided_steps=(1, 8),
        timing_repeats=1,
        text_clips=0,
        reference_clips=64,
        hidden_acoustics=False,
    )
    assert seen["settings"] == want
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--checkpoint", "c", "--out", "o", "--reference-seconds", "1,x"])
    assert "'1,x' is not accepted; use comma-separated lengths in seconds" in capsys.readouterr().err


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


def test_hidden_probes_score_generated_audio_with_intervals():
    from data_pipelines.synthetic import heldout
    from salsa.evaluation import hidden, scoring, targets
    from salsa.metrics import bootstrap

    geometry = heldout.ClipGeometry(
        sample_rate=16000, channels=1, sync_fps=24.0, semantic_fps=8.0, sync_size=32, semantic_size=16
    )
    world = heldout.world_settings({"hidden_acoustics": True, "hidden_caption_fraction": 0.5})
    clips = [heldout.test_clip(geometry, "test", i, 2.0, world) for i in range(6)]
    plain = heldout.test_clip(geometry, "test", 0, 2.0)
    assert np.array_equal(plain.frames24, clips[0].frames24) and "acoustics" not in plain.annotation
    probes = hidden.probes(16000)
    truth = hidden.scores([c.audio for c in clips], clips, probes)
    silence = hidden.scores([np.zeros_like(c.audio) for c in clips], clips, probes)
    for k in hidden.KEYS:
        lo, hi = truth["interval"][k]
        assert lo <= truth[k] <= hi
    # the probes hear the truth better than silence (which carries no microphone or room at all)
    assert truth["microphone_accuracy"] > silence["microphone_accuracy"]
    with pytest.raises(ValueError, match="has no hidden acoustics"):
        hidden.scores([plain.audio], [plain], probes)
    # the accuracies' draws join a row's draws of the same clips, so that two generations of the same
    # clips (the text experiment's captions with and without the words) are judged draw by draw
    row = hidden.merged({"f1": 0.5, "draws": scoring.draws_of(clips, {"f1": np.zeros(1000)})}, truth)
    assert set(row["draws"].samples) == {"f1", *hidden.KEYS}
    m = row["draws"].samples["microphone_accuracy"]
    assert np.nanmin(m) <= truth["microphone_accuracy"] <= np.nanmax(m)
    goal = {"claim": "c", "metric": "microphone_accuracy", "left": "text.hidden", "comparison": ">"}
    goal |= {"right": "text.plain", "paired": True, "source": "s"}
    checked = targets.check(goal, {"text": {"hidden": truth, "plain": silence}})
    lo, hi = bootstrap.paired_ratio(m, silence["draws"].samples["microphone_accuracy"])
    assert checked["ratio"]["interval"] == [lo, hi] and lo > 1 and checked["verdict"] == "shown"
    with pytest.raises(ValueError, match="different clips"):
        hidden.merged(row, hidden.scores([c.audio for c in clips[:5]], clips[:5], probes))


def test_world_settings_follow_the_switch():
    from data_pipelines.synthetic.heldout import world_settings

    # a checkpoint from before the shutter existed: instantaneous frames, as it was trained on
    assert world_settings(None) == {"hidden_acoustics": False, "hidden_caption_fraction": 0.0, "shutter": 0.0}
    off = world_settings({"hidden_acoustics": False, "hidden_caption_fraction": 0.5})
    assert off["hidden_caption_fraction"] == 0.0  # the fraction counts only with hidden acoustics on


def test_held_out_clips_render_at_a_given_geometry_from_held_out_seeds():
    from data_pipelines.synthetic import heldout

    geometry = heldout.ClipGeometry(
        sample_rate=16000, channels=1, sync_fps=24.0, semantic_fps=8.0, sync_size=32, semantic_size=16
    )
    clip = heldout.test_clip(geometry, "validation", 3, 1.5)  # shorter than the world's 2 s: cut
    assert clip.frames24.shape == (36, 32, 32, 3) and clip.frames8.shape == (12, 16, 16, 3)
    assert clip.audio.shape == (24000, 1) and all(e["time"] < 1.5 for e in clip.annotation["events"])
    with pytest.raises(ValueError, match="'train' is not held out"):
        heldout.world_seed("train")
