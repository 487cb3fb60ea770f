"""Two evaluations of the same targets side by side: which verdicts differ, and by how much each value moved.

    python -m bench.compare_runs A/eval/metrics.json B/eval/metrics.json [--out=FILE.json]

For two runs of `salsa.evaluate` (e.g. two trainings of the tiny pipeline that differ only in a seed or in
float rounding), each target of the targets table with both verdicts and, per compared value, the shift
B - A in units of the mean half-width of the two 95% intervals. The intervals are over clips (and noise
seeds); the shift says how large a second training's move is on that scale: a verdict within a shift or
two of its line is a draw of the training run. Prints one table and a summary line, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics

from salsa.io import write_json


def shifts(a: dict, b: dict) -> list[dict]:
    """Per target present in both metrics dicts: both verdicts, both values and each value's shift in
    half-widths (None where both intervals have zero width)."""
    by_name = {t["target"]: t for t in b["targets"]}
    rows = []
    for ta in a["targets"]:
        tb = by_name.get(ta["target"])
        if tb is None:
            continue
        moved = []
        for va, ia, vb, ib in zip(ta["value"], ta["interval"], tb["value"], tb["interval"], strict=True):
            half = ((ia[1] - ia[0]) + (ib[1] - ib[0])) / 4
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", help="the first run's metrics.json")
    parser.add_argument("b", help="the second run's metrics.json")
    parser.add_argument("--out", default="bench/results/compare_runs.json", help="JSON results")
    args = parser.parse_args()
    with open(args.a) as f, open(args.b) as g:
        rows = shifts(json.load(f), json.load(g))
    print("| target | verdict A | verdict B | shift / half-width |")
    print("|---|---|---|---|")
    for r in rows:
        moved = ", ".join("–" if s is None else f"{s:+.2f}" for s in r["shift_half_widths"])
        changed = "**" if r["verdicts"][0] != r["verdicts"][1] else ""
        print(f"| {r['target']} | {r['verdicts'][0]} | {changed}{r['verdicts'][1]}{changed} | {moved} |")
    total = summary(rows)
    line = f"{total['verdicts_changed']} of {total['targets']} verdicts changed; {total['values']} values"
    if total["values"]:
        line += (
            f": median |shift| {total['median_abs_shift']:.2f}, {total['over_one']} over 1, "
            f"largest {total['max_abs_shift']:.2f}"
        )
    print(line)
    write_json(args.out, {"a": args.a, "b": args.b, "summary": total, "rows": rows})


if __name__ == "__main__":
    main()
