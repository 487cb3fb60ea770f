"""Evaluations of the same targets side by side: which verdicts differ, and by how much each value moved.

    python -m bench.compare_runs A/eval/metrics.json B/eval/metrics.json [C/eval/metrics.json ...]
        [--targets=docs/targets.json] [--out=FILE.json]

For runs of `salsa.evaluate` (e.g. trainings of the tiny pipeline that differ only in a seed or in float
rounding), each target of the targets table with every run's verdict and, per compared value, the shift
of each later run from the first in units of the mean half-width of the two 95% intervals. The intervals
are over clips (and noise seeds); the shift says how large another training's move is on that scale: a
verdict within a shift or two of its line is a draw of the training run. Two runs: one table of the
verdicts and shifts and a summary line; more: a table of every run's verdict, then a summary line per
run against the first. `--targets=docs/targets.json` judges every run again by today's targets file
(a paired target by the ratio interval the run's metrics.json stored for the same rows, since it keeps
no bootstrap draws; by its two intervals when it stored none). Writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics

from salsa.evaluation import targets as targets_lib
from salsa.evaluation.settings import EvalError
from salsa.io import write_json


def shifts(a: dict, b: dict) -> list[dict]:
    """Per target present in both metrics dicts: both verdicts, both values and each value's shift in
    half-widths (None where either has no interval or both have zero width)."""
    by_name = {t["target"]: t for t in b["targets"]}
    rows = []
    for ta in a["targets"]:
        tb = by_name.get(ta["target"])
        if tb is None:
            continue
        moved = []
        for va, ia, vb, ib in zip(ta["value"], ta["interval"], tb["value"], tb["interval"], strict=True):
            half = None if ia is None or ib is None else ((ia[1] - ia[0]) + (ib[1] - ib[0])) / 4
            moved.append((vb - va) / half if half else None)
        rows.append(
            {
                "target": ta["target"],
                "verdicts": [ta["verdict"], tb["verdict"]],
                "values": [ta["value"], tb["value"]],
                "shift_half_widths": moved,
            }
        )
    return rows


def summary(rows: list[dict]) -> dict:
    sizes = [abs(s) for r in rows for s in r["shift_half_widths"] if s is not None]
    return {
        "targets": len(rows),
        "verdicts_changed": sum(r["verdicts"][0] != r["verdicts"][1] for r in rows),
        "values": len(sizes),
        "median_abs_shift": statistics.median(sizes) if sizes else None,
        "over_one": sum(s > 1 for s in sizes),
        "max_abs_shift": max(sizes) if sizes else None,
    }


def verdicts(runs: list[dict]) -> list[dict]:
    """Per target present in every run: each run's verdict, whether they all agree, and each run's values."""
    named = [{t["target"]: t for t in r["targets"]} for r in runs]
    rows = []
    for t in runs[0]["targets"]:
        if all(t["target"] in n for n in named):
            mine = [n[t["target"]] for n in named]
            kinds = [m["verdict"] for m in mine]
            rows.append(
                {
                    "target": t["target"],
                    "verdicts": kinds,
                    "stable": len(set(kinds)) == 1,
                    "values": [m["value"] for m in mine],
                }
            )
    return rows


def _summary_line(total: dict) -> str:
    line = f"{total['verdicts_changed']} of {total['targets']} verdicts changed; {total['values']} values"
    if total["values"]:
        line += (
            f": median |shift| {total['median_abs_shift']:.2f}, {total['over_one']} over 1, "
            f"largest {total['max_abs_shift']:.2f}"
        )
    return line


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="two or more runs' metrics.json; shifts are from the first")
    parser.add_argument("--out", default="bench/results/compare_runs.json", help="JSON results")
    parser.add_argument(
        "--targets",
        default="",
        help="judge every run again by this targets file (e.g. docs/targets.json, for runs evaluated under "
        "an older one); default: the verdicts each run's metrics.json holds",
    )
    args = parser.parse_args()
    if len(args.runs) < 2:
        parser.error("give at least two metrics.json files")
    runs = []
    for path in args.runs:
        with open(path) as f:
            runs.append(json.load(f))
    if args.targets:
        try:
            goals = targets_lib.load(args.targets)
        except EvalError as e:
            parser.error(str(e))
        for run in runs:
            run["targets"] = targets_lib.check_all(goals, run)
    pairs = []
    for path, run in zip(args.runs[1:], runs[1:], strict=True):
        rows = shifts(runs[0], run)
        pairs.append({"a": args.runs[0], "b": path, "summary": summary(rows), "rows": rows})
    table = verdicts(runs)
    if len(runs) == 2:
        print("| target | verdict A | verdict B | shift / half-width |")
        print("|---|---|---|---|")
        for r in pairs[0]["rows"]:
            moved = ", ".join("–" if s is None else f"{s:+.2f}" for s in r["shift_half_widths"])
            changed = "**" if r["verdicts"][0] != r["verdicts"][1] else ""
            print(f"| {r['target']} | {r['verdicts'][0]} | {changed}{r['verdicts'][1]}{changed} | {moved} |")
    else:
        print("| target | " + " | ".join(f"run {k + 1}" for k in range(len(runs))) + " |")
        print("|---" * (len(runs) + 1) + "|")
        for r in table:
            mark = "" if r["stable"] else "**"
            print(f"| {mark}{r['target']}{mark} | " + " | ".join(r["verdicts"]) + " |")
        print(f"{sum(r['stable'] for r in table)} of {len(table)} targets keep their verdict in every run")
        for k, path in enumerate(args.runs):
            print(f"run {k + 1}: {path}")
    for k, pair in enumerate(pairs):
        prefix = "" if len(runs) == 2 else f"run {k + 2} against run 1: "
        print(prefix + _summary_line(pair["summary"]))
    write_json(args.out, {"runs": args.runs, "verdicts": table, "pairs": pairs})


if __name__ == "__main__":
    main()
