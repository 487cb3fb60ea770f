"""Targets from a file (docs/targets.json) checked against an evaluation's results by their intervals.

A target compares one metric of a row of metrics.json (`left`, a dotted path such as "steps.8" or
"long.iterative.segments.-1") with a number or another row (`right`, times `factor`), by `comparison`:

- ">", ">=", "<", "<=": **shown** when the intervals separate in the claimed direction, **contradicted**
  when they separate the other way, else **not shown** (also when a row has no interval);
- "not <", "not >" (no worse beyond the interval): **contradicted** when the intervals separate the
  excluded way, else **shown** (a side without an interval: not shown);
- "within": **shown** when left's value lies inside right's interval, **contradicted** when the two
  intervals separate, else not shown.

A pair with `"paired": true` (a claim about a ratio of two rows scored on the same clips, such as "8 steps
within 5% of 32") is judged instead by the 95% interval of left / right over the same bootstrap draws
(salsa/metrics/bootstrap.py, `paired_ratio`) against `factor`, by the same rules: "8 >= 0.95 x 32" is
shown when the ratio's interval lies at or above 0.95, contradicted when it lies below. Two separate
intervals cannot decide such a claim when the rows differ by less than their spread over clips, however
closely they move together; the paired interval can. Rows read back from metrics.json keep no draws:
their pair is judged by the ratio interval that metrics.json's own judgment of the same rows stored
(`targets[*].ratio`, matched by the rows and metric it records, or by the claim's text in files written
before it recorded them), and by the two intervals when there is none.

Or it asks the rows of a path ending in ".*" to fall ("decreasing") or rise ("increasing") one after
another, over the keys in `rows` when given (in that order): by default each neighbouring pair's
intervals must separate; with `"separate": "ends"` the point values must move monotonically and only the
first and last rows' intervals must separate (contradicted when those separate the other way). A chain
with `"separate": "ends"`, its `rows` named and `"paired": true` (rows of the same clips: the reference
experiment's lengths) judges its ends by the interval of last / first over the same draws against 1. A
target whose rows were not evaluated (a step count, --compare, long clips, hidden acoustics) is left out.
"""

from __future__ import annotations

import json
import math
import os

from salsa.evaluation.settings import EvalError
from salsa.metrics import bootstrap

DEFAULT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "docs", "targets.json")
PAIRS = (">", ">=", "<", "<=", "not <", "not >", "within")
CHAINS = ("decreasing", "increasing")
SHOWN, NOT_SHOWN, CONTRADICTED = "shown", "not shown", "contradicted"


def load(path: str | os.PathLike = DEFAULT) -> list[dict]:
    """The targets of a targets file; EvalError naming the file and the first malformed target."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            targets = json.load(f)["targets"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EvalError(f'targets file {path}: unreadable ({e}); it holds {{"targets": [...]}}.') from None
    for i, t in enumerate(targets):
        problem = _problem(t)
        if problem:
            raise EvalError(f"targets file {path}: target {i} {problem}.")
    return targets


def _problem(t) -> str | None:
    if not isinstance(t, dict):
        return "is not an object"
    missing = [
        k for k in ("claim", "metric", "left", "comparison", "source") if not isinstance(t.get(k), str)
    ]
    if missing:
        return f"lacks the text field {missing[0]!r}"
    if t["comparison"] in CHAINS:
        if not t["left"].endswith(".*"):
            return "compares a chain; its left must end in '.*'"
        if "rows" in t and not (isinstance(t["rows"], list) and all(isinstance(k, str) for k in t["rows"])):
            return "has rows that are not a list of row keys"
        if t.get("separate", "each") not in ("each", "ends"):
            return "has separate other than each, ends"
        if t.get("paired", False) is not False and not (
            t["paired"] is True and t.get("separate") == "ends" and len(t.get("rows", [])) >= 2
        ):
            return "is a paired chain; a paired chain separates its ends and names its rows"
        return None
    if t["comparison"] not in PAIRS:
        return f"has comparison {t['comparison']!r}; use one of {', '.join(PAIRS + CHAINS)}"
    if not isinstance(t.get("right"), str | int | float) or isinstance(t.get("right"), bool):
        return "needs a right side: a number or a row path"
    if not isinstance(t.get("factor", 1.0), int | float) or t.get("factor", 1.0) <= 0:
        return "has a factor that is not a number > 0"
    if t.get("paired", False) is not False:
        if t["paired"] is not True:
            return "has paired other than true or false"
        if t["comparison"] == "within" or not isinstance(t["right"], str):
            return "is paired; a paired target compares two rows by <, <=, >, >=, 'not <' or 'not >'"
    return None


def _rows(result: dict, path: str, keys: list[str] | None = None) -> list[dict] | None:
    """The rows at a dotted path ("*" last: all of that mapping's rows, in order, or those of `keys`);
    None if absent."""
    node = result
    parts = path.split(".")
    for part in parts[:-1] if parts[-1] == "*" else parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    if parts[-1] == "*" and keys is not None:
        if not isinstance(node, dict) or any(k not in node for k in keys):
            return None
        rows = [node[k] for k in keys]
        return rows if rows and all(isinstance(r, dict) for r in rows) else None
    if parts[-1] == "*":
        rows = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else None
        return rows if rows and all(isinstance(r, dict) for r in rows) else None
    return [node] if isinstance(node, dict) else None


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def side(row: dict, metric: str) -> tuple[float | None, tuple[float, float] | None]:
    """(value, (lo, hi) or None) of a metric in a row."""
    value = row.get(metric)
    lo, hi = (row.get("interval") or {}).get(metric) or (None, None)
    return (value if _finite(value) else None), ((lo, hi) if _finite(lo) and _finite(hi) else None)


def separation(left: tuple[float, float] | None, right: tuple[float, float] | None, comparison: str) -> str:
    """The verdict of "left <comparison> right" from two intervals (a number is a zero-width one)."""
    if left is None or right is None:
        return NOT_SHOWN
    if comparison.startswith("not "):  # no worse beyond the interval: only separating the other way fails
        return CONTRADICTED if separation(left, right, comparison[4:]) == SHOWN else SHOWN
    if comparison == "within":  # intervals that separate either way contradict; else not decided here
        return CONTRADICTED if left[0] > right[1] or left[1] < right[0] else NOT_SHOWN
    if comparison in ("<", "<="):  # a claim that left is lower is the claim that -left is higher
        left, right, comparison = (-left[1], -left[0]), (-right[1], -right[0]), comparison.replace("<", ">")
    if left[0] > right[1] or (comparison == ">=" and left[0] >= right[1]):
        return SHOWN
    return CONTRADICTED if left[1] < right[0] else NOT_SHOWN  # touching intervals do not separate


def check(target: dict, result: dict) -> dict | None:
    """{"target", "source", "value", "interval", "verdict"} of one target, and "ratio" ({"value",
    "interval"}) and "rows" ({"left", "right", "metric"}) when it is judged paired; None when a row it
    reads was not evaluated or lacks the metric."""
    metric, comparison = target["metric"], target["comparison"]
    left = _rows(result, target["left"], target.get("rows") if comparison in CHAINS else None)
    ratio = None
    if comparison in CHAINS:
        if left is None or len(left) < 2:
            return None
        sides = [side(r, metric) for r in left]
        if any(value is None for value, _ in sides):
            return None
        ends = None
        if target.get("paired"):  # the last row over the first, draw by draw
            ratio = _paired(target, metric, left[-1], left[0], [sides[-1], sides[0]]) or _stored_ratio(
                target, result
            )
            ends = None if ratio is None else tuple(ratio["interval"])
        verdict = _chain(sides, comparison, target.get("separate", "each"), ends)
    else:
        right = target["right"]
        if isinstance(right, str):
            right_rows = _rows(result, right)
            if left is None or right_rows is None or left[0] is right_rows[0]:
                return None
            sides = [side(left[0], metric), side(right_rows[0], metric)]
            r_interval = sides[1][1]
        else:
            if left is None:
                return None
            sides = [side(left[0], metric)]
            r_interval = (float(right), float(right))
        if any(value is None for value, _ in sides):
            return None
        factor = float(target.get("factor", 1.0))
        if r_interval is not None:
            r_interval = (r_interval[0] * factor, r_interval[1] * factor)
        verdict = separation(sides[0][1], r_interval, comparison)
        if comparison == "within" and verdict == NOT_SHOWN and r_interval is not None:
            verdict = SHOWN if r_interval[0] <= sides[0][0] <= r_interval[1] else NOT_SHOWN
        if target.get("paired"):
            ratio = _paired(target, metric, left[0], right_rows[0], sides) or _stored_ratio(target, result)
            if ratio is not None:
                verdict = separation(tuple(ratio["interval"]), (factor, factor), comparison)
    out = {
        "target": target["claim"],
        "source": target["source"],
        "value": [value for value, _ in sides],
        "interval": [None if iv is None else list(iv) for _, iv in sides],
        "verdict": verdict,
    }
    if ratio is not None:
        out["ratio"] = ratio
        out["rows"] = _pair(target)
    return out


def _pair(target: dict) -> dict:
    """What a paired target's stored ratio is of: its two rows and metric (metrics.json's `rows`); a
    chain's pair is its last row over its first."""
    if target["comparison"] in CHAINS:
        base, rows = target["left"][: -len("*")], target["rows"]
        return {"left": base + rows[-1], "right": base + rows[0], "metric": target["metric"]}
    return {"left": target["left"], "right": target["right"], "metric": target["metric"]}


def _stored_ratio(target: dict, result: dict) -> dict | None:
    """The paired ratio ({"value", "interval"}) of the same two rows and metric that an earlier judgment
    stored in `result["targets"]` (metrics.json keeps the ratio, not the draws); None when there is none."""
    rows = _pair(target)
    for earlier in result.get("targets") or []:
        ratio = earlier.get("ratio") if isinstance(earlier, dict) else None
        if not (isinstance(ratio, dict) and isinstance(ratio.get("interval"), list)):
            continue
        same = earlier["rows"] == rows if "rows" in earlier else earlier.get("target") == target["claim"]
        if same and len(ratio["interval"]) == 2 and all(_finite(x) for x in ratio["interval"]):
            return {"value": ratio.get("value"), "interval": list(ratio["interval"])}
    return None


def _paired(target: dict, metric: str, left: dict, right: dict, sides: list) -> dict | None:
    """{"value", "interval"} of left / right over the two rows' shared bootstrap draws; None when a row
    has no draws of the metric (read back from metrics.json, or fewer than two clips). EvalError when
    the rows were scored on different clips (a targets file pairing rows that are not paired)."""
    draws = [row.get("draws") for row in (left, right)]
    if not all(isinstance(d, bootstrap.Draws) and metric in d.samples for d in draws):
        return None
    if draws[0].clips != draws[1].clips:
        rows = _pair(target)
        raise EvalError(
            f"target {target['claim']!r} pairs {rows['left']} with {rows['right']}, which were "
            "scored on different clips; only rows of the same clips can be paired."
        )
    lo, hi = bootstrap.paired_ratio(draws[0].samples[metric], draws[1].samples[metric])
    if lo is None:
        return None
    return {"value": float(bootstrap.ratio(sides[0][0], sides[1][0])), "interval": [lo, hi]}


def _chain(sides: list, comparison: str, separate: str, ratio: tuple[float, float] | None = None) -> str:
    """The verdict of a chain of (value, interval) sides falling or rising one after another; `ratio`:
    the interval of last / first over the same draws, which then decides the ends (a paired chain)."""
    op = "<" if comparison == "decreasing" else ">"
    if separate == "ends":
        values = [value for value, _ in sides]
        monotone = all((b < a) if op == "<" else (b > a) for a, b in zip(values, values[1:], strict=False))
        ends = separation(sides[-1][1], sides[0][1], op) if ratio is None else separation(ratio, (1, 1), op)
        return ends if ends != SHOWN or monotone else NOT_SHOWN
    verdicts = [separation(b[1], a[1], op) for a, b in zip(sides, sides[1:], strict=False)]
    return CONTRADICTED if CONTRADICTED in verdicts else SHOWN if set(verdicts) == {SHOWN} else NOT_SHOWN


def check_all(targets: list[dict], result: dict) -> list[dict]:
    """Every target's verdict on `result`, in the file's order, those not evaluated left out."""
    return [c for c in (check(t, result) for t in targets) if c is not None]
