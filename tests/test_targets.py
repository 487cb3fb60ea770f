"""Targets judged from an evaluation's 95% intervals (salsa/evaluation/targets.py, docs/targets.json):
separation, "not worse", "within", chains, paired ratios over shared bootstrap draws, malformed targets
files, and the baked-guidance verdict of the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from salsa.evaluation import targets
from salsa.evaluation.settings import EvalError


def _row(value, lo=None, hi=None, metric="f1"):
    return {metric: value, "interval": {} if lo is None else {metric: [lo, hi]}}


@pytest.mark.parametrize(
    "left, right, comparison, verdict",
    [
        ((0.85, 0.9), (0.8, 0.8), ">=", "shown"),  # the whole interval above the threshold
        ((0.8, 0.9), (0.8, 0.8), ">=", "shown"),
        ((0.8, 0.9), (0.8, 0.8), ">", "not shown"),
        ((0.7, 0.9), (0.8, 0.8), ">=", "not shown"),  # the point value may be above: still not shown
        ((0.6, 0.7), (0.8, 0.8), ">=", "contradicted"),
        ((0.1, 0.2), (0.3, 0.4), "<", "shown"),
        ((0.3, 0.4), (0.1, 0.2), "<", "contradicted"),
        ((0.5, 0.5), (0.5, 0.5), ">", "not shown"),  # equal: not above, but not separated below
        (None, (0.8, 0.8), ">=", "not shown"),  # no interval: nothing is shown
    ],
)
def test_target_verdicts_come_from_the_intervals(left, right, comparison, verdict):
    assert targets.separation(left, right, comparison) == verdict


def test_targets_file_rows_factor_and_chains():
    result = {
        "codec": {**_row(0.9, 0.85, 0.95), "material_accuracy": 0.9},
        "steps": {"8": _row(0.9, 0.85, 0.95), "32": _row(0.92, 0.8, 0.99)},
        "reference": {
            "lengths": {
                "0": _row(3.0, 2.9, 3.1, "swsd"),
                "0.25": _row(2.8, 2.0, 3.5, "swsd"),
                "0.5": _row(2.5, 2.0, 3.0, "swsd"),
                "1": _row(2.0, 1.9, 2.1, "swsd"),
                "1.5": _row(9.0, 8.0, 10.0, "swsd"),  # past 1 s: not part of the claim
            }
        },
        "long": {"iterative": {"segments": [_row(0.5, 0.4, 0.6), _row(0.45, 0.3, 0.5)]}},
    }
    goals = targets.load()  # docs/targets.json
    checked = {t["target"]: t for t in targets.check_all(goals, result)}
    # not evaluated: 1 and 2 steps, --compare, text, one-shot, FD / DeSync / probes; the rest judged
    assert set(checked) == {
        "onset F1 >= 0.8 at 8 steps",
        "onset F1 at 8 steps >= 0.9 x the codec's (8 / codec)",
        "8-step F1 within 5% of 32-step (8 / 32)",
        "SWSD falls with reference length 0 -> 1 s, 0 vs 1 s separated",
        "iterative extension F1: last segment within the first's interval (last / first)",
    }
    assert checked["onset F1 >= 0.8 at 8 steps"]["verdict"] == "shown"
    assert checked["onset F1 at 8 steps >= 0.9 x the codec's (8 / codec)"]["verdict"] == "not shown"
    within = checked["8-step F1 within 5% of 32-step (8 / 32)"]
    assert within["value"] == [0.9, 0.92] and within["verdict"] == "not shown"  # 0.85 < 0.95 * 0.99
    # monotone point values and separated ends suffice; neighbouring steps need not separate
    chain = checked["SWSD falls with reference length 0 -> 1 s, 0 vs 1 s separated"]
    assert chain["value"] == [3.0, 2.8, 2.5, 2.0] and chain["verdict"] == "shown"
    assert (
        checked["iterative extension F1: last segment within the first's interval (last / first)"]["verdict"]
        == "shown"
    )
    result["reference"]["lengths"]["0.5"] = _row(3.2, 2.0, 4.0, "swsd")  # not monotone: not shown
    result["long"]["iterative"]["segments"][-1] = _row(0.2, 0.1, 0.3)  # separated below the first
    again = {t["target"]: t["verdict"] for t in targets.check_all(goals, result)}
    assert again["SWSD falls with reference length 0 -> 1 s, 0 vs 1 s separated"] == "not shown"
    assert again["iterative extension F1: last segment within the first's interval (last / first)"] == (
        "contradicted"
    )


def _drawn(values: np.ndarray, clips=tuple(range(64)), metric="f1") -> dict:
    """A row of per-clip values (their mean), with its bootstrap interval and draws."""
    from salsa.metrics import bootstrap

    draws = bootstrap.counts(len(values)) @ values / len(values)
    return {
        metric: float(values.mean()),
        "interval": {metric: list(bootstrap.interval(draws))},
        "draws": bootstrap.Draws(clips, {metric: draws}),
    }


def test_a_paired_target_is_judged_by_the_ratio_over_the_same_draws():
    from salsa.evaluation import report

    rng = np.random.default_rng(0)
    per_clip = rng.uniform(0.2, 0.8, 64)  # the clips differ far more than the two rows do
    result = {"steps": {"8": _drawn(per_clip * 0.99), "32": _drawn(per_clip)}}
    goal = {
        "claim": "8 within 5% of 32",
        "metric": "f1",
        "left": "steps.8",
        "comparison": ">=",
        "right": "steps.32",
        "factor": 0.95,
        "paired": True,
        "source": "s",
    }
    checked = targets.check(goal, result)
    assert checked["verdict"] == "shown" and checked["ratio"]["value"] == pytest.approx(0.99)
    assert checked["ratio"]["interval"] == pytest.approx([0.99, 0.99])  # every draw: the same ratio
    unpaired = targets.check({**goal, "paired": False}, result)
    assert unpaired["verdict"] == "not shown" and "ratio" not in unpaired  # the intervals overlap
    result["steps"]["8"] = _drawn(per_clip * 0.9)
    assert targets.check(goal, result)["verdict"] == "contradicted"
    # metrics.json keeps the intervals and the judged ratio, not the draws: read back, the target is
    # judged by the ratio its own judgment stored for the same rows (a changed factor too), and falls
    # back to the two intervals when none is stored
    result["targets"] = targets.check_all([goal], result)
    assert result["targets"][0]["rows"] == {"left": "steps.8", "right": "steps.32", "metric": "f1"}
    saved = json.loads(json.dumps(report.jsonable(result)))
    assert "draws" not in saved["steps"]["8"]
    again = targets.check({**goal, "claim": "renamed", "factor": 0.85}, saved)
    assert again["verdict"] == "shown" and again["ratio"]["interval"] == pytest.approx([0.9, 0.9])
    del saved["targets"][0]["rows"]  # a file from before the rows were recorded: matched by the claim
    assert targets.check(goal, saved)["verdict"] == "contradicted"
    assert targets.check({**goal, "claim": "renamed"}, saved)["verdict"] == "not shown"
    assert targets.check(goal, {**saved, "targets": []})["verdict"] == "not shown"
    line = report.targets_section([checked])[-1]
    assert "; ratio 0.99 [0.99, 0.99] | shown |" in line
    result["steps"]["32"] = _drawn(per_clip, clips=tuple(range(1, 65)))
    with pytest.raises(EvalError, match="'8 within 5% of 32' pairs steps.8 with steps.32, which were scored"):
        targets.check(goal, result)


def test_a_paired_chain_judges_its_ends_over_the_same_draws():
    from salsa.evaluation import report

    rng = np.random.default_rng(1)
    per_clip = rng.uniform(0.2, 0.8, 64)  # one set of clips, each row 3% below the one before
    lengths = {k: _drawn(per_clip * 0.97**i, metric="swsd") for i, k in enumerate(("0", "0.5", "1"))}
    goal = {
        "claim": "SWSD falls with reference length",
        "metric": "swsd",
        "left": "reference.lengths.*",
        "comparison": "decreasing",
        "rows": ["0", "0.5", "1"],
        "separate": "ends",
        "paired": True,
        "source": "s",
    }
    result = {"reference": {"lengths": lengths}}
    checked = targets.check(goal, result)
    assert checked["verdict"] == "shown" and checked["ratio"]["interval"] == pytest.approx([0.9409, 0.9409])
    assert checked["rows"] == {
        "left": "reference.lengths.1",
        "right": "reference.lengths.0",
        "metric": "swsd",
    }
    assert targets.check({**goal, "paired": False}, result)["verdict"] == "not shown"  # intervals overlap
    assert "; ratio 0.941 [0.941, 0.941] | shown |" in report.targets_section([checked])[-1]
    # read back from metrics.json (no draws): the ratio its own judgment stored decides the ends
    result["targets"] = [checked]
    saved = json.loads(json.dumps(report.jsonable(result)))
    assert targets.check(goal, saved)["verdict"] == "shown"
    lengths["0.5"] = _drawn(per_clip * 1.01, metric="swsd")  # not monotone: not shown, however paired
    assert targets.check(goal, {"reference": {"lengths": lengths}})["verdict"] == "not shown"
    lengths["1"] = _drawn(per_clip * 0.9, clips=tuple(range(1, 65)), metric="swsd")
    with pytest.raises(EvalError, match="pairs reference.lengths.1 with reference.lengths.0, which were"):
        targets.check(goal, {"reference": {"lengths": lengths}})


def test_only_pairs_of_rows_are_paired(tmp_path):
    path = tmp_path / "targets.json"
    goal = '{"claim": "x", "metric": "f1", "left": "steps.8", "source": "s", "paired": true'
    path.write_text('{"targets": [' + goal + ', "comparison": ">=", "right": 0.5}]}')
    with pytest.raises(EvalError, match="target 0 is paired; a paired target compares two rows"):
        targets.load(path)
    path.write_text('{"targets": [' + goal + ', "comparison": "within", "right": "steps.32"}]}')
    with pytest.raises(EvalError, match="target 0 is paired"):
        targets.load(path)
    chain = '{"claim": "x", "metric": "f1", "left": "steps.*", "source": "s", "comparison": "decreasing"'
    ends = ', "separate": "ends", "rows": ["1", "2"]'
    for rest in (', "paired": true}', ', "paired": true, "separate": "ends"}', ', "paired": 1' + ends + "}"):
        path.write_text('{"targets": [' + chain + rest + "]}")
        with pytest.raises(EvalError, match="target 0 is a paired chain; a paired chain separates its ends"):
            targets.load(path)


@pytest.mark.parametrize(
    "left, right, comparison, verdict",
    [
        ((0.4, 0.6), (0.5, 0.7), "not <", "shown"),  # overlapping: not worse beyond the interval
        ((0.1, 0.2), (0.5, 0.7), "not <", "contradicted"),
        ((0.8, 0.9), (0.5, 0.7), "not <", "shown"),
        ((0.8, 0.9), (0.5, 0.7), "not >", "contradicted"),
        ((0.8, 0.9), (0.5, 0.7), "within", "contradicted"),
        (None, (0.5, 0.7), "not <", "not shown"),
    ],
)
def test_no_worse_and_within_verdicts(left, right, comparison, verdict):
    assert targets.separation(left, right, comparison) == verdict


def test_a_malformed_targets_file_is_one_error_naming_it(tmp_path):
    path = tmp_path / "targets.json"
    path.write_text(
        '{"targets": [{"claim": "x", "metric": "f1", "left": "steps.8", "source": "s",'
        ' "comparison": "about"}]}'
    )
    with pytest.raises(EvalError, match=r"targets\.json: target 0 has comparison 'about'"):
        targets.load(path)
    with pytest.raises(EvalError, match="unreadable"):
        targets.load(tmp_path / "none.json")


def test_guided_verdict_counts_step_counts_by_intervals():
    from salsa.evaluation.report import guided_verdict

    def side(f1, lo, hi, seconds):
        return {"f1": f1, "interval": {"f1": [lo, hi]}, "sampling_seconds_per_clip": seconds}

    g = {
        "steps": {
            "1": {"baked": side(0.5, 0.4, 0.6, 1.0), "cfg": side(0.9, 0.8, 1.0, 2.0)},  # CFG shown better
            "2": {"baked": side(0.6, 0.5, 0.7, 1.0), "cfg": side(0.55, 0.4, 0.7, 2.5)},  # overlap
            "4": {"baked": side(0.9, 0.85, 0.95, 1.0), "cfg": side(0.5, 0.4, 0.6, 2.0)},  # baked shown better
        }
    }
    text = guided_verdict(g)
    assert text.startswith("Baked guidance is as good as or better than CFG at F1 2 of 3 step counts")
    assert "shown better at F1 1;" in text and "0.40–0.50×" in text
