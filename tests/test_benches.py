"""The benches as modules: tests import their measures, several into one process."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from salsa.training.setup import BadInput

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(*args: str) -> subprocess.CompletedProcess:
    """`python ARGS` in the repository root, its output captured."""
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_every_bench_imports_into_one_process_and_keeps_its_flags_as_a_program():
    """Ten benches define --clips, --pipeline or --out: defined at import, a second bench in the same
    process (an xdist worker collects every test file) raised DuplicateFlagError. Run as a program, a
    bench still has its flags."""
    imported = _python(
        "-c",
        "import importlib, pathlib\n"
        "names = sorted(p.stem for p in pathlib.Path('bench').glob('*.py') if p.stem != '__init__')\n"
        "for n in names: importlib.import_module('bench.' + n)\n"
        "print(len(names))",
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert int(imported.stdout) >= 20
    helped = _python("-m", "bench.vae_world", "--help")
    assert "--pipeline: pipeline checkpoint" in helped.stdout and "--vae: NAME=DIR" in helped.stdout


def test_compare_runs_measures_each_shift_in_half_widths_and_counts_changed_verdicts():
    from bench.compare_runs import shifts, summary

    def run(f1, interval, verdict, extra=()):
        targets = [{"target": "f1", "value": [f1], "interval": [interval], "verdict": verdict}]
        return {"targets": targets + list(extra)}

    only_a = {"target": "gone", "value": [1.0], "interval": [[0.0, 2.0]], "verdict": "shown"}
    flat = {
        "target": "flat",
        "value": [0.0, 5.0, 1.0],
        "interval": [[0.0, 0.0], [4.0, 6.0], None],  # a row without an interval
        "verdict": "not shown",
    }
    a = run(0.40, [0.30, 0.50], "not shown", [only_a, flat])  # half-width 0.10
    b = run(0.55, [0.50, 0.70], "shown", [flat])  # half-width 0.10: moved +1.5 half-widths
    rows = shifts(a, b)
    assert [r["target"] for r in rows] == ["f1", "flat"]  # a target missing from either run is left out
    assert rows[0]["verdicts"] == ["not shown", "shown"]
    assert abs(rows[0]["shift_half_widths"][0] - 1.5) < 1e-9
    assert rows[1]["shift_half_widths"] == [None, 0.0, None]  # no scale: zero width, or no interval
    assert summary(rows) == {
        "targets": 2,
        "verdicts_changed": 1,
        "values": 2,
        "median_abs_shift": pytest.approx(0.75),
        "over_one": 1,
        "max_abs_shift": pytest.approx(1.5),
    }


def test_compare_runs_lists_every_runs_verdict_and_judges_old_runs_by_a_new_targets_file(tmp_path):
    """Three runs: a target whose verdict differs in any run is not stable. `--targets` judges each run's
    rows again, so runs evaluated under an older targets file compare on today's targets."""
    from bench.compare_runs import verdicts

    def judged(verdict):
        return {"targets": [{"target": "f1", "value": [0.5], "interval": [[0.4, 0.6]], "verdict": verdict}]}

    rows = verdicts([judged("shown"), judged("shown"), judged("not shown")])
    assert rows[0]["verdicts"] == ["shown", "shown", "not shown"] and rows[0]["stable"] is False
    assert verdicts([judged("shown")] * 3)[0]["stable"] is True

    goals = tmp_path / "targets.json"
    target = {
        "claim": "F1 >= 0.8",
        "metric": "f1",
        "left": "steps.8",
        "comparison": ">=",
        "right": 0.8,
        "source": "",
    }
    goals.write_text(json.dumps({"targets": [target]}))
    paths = []
    for k, (lo, hi) in enumerate([(0.85, 0.95), (0.75, 0.9), (0.6, 0.7)]):  # shown, not shown, contradicted
        run = {"steps": {"8": {"f1": (lo + hi) / 2, "interval": {"f1": [lo, hi]}}}, "targets": []}
        paths.append(tmp_path / f"run{k}.json")
        paths[-1].write_text(json.dumps(run))
    out = tmp_path / "out.json"
    done = _python("-m", "bench.compare_runs", *map(str, paths), f"--targets={goals}", f"--out={out}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "0 of 1 targets keep their verdict in every run" in done.stdout
    assert json.loads(out.read_text())["verdicts"][0]["verdicts"] == ["shown", "not shown", "contradicted"]


def test_onset_timing_bins_each_impact_by_its_nearest_onset_and_widens_the_tolerance():
    from bench.onset_timing import timing

    reference = [np.array([0.5, 1.0, 1.5]), np.array([0.4])]
    late = [r + 0.07 for r in reference]  # every impact sounded 70 ms late
    row = timing(reference, late)
    assert row["impacts"] == 4
    assert row["f1"] == [0.0, 0.0, 1.0, 1.0]  # outside ±25 and ±50 ms, inside ±100 and ±200 ms
    assert row["nearest"] == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert row["f1_interval"][0] == [0.0, 0.0] and row["f1_interval"][3] == [1.0, 1.0]  # no clip differs
    # One onset 10 ms from the first impact (490 and 990 ms from the next two); the second clip silent.
    missed = timing(reference, [np.array([0.51]), np.zeros(0)])
    assert missed["nearest"] == [0.25, 0.0, 0.0, 0.0, 0.75]


def test_onset_timing_pools_an_arms_draws_and_resamples_them_as_well_as_the_clips():
    from bench import onset_timing

    references = [np.array([0.5]) for _ in range(20)]
    detected = {
        "exact": [r.copy() for r in references],
        "exact again": [r.copy() for r in references],
        "late": [r + 0.07 for r in references],  # every impact 70 ms late: none within ±50 ms
    }
    groups = onset_timing.parse_arms(["one=exact", "mixed=exact again,late"])
    result = onset_timing.arms(references, detected, groups)["arms"]
    assert result["one"]["f1"] == onset_timing.timing(references, detected["exact"])["f1"][1] == 1.0
    assert result["one"]["f1_interval"] == [1.0, 1.0] and result["one"]["ratio_interval"] == [1.0, 1.0]
    # The mean of its two draws gives the mixed arm F1 0.5, and every clip scores alike in each draw, so
    # resampling clips alone would give [0.5, 0.5]: the interval spans the draws because they are
    # resampled too (both exact: 1, both late: 0).
    assert result["mixed"]["f1_each"] == [1.0, 0.0] and result["mixed"]["f1"] == 0.5
    assert result["mixed"]["f1_interval"] == [0.0, 1.0] and result["mixed"]["ratio"] == 0.5
    assert onset_timing.arms_table({"arms": result}).splitlines()[3] == (
        "| mixed | 2: 1.000, 0.000 | 0.500 [0.000, 1.000] | 0.500 [0.000, 1.000] |"
    )
    with pytest.raises(BadInput, match="--arm takes NAME=PIPELINE,PIPELINE,... with a new name each time"):
        onset_timing.parse_arms(["one=a", "one=b"])


def test_onset_timing_names_each_pipeline_apart_from_the_others():
    from bench.onset_timing import names

    runs = ["runs/tiny/generator/pipeline", "runs/tiny/generator_flow/pipeline"]
    assert names(runs) == ["generator", "generator_flow"]
    # Two runs' generators share their stage folder: the run's folder tells them apart.
    assert names(["/a/tiny/generator/pipeline", "/b/arm/generator/pipeline"]) == [
        "tiny/generator",
        "arm/generator",
    ]
    with pytest.raises(ValueError, match="named twice"):
        names(["runs/tiny/generator/pipeline", "runs/tiny/generator/pipeline/"])


def test_onset_timing_splits_clips_and_their_generations_by_ambience(monkeypatch):
    from bench import onset_timing

    references = [np.array([0.5, 1.0]), np.array([0.4]), np.array([0.3]), np.array([0.7])]
    detected = {"8 steps": [f"onsets {i}" for i in range(4)]}
    seen = {}

    def timing(refs, found):
        seen[found[0]] = ([float(r[0]) for r in refs], list(found))
        interval = [[0.4, 0.6]] * len(onset_timing.TOLERANCES_S)
        return {"f1": [0.5] * len(onset_timing.TOLERANCES_S), "f1_interval": interval}

    monkeypatch.setattr(onset_timing, "timing", timing)
    groups = onset_timing.by_ambience(list("rwrr"), references, detected)
    assert seen == {
        "onsets 0": ([0.5, 0.3, 0.7], ["onsets 0", "onsets 2", "onsets 3"]),
        "onsets 1": ([0.4], ["onsets 1"]),
    }
    assert list(groups) == ["r", "w"]
    assert (
        onset_timing.ambience_table(groups).splitlines()[2] == "| 8 steps | 0.500 ± 0.100 | 0.500 ± 0.100 |"
    )


def test_sync_oracle_codes_each_impact_in_its_frame_and_only_for_test_clips(monkeypatch):
    import types

    from bench import sync_oracle
    from salsa.inference import encoders

    annotation = {"events": [{"kind": "impact", "time": 0.5, "material": "wood"}]}  # frame 12, phase 0
    code = sync_oracle.impact_code(annotation, 48, amplitude=2.0)
    assert np.flatnonzero(code[:, 0]).tolist() == [12] and code[12].tolist() == [2.0, -1.0]
    frames = np.arange(48 * 4 * 4 * 3, dtype=np.uint8).reshape(48, 4, 4, 3)
    monkeypatch.setattr(encoders, "sync", lambda model, f: np.ones((len(f), 5), np.float32))
    clip = types.SimpleNamespace(frames24=frames, annotation=annotation)
    sync = sync_oracle.oracle_sync([clip], amplitude=2.0)
    features = sync(None, frames)
    assert features[12, :2].tolist() == [2.0, -1.0] and np.all(features[:, 2:] == 1.0)
    assert np.all(features[np.arange(48) != 12, 0] == 0.0)
    with pytest.raises(ValueError, match="no test clip"):
        sync(None, frames[::-1])


def test_a_coarser_oracle_moves_the_share_of_impacts_it_is_told_to_by_one_frame():
    from bench.sync_oracle import impact_code

    times = np.arange(400) / 24.0 * 3 + 0.01  # impacts 3 frames apart, early in their frame
    annotation = {
        "seed": 0,
        "index": 7,
        "events": [{"kind": "impact", "time": t, "material": "wood"} for t in times],
    }
    truth = np.floor(times * 24).astype(int)
    exact = impact_code(annotation, 1300, 1.0)
    assert np.flatnonzero(exact[:, 0]).tolist() == truth.tolist()
    np.testing.assert_allclose(exact[truth, 1], 0.24 - 0.5, atol=1e-4)  # phase 0.24 of a frame
    coarse = impact_code(annotation, 1300, 1.0, exact=0.75, phase=False)
    coded = np.flatnonzero(coarse[:, 0])
    assert len(coded) == len(truth) and np.all(coarse[:, 1] == 0.0)
    offsets = coded - truth  # impacts 3 frames apart stay in order
    assert set(offsets.tolist()) == {-1, 0, 1} and abs(np.mean(offsets == 0) - 0.75) < 0.06
    assert abs(np.mean(offsets == 1) - np.mean(offsets == -1)) < 0.07
    np.testing.assert_array_equal(coarse, impact_code(annotation, 1300, 1.0, exact=0.75, phase=False))
    other = impact_code({**annotation, "index": 8}, 1300, 1.0, exact=0.75, phase=False)
    assert not np.array_equal(coarse, other)  # each clip draws its own


def test_sync_timing_probe_finds_the_impact_frame_when_a_feature_marks_it():
    from bench.sync_timing import frame_probe, impact_frames

    annotation = {"events": [{"kind": "impact", "time": t, "material": "wood"} for t in (0.21, 1.0)]}
    assert np.flatnonzero(impact_frames(annotation, 48)).tolist() == [5, 24]
    rng = np.random.default_rng(0)
    labels = [rng.random(48) < 0.2 for _ in range(30)]
    marked = [np.c_[lab + 0.1 * rng.standard_normal(48), rng.standard_normal((48, 3))] for lab in labels]
    found = frame_probe(marked, labels, train=20)
    assert found["exact"] == 1.0 and found["frame_auc"] > 0.99
    noise = frame_probe([rng.standard_normal((48, 4)) for _ in labels], labels, train=20)
    assert noise["exact"] < 0.4 and 0.35 < noise["frame_auc"] < 0.65
    # By group (the bench groups clips by ambience): only the marked clips' group finds its impacts.
    mixed = [m if i % 2 else rng.standard_normal(m.shape) for i, m in enumerate(marked)]
    by = frame_probe(mixed, labels, train=20, groups=["noise", "marked"] * 15)["exact_by"]
    assert by["marked"] > 0.9 and by["noise"] < 0.5


def test_sync_ceiling_trains_the_tower_it_is_asked_for_on_impact_frames():
    from bench import sync_ceiling, sync_timing

    model, losses = sync_ceiling.train(size=32, clips=2, steps=30, overrides={"temporal_layers": 2})
    assert model.config.video.image_size == 32 and model.config.temporal_layers == 2
    assert model.config.train_video_backbone and len(losses) == 30
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])  # it learns from the frames' labels
    found = sync_timing.probe(model, clips=6)
    assert found["image_size"] == 32 and set(found["exact_by"]) <= {"rain", "room", "wind"}


def test_sync_oracle_rewrites_only_the_two_sync_channels_of_a_tiny_runs_clips(tmp_path):
    from bench import sync_oracle
    from data_pipelines.features import records
    from data_pipelines.synthetic.clip import make_clip
    from data_pipelines.synthetic.config import WorldConfig

    source = dict(kind="synthetic", clips=2, seed=0, first=0, seconds=2.0, size=32)
    source.update(hidden_acoustics=True, hidden_caption_fraction=0.5)
    world = WorldConfig(
        seconds=2.0, height=32, width=32, sample_rate=16000, channels=1, hidden_acoustics=True
    )
    world = dataclasses.replace(world, hidden_caption_fraction=0.5)
    rng = np.random.default_rng(0)
    clips = [make_clip(world, 0, i) for i in range(2)]
    extract, out = tmp_path / "extract", tmp_path / "oracle"
    records.write_shards(
        [
            {
                "id": f"synthetic-0-{i:06d}",
                "caption": c.annotation["caption"],
                "duration": 2.0,
                "latents": rng.standard_normal((125, 16)).astype(np.float32),
                "semantic": rng.standard_normal((16, 64)).astype(np.float32),
                "sync": rng.standard_normal((48, 64)).astype(np.float32),
                "text": rng.standard_normal(64).astype(np.float32),
            }
            for i, c in enumerate(clips)
        ],
        extract,
        2,
    )
    (extract / "done.json").write_text(json.dumps({"settings": {"source": source}}))
    geometry = {"video": {"sync_fps": 24.0}, "audio": {"sample_rate": 16000, "channels": 1}}
    (extract / "extraction.json").write_text(json.dumps(geometry))
    sync_oracle.write_oracle_extract(str(extract), str(out), amplitude=3.0)
    before = {r["id"]: r for r in records.read_all(records.shard_paths(extract))}
    for r in records.read_all(records.shard_paths(out)):
        i = int(r["id"][-1])
        np.testing.assert_array_equal(r["sync"][:, :2], sync_oracle.impact_code(clips[i].annotation, 48, 3.0))
        np.testing.assert_array_equal(r["sync"][:, 2:], before[r["id"]]["sync"][:, 2:])
        np.testing.assert_array_equal(r["latents"], before[r["id"]]["latents"])
    assert (out / "done.json").exists() and (out / "extraction.json").exists()
    plain = {**source, "hidden_acoustics": False, "hidden_caption_fraction": 0.0}
    (extract / "done.json").write_text(json.dumps({"settings": {"source": plain}}))
    with pytest.raises(SystemExit, match="captions differ"):  # a world other than the extraction's
        sync_oracle.write_oracle_extract(str(extract), str(tmp_path / "other"), amplitude=3.0)


def test_noise_seeds_sets_the_seeds_spread_beside_the_clip_bootstraps():
    from bench.noise_seeds import spread

    # four seeds: F1 0.50 +- 0.01 (sd 0.0129) with intervals 0.1 wide (clip sd 0.05 / 1.96 = 0.0255)
    rows = [
        {"f1": v, "fd": 2.0, "desync": None, "interval": {"f1": [v - 0.05, v + 0.05], "fd": [1.0, 3.0]}}
        for v in (0.49, 0.50, 0.51, 0.50)
    ]
    rows[0]["interval"]["f1"] = [0.505, 0.6]  # this seed's interval misses the mean 0.5
    f1, fd = spread(rows, ("f1", "fd", "desync"))  # DeSync not computed: left out
    assert f1["metric"] == "f1" and f1["mean"] == pytest.approx(0.5) and f1["range"] == [0.49, 0.51]
    assert f1["seed_sd"] == pytest.approx(np.std([0.49, 0.5, 0.51, 0.5], ddof=1))
    assert f1["clip_sd"] == pytest.approx((0.095 + 3 * 0.1) / 4 / 2 / 1.959964)
    assert f1["ratio"] == pytest.approx(f1["seed_sd"] / f1["clip_sd"])
    lo, hi = f1["seed_sd_interval"]
    assert lo < f1["seed_sd"] < hi and hi / lo > 4  # three degrees of freedom: a wide interval
    assert f1["intervals_holding_mean"] == 3
    assert fd["seed_sd"] == 0.0 and fd["ratio"] == 0.0 and fd["intervals_holding_mean"] == 4
    with pytest.raises(ValueError, match="two seeds or more"):
        spread(rows[:1])


def test_reference_shift_reads_the_move_of_the_mean_against_the_truth_and_the_opening():
    """A reference that pulls the generated mean halfway towards the opening, which lies opposite the
    truth: a move of 0.5, at cosine -1 to the truth and +1 to the opening; and a clip that is silent,
    then loud, reads as two levels 20 dB apart."""
    from bench.reference_shift import levels, shifts

    def around(x):  # two snippets whose mean is x
        return np.array([[x[0] - 0.1, x[1]], [x[0] + 0.1, x[1]]])

    out = shifts(around((1.0, 0.0)), around((-1.0, 0.0)), around((0.0, 0.0)), around((-0.5, 0.0)))
    assert out["shift"] == pytest.approx(0.5)
    assert out["cos_to_truth"] == pytest.approx(-1.0) and out["cos_to_opening"] == pytest.approx(1.0)
    assert (out["truth_to_none"], out["truth_to_given"], out["truth_to_opening"]) == pytest.approx(
        (1, 1.5, 2)
    )
    clip = np.concatenate([np.full(4, 0.01), np.full(4, 0.1)])[:, None]
    assert levels([clip, clip], sample_rate=16, part_s=0.25) == pytest.approx([-40.0, -20.0])


def test_reference_shift_cuts_windows_past_the_scenes_opening(tiny_pipeline_dir):
    """--start 1: each clip is the checkpoint's window cut 1 s into a scene rendered 1 s longer, its frames,
    audio and impacts those of that span of the scene, in the clips' own time."""
    from bench.reference_shift import window_clips
    from salsa.evaluation import generation
    from salsa.inference import pipeline

    p = pipeline.load(tiny_pipeline_dir)
    window = float(p.config.window_s)
    world = {"hidden_acoustics": False, "hidden_caption_fraction": 0.0}
    (scene,) = generation.test_clips(p, "test", [0], 1.0 + window, world)
    (clip,) = window_clips(p, 1, 1.0, world)
    assert clip.seconds == window and len(clip.audio) == round(window * p.sample_rate)
    assert np.array_equal(clip.audio, scene.audio[p.sample_rate : p.sample_rate + len(clip.audio)])
    assert np.array_equal(clip.frames24, scene.frames24[round(scene.fps) :][: len(clip.frames24)])
    assert len(clip.frames24) == round(window * scene.fps)
    inside = [e["time"] - 1.0 for e in scene.annotation["events"] if 1.0 <= e["time"] < 1.0 + window]
    assert [e["time"] for e in clip.annotation["events"]] == pytest.approx(inside)
    assert window_clips(p, 1, 0.0, world)[0].seconds == window


def test_extend_memory_times_every_window_of_the_command_and_sets_lengths_against_the_shortest(
    tiny_pipeline_dir, tmp_path
):
    """bench.extend_memory runs `salsa.extend` with its progress bar replaced by a recorder: one interval
    per window (21 s in 2 s windows with 0.5 s of context: 14 windows), together within the command's
    wall time; summarize sets each run's later windows against the shortest length's, and its last
    quarter against its first, and their peaks (host, and the device's where it reports one, not on CPU)
    against the shortest's."""
    from bench.extend_memory import make_video, measure, summarize

    video = str(tmp_path / "v.mp4")
    make_video(video, 21.0, 32, 24.0)
    argv = ["--video", video, "--checkpoint", tiny_pipeline_dir, "--out", str(tmp_path / "o.mp4")]
    r = measure([*argv, "--steps", "1", "--window", "2"], str(tmp_path / "extend.log"))
    assert r["windows"] == len(r["window_s"]) == 14
    assert all(w > 0 for w in r["window_s"]) and sum(r["window_s"]) < r["wall_s"]
    assert "21.0 s of sound" in r["summary"]
    assert r["device_peak_mib"] is None  # a CPU keeps no allocator statistics

    def run(minutes, windows, peak, device_peak):
        wall = sum(windows) + 1
        return {
            "minutes": minutes,
            "window_s": windows,
            "windows": len(windows),
            "wall_s": wall,
            "peak_rss_mib": peak,
            "device_peak_mib": device_peak,
        }

    # The last window of each is the video's end, shorter: left out of the per-window figures.
    runs = [run(1, [5.0, 1.0, 1.0, 1.0, 0.5], 100.0, 500.0), run(1, [5.0, 1.0, 3.0, 3.0, 0.5], 120.0, 700.0)]
    runs.append(run(20, [5.0, 1.0] + [2.0] * 4 + [4.0] * 4 + [0.5], 121.0, 630.0))
    summarize(runs)
    long = runs[2]
    assert long["later_window_s"] == 3.0 and long["later_to_shortest"] == 1.5  # the shortest pools: 2.0
    assert long["drift"] == 2.0 and long["total_to_windows"] == pytest.approx(31.5 / (11 * 2.0))
    assert long["after_start_to_windows"] == pytest.approx((31.5 - 5.0) / (10 * 2.0))
    assert long["peak_ratio_to_shortest"] == pytest.approx(1.1)
    assert long["device_peak_ratio_to_shortest"] == pytest.approx(1.05)


def test_training_draws_pools_identical_runs_into_the_evaluations_rows_and_judges_its_targets(
    tiny_pipeline_dir, tmp_path
):
    """Two identical runs of the generator pool into the rows the evaluation scores for one, in every
    experiment asked for (same clips, noise, scoring: values and intervals, a long clip's segments too),
    and the targets read the pooled rows: the shortcut-vs-flow one of a checkpoint against itself has
    ratio 1, not shown; a long-form one is judged; none of an experiment not run is."""
    from bench import training_draws
    from salsa.evaluation import run
    from salsa.evaluation.cache import Cache, checkpoint_signature
    from salsa.evaluation.settings import EvalSettings
    from salsa.inference import pipeline

    settings = EvalSettings(
        clips=3,
        steps=(1,),
        fixed_steps=1,
        reference_seconds=(0.5,),
        long_clips=2,
        long_seconds=4.0,
        segment_seconds=2.0,
    )
    names = ("steps", "reference", "long")
    result = training_draws.measure([tiny_pipeline_dir] * 2, [tiny_pipeline_dir], settings, names)
    p = pipeline.load(tiny_pipeline_dir)
    cache = Cache(str(tmp_path), checkpoint_signature(tiny_pipeline_dir))
    one = run.metrics(run.inputs(p, cache, settings), p, cache, names=(*names, "compare_steps"))
    reference = one["reference"]["lengths"]
    pairs = [(result[arm]["1"], one[arm]["1"]) for arm in ("steps", "compare_steps")]
    pairs += [(result["reference"]["lengths"][k], reference[k]) for k in reference]
    pairs += [(result["long"]["iterative"]["segments"][-1], one["long"]["iterative"]["segments"][-1])]
    for pooled, row in pairs:
        for metric in ("f1", "swsd") + (("fd", "desync") if "fd" in row else ()):
            assert pooled[metric] == pytest.approx(row[metric]), metric
            assert pooled["interval"][metric] == pytest.approx(row["interval"][metric]), metric
    assert result["steps"]["1"]["each"]["fd"] == pytest.approx([one["steps"]["1"]["fd"]] * 2)
    assert result["compare_steps"]["1"]["each"]["fd"] == pytest.approx([one["compare_steps"]["1"]["fd"]])
    checked = {t["target"]: t for t in result["targets"]}
    fd = checked["shortcut FD < flow-only FD at 1 step (shortcut / flow-only)"]
    assert fd["ratio"]["interval"] == pytest.approx([1.0, 1.0]) and fd["verdict"] == "not shown"
    assert any(t.startswith("iterative extension F1") for t in checked)
    assert not any("caption" in t for t in checked)  # the text experiment was not run
    table = training_draws.each_table(result)
    assert "| steps 1 |" in table and "| long iterative 2-4 s |" in table


def test_training_draws_takes_an_evaluations_settings_and_names_what_it_cannot_use(tmp_path):
    """--settings reads an evaluation's metrics.json (its recorded settings, --clips / --steps replacing
    theirs); a file that is not one, and an experiment that does not exist, are named."""
    from bench import training_draws
    from salsa.evaluation.settings import EvalSettings

    recorded = {"settings": {**dataclasses.asdict(EvalSettings(clips=64, text_clips=8)), "fixed_steps": 4}}
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(recorded))
    settings = training_draws.settings_from(str(path), None, [1, 8])
    assert (settings.clips, settings.text_clips, settings.fixed_steps, settings.steps) == (64, 8, 4, (1, 8))
    assert training_draws.settings_from(None, 16, None) == dataclasses.replace(
        training_draws.STEPS_ONLY, clips=16
    )
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(BadInput, match="bad.json: not an evaluation's metrics.json"):
        training_draws.settings_from(str(tmp_path / "bad.json"), None, None)
    with pytest.raises(BadInput, match=r"--experiments: unknown \['sound'\]"):
        training_draws.measure(["unused"], names=("steps", "sound"))
