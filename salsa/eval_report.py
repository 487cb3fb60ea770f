"""The files `salsa.evaluate` writes: metrics.json, metrics.md and the PNG plots, each atomically.

steps.png      metrics against sampling steps (paper Fig. 5 left), flow-only overlaid with --compare
long.png       onset F1 and SWSD per segment of long clips: iterative extension vs one window
               (Fig. 5 right)
reference.png  SWSD and FD of the generated section against the reference length (Fig. 6)
Values in tables and plots carry their 95% bootstrap interval over clips (± half-width, error bars).
compare.png    shortcut vs flow-only at equal steps (Table 2 in miniature), with --compare only
guided.png     guidance baked into training (1 branch per step) vs CFG (2 branches): quality and
               sampling time against steps, with --guided only
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = [  # (key, header, format)
    ("precision", "P", "{:.3f}"),
    ("recall", "R", "{:.3f}"),
    ("f1", "F1", "{:.3f}"),
    ("mean_abs_offset_s", "offset ms", "ms"),
    ("material_accuracy", "material acc.", "{:.3f}"),
    ("swsd", "SWSD", "{:.4f}"),
    ("fd", "FD", "{:.3f}"),
    ("kl", "KL", "{:.3f}"),
    ("is", "IS", "{:.2f}"),
    ("desync", "DeSync s", "{:.2f}"),
]
PLOTTED = [
    ("f1", "onset F1 (±50 ms) ↑"),
    ("fd", "FD (sync audio tower) ↓"),
    ("swsd", "SWSD ↓"),
    ("desync", "DeSync (s) ↓"),
    ("material_accuracy", "material accuracy ↑"),
    ("kl", "KL ↓"),
]


def jsonable(x):
    """x with NaN / inf as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def targets(r: dict) -> list[dict]:
    """The issue's targets on the synthetic test split, each {"target", "value", "met"}; a target whose
    inputs were not evaluated (a step count, --compare, long clips) is left out."""
    out = []

    def f1(rows, k):
        return (rows or {}).get(k, {}).get("f1")

    steps, flow = r["steps"], r.get("compare_steps")
    if f1(steps, "8") is not None:
        out.append(dict(target="onset F1 >= 0.8 at 8 steps", value=f1(steps, "8"), met=f1(steps, "8") >= 0.8))
    if f1(steps, "8") is not None and f1(steps, "32") is not None:
        a, b = f1(steps, "8"), f1(steps, "32")
        out.append(dict(target="8-step F1 within 5% of 32-step (8 / 32)", value=[a, b], met=a >= 0.95 * b))
    for k in ("1", "2"):
        if f1(steps, k) is not None and f1(flow, k) is not None:
            a, b = f1(steps, k), f1(flow, k)
            name = f"shortcut F1 > flow-only F1 at {k} steps (shortcut / flow-only)"
            out.append(dict(target=name, value=[a, b], met=a > b))
    long = r.get("long")
    if long and len(long["segments"]) >= 2:
        it, one = ([s["f1"] for s in long[m]["segments"]] for m in ("iterative", "one_shot"))
        for name, seg, met in (
            ("iterative F1: last segment >= first (first / last)", it, it[-1] >= it[0]),
            ("one-shot F1: last segment < first (first / last)", one, one[-1] < one[0]),
        ):
            out.append(dict(target=name, value=[seg[0], seg[-1]], met=met))
    swsd = [v["swsd"] for v in r["reference"]["lengths"].values()]
    if len(swsd) >= 2:
        down = all(b < a for a, b in zip(swsd, swsd[1:], strict=False))
        out.append(dict(target="SWSD decreasing with reference length (0 s first)", value=swsd, met=down))
    return out


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _cell(value, fmt: str, interval=None) -> str:
    """value in `fmt`, with ± the half-width of its interval [lo, hi] when one is given."""
    if _missing(value):
        return "–"
    text = f"{value * 1e3:.1f}" if fmt == "ms" else fmt.format(value)
    text = text.lstrip("-") if float(text) == 0 else text  # round-off below 0 (FD of equal sets)
    if interval is None or _missing(interval[0]) or _missing(interval[1]):
        return text
    half = (interval[1] - interval[0]) / 2
    return f"{text} ± {f'{half * 1e3:.1f}' if fmt == 'ms' else fmt.format(half)}"


def _table(rows: list[tuple[str, dict]], first: str) -> list[str]:
    lines = [
        "| " + " | ".join([first] + [h for _, h, _ in COLUMNS]) + " |",
        "|" + "---|" * (len(COLUMNS) + 1),
    ]
    for name, m in rows:
        iv = m.get("interval", {})
        lines.append(
            "| " + " | ".join([name] + [_cell(m.get(k), f, iv.get(k)) for k, _, f in COLUMNS]) + " |"
        )
    return lines


def markdown(r: dict) -> str:
    s, g = r["split"], r["geometry"]
    lines = [
        "# Evaluation",
        "",
        f"Checkpoint `{r['checkpoint']}`; split `{s['name']}` (world seed {s['world_seed']}, clips "
        f"{s['clip_indices'][0]}–{s['clip_indices'][1] - 1} of {g['window_s']:g} s); cfg "
        f"{r['settings']['cfg']:g}; noise seed {r['settings']['seed']}; {g['sample_rate']} Hz × "
        f"{g['channels']}. FD over the {r['embedding']}; KL and IS over the {r['classifier']}. "
        "Ground truth scored through the same code is the ceiling. Metrics: docs/evaluation.md.",
        "",
        "## Sampling steps (Fig. 5 left)",
        "",
        *_table([("ground truth", r["ground_truth"])] + [(k, v) for k, v in r["steps"].items()], "steps"),
    ]
    if r.get("compare_steps"):
        lines += ["", "## Shortcut vs flow-only at equal steps (Table 2 in miniature)", ""]
        lines += [f"Flow-only checkpoint `{r['compare']}`.", ""]
        rows = []
        for k in r["steps"]:
            rows += [(f"{k} shortcut", r["steps"][k]), (f"{k} flow-only", r["compare_steps"][k])]
        lines += _table(rows, "steps, training")
    ref = r["reference"]
    lines += ["", f"## Reference audio length (Fig. 6), {ref['steps']} steps", ""]
    lines += [
        "The first L s of each clip's ground-truth audio are given as clean reference; only the rest of the "
        "window is scored.",
        "",
    ]
    lines += _table([(f"{k} s", v) for k, v in ref["lengths"].items()], "reference")
    if ref["skipped"]:
        skipped = ", ".join(f"{x:g}" for x in ref["skipped"])
        lines += ["", f"Skipped: {skipped} s (leaves less than 0.5 s of the window to generate)."]
    long = r.get("long")
    if long:
        lines += ["", f"## Long clips (Fig. 5 right), {long['steps']} steps", ""]
        seconds = r["settings"]["long_seconds"]
        lines += [
            f"{s['long_clip_indices'][1] - s['long_clip_indices'][0]} clips of {seconds:g} s (indices "
            f"{s['long_clip_indices'][0]}..): iterative extension in {g['window_s']:g} s windows against one "
            f"{seconds:g} s window. Onset F1 per {long['segment_seconds']:g} s segment:",
            "",
        ]
        segs = long["segments"]
        head = ["method", "all", *[f"{a:g}–{b:g} s" for a, b in segs]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in ("ground_truth", "iterative", "one_shot"):
            m = long[name]
            cells = [_cell(m["f1"], "{:.3f}")] + [_cell(x["f1"], "{:.3f}") for x in m["segments"]]
            lines.append("| " + " | ".join([name.replace("_", " "), *cells]) + " |")
        lines += ["", *_table([(n.replace("_", " "), long[n]) for n in ("iterative", "one_shot")], "method")]
    if r.get("targets"):
        lines += ["", "## Targets (issue 7)", "", "| target | value | met |", "|---|---|---|"]
        for t in r["targets"]:
            v = t["value"] if isinstance(t["value"], list) else [t["value"]]
            value = " / ".join(_cell(x, "{:.3g}") for x in v)
            lines.append(f"| {t['target']} | {value} | {'yes' if t['met'] else 'no'} |")
    if r.get("guided_steps"):
        lines += ["", *guided_section(r)]
    lines += ["", f"Plots: {', '.join(r['plots'])}. Evaluation took {r['seconds']:.0f} s.", ""]
    return "\n".join(lines)


GUIDED_COLUMNS = [
    ("f1", "F1", "{:.3f}"),
    ("fd", "FD", "{:.3f}"),
    ("desync", "DeSync s", "{:.2f}"),
    ("swsd", "SWSD", "{:.4f}"),
    ("material_accuracy", "material acc.", "{:.3f}"),
    ("sampling_seconds_per_clip", "sampling ms/clip", "ms"),
]


def guided_verdict(g: dict) -> str:
    """One sentence: at how many step counts the baked model at 1 branch matches CFG at 2 on F1, FD
    and DeSync, and the sampling time it takes relative to CFG."""
    rows = g["steps"].values()

    def no_worse(key, higher_better):
        pairs = [(x["baked"].get(key), x["cfg"].get(key)) for x in rows]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        return sum((a >= b) if higher_better else (a <= b) for a, b in pairs), len(pairs)

    parts = [
        f"{k} {a} of {n}"
        for k, (a, n) in (
            ("F1", no_worse("f1", True)),
            ("FD", no_worse("fd", False)),
            ("DeSync", no_worse("desync", False)),
        )
        if n
    ]
    ratio = [x["baked"]["sampling_seconds_per_clip"] / x["cfg"]["sampling_seconds_per_clip"] for x in rows]
    return (
        f"Baked guidance is as good as or better than CFG at {', '.join(parts)} step counts, sampling in "
        f"{min(ratio):.2f}–{max(ratio):.2f}× CFG's time per clip."
    )


def guided_section(r: dict) -> list[str]:
    g = r["guided_steps"]
    head = ["steps", "sampling", "branches/step", *[h for _, h, _ in GUIDED_COLUMNS]]
    lines = [
        "## Guidance baked into training vs CFG at sampling (issue 14)",
        "",
        f"Checkpoint with guidance baked in (objective.sc_guidance {g['baked_scale']:g}, mix "
        f"{g['baked_mix']:g}): `{r['guided']}`, sampled with its default guidance, against this "
        f"checkpoint with CFG at w = {r['settings']['cfg']:g}. Sampling time: the generator's sampling "
        f"loop alone, compiled, best of {r['settings']['timing_repeats']} runs over {g['timing_clips']} "
        "clips in one batch.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for k, sides in g["steps"].items():
        for name, label in (("baked", "baked in"), ("cfg", f"CFG w={sides['cfg']['cfg']:g}")):
            m = sides[name]
            if name == "baked" and m["cfg"] != 1.0:
                label = f"baked in + CFG w={m['cfg']:g}"
            cells = [_cell(m.get(c), f, m.get("interval", {}).get(c)) for c, _, f in GUIDED_COLUMNS]
            lines.append("| " + " | ".join([k, label, str(m["branches"]), *cells]) + " |")
    return lines + ["", guided_verdict(g)]


def _steps_axis(ax, steps):
    ax.set_xscale("log", base=2)
    ax.set_xlim(min(steps) / 1.5, max(steps) * 1.5)  # also when every value is missing (NaN)
    ax.set_xticks(steps, [str(s) for s in steps])
    ax.set_xlabel("sampling steps")


def _values(rows: dict, key: str) -> list[float]:
    return [math.nan if v.get(key) is None else v[key] for v in rows.values()]


def _errors(rows: dict, key: str) -> list[list[float]]:
    """Matplotlib's yerr (2, n): distances from each value down and up to its interval (0 without)."""
    down, up = [], []
    for v in rows.values():
        lo, hi = v.get("interval", {}).get(key, (None, None))
        ok = not any(_missing(x) for x in (v.get(key), lo, hi))
        down.append(max(v[key] - lo, 0.0) if ok else 0.0)
        up.append(max(hi - v[key], 0.0) if ok else 0.0)
    return [down, up]


def plot_steps(r: dict, path: str) -> None:
    steps = [int(k) for k in r["steps"]]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), layout="constrained")
    for ax, (key, title) in zip(axes.flat, PLOTTED, strict=True):
        ax.errorbar(
            steps, _values(r["steps"], key), _errors(r["steps"], key), fmt="o-", capsize=3, label="shortcut"
        )
        if r.get("compare_steps"):
            rows = r["compare_steps"]
            ax.errorbar(
                steps, _values(rows, key), _errors(rows, key), fmt="s--", capsize=3, label="flow-only"
            )
        truth = r["ground_truth"].get(key)
        if truth is not None and math.isfinite(truth):
            ax.axhline(truth, color="gray", lw=0.8, ls=":", label="ground truth")
        ax.set_title(title)
        _steps_axis(ax, steps)
    axes.flat[0].legend()
    fig.suptitle("Metrics vs sampling steps (Fig. 5 left)")
    _save(fig, path)


def plot_long(r: dict, path: str) -> None:
    long = r["long"]
    ends = [b for _, b in long["segments"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for name, style in (("iterative", "o-"), ("one_shot", "s--"), ("ground_truth", ":")):
        label = {"iterative": "iterative extension", "one_shot": "one window", "ground_truth": "ground truth"}
        axes[0].plot(ends, [s["f1"] for s in long[name]["segments"]], style, label=label[name])
        if name != "ground_truth":
            axes[1].plot(ends, [s["swsd"] for s in long[name]["segments"]], style, label=label[name])
    axes[0].set_title(f"onset F1 per {long['segment_seconds']:g} s segment ↑")
    axes[1].set_title("SWSD per segment ↓")
    for ax in axes:
        ax.set_xlabel("generated length (s, segment end)")
        ax.axvline(r["geometry"]["window_s"], color="gray", lw=0.8, ls=":")  # the training window
    axes[0].legend()
    window = r["geometry"]["window_s"]
    fig.suptitle(f"Long clips (Fig. 5 right); dotted line: one {window:g} s training window")
    _save(fig, path)


def plot_reference(r: dict, path: str) -> None:
    lengths = r["reference"]["lengths"]
    x = [float(k) for k in lengths]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    for ax, (key, title) in zip(axes, (("swsd", "SWSD ↓"), ("fd", "FD (sync audio tower) ↓")), strict=True):
        ax.errorbar(x, _values(lengths, key), _errors(lengths, key), fmt="o-", capsize=3)
        ax.set_title(title)
        ax.set_xlabel("reference length (s); 0 = none")
    fig.suptitle("Generated section vs ground truth, by reference length (Fig. 6)")
    _save(fig, path)


def plot_compare(r: dict, path: str) -> None:
    steps = [int(k) for k in r["steps"]]
    keys = (("f1", "onset F1 ↑"), ("fd", "FD ↓"), ("swsd", "SWSD ↓"))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
    width = 0.35
    pos = list(range(len(steps)))
    for ax, (key, title) in zip(axes, keys, strict=True):
        for shift, name, label in ((-1, "steps", "shortcut"), (1, "compare_steps", "flow-only")):
            rows = r[name]
            x = [p + shift * width / 2 for p in pos]
            ax.bar(x, _values(rows, key), width, yerr=_errors(rows, key), capsize=3, label=label)
        ax.set_xticks(pos, [str(s) for s in steps])
        ax.set_xlabel("sampling steps")
        ax.set_title(title)
    axes[0].legend()
    fig.suptitle("Shortcut vs flow-only training at equal steps (Table 2 in miniature)")
    _save(fig, path)


def plot_guided(r: dict, path: str) -> None:
    g = r["guided_steps"]
    steps = [int(k) for k in g["steps"]]
    keys = (("f1", "onset F1 ↑"), ("fd", "FD ↓"), ("desync", "DeSync (s) ↓"))
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8), layout="constrained")
    for name, style, label in (("baked", "o-", "baked in, 1 branch"), ("cfg", "s--", "CFG, 2 branches")):
        rows = {k: v[name] for k, v in g["steps"].items()}
        for ax, (key, title) in zip(axes, keys, strict=False):
            ax.plot(steps, _values(rows, key), style, label=label)
            ax.set_title(title)
        ms = [1e3 * v for v in _values(rows, "sampling_seconds_per_clip")]
        axes[3].plot(steps, ms, style, label=label)
    axes[3].set_title("sampling ms per clip ↓")
    for ax in axes:
        _steps_axis(ax, steps)
    axes[0].legend()
    fig.suptitle("Guidance baked into training vs CFG at sampling")
    _save(fig, path)


def _save(fig, path: str) -> None:
    fd, temp = tempfile.mkstemp(suffix=".png", dir=os.path.dirname(path))
    os.close(fd)
    try:
        fig.savefig(temp, dpi=100, bbox_inches="tight")
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    finally:
        plt.close(fig)
        if os.path.exists(temp):
            os.remove(temp)


def _write_text(path: str, text: str) -> None:
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(temp, 0o644)
    os.replace(temp, path)


def write(out: str, result: dict) -> None:
    """Plots, then metrics.json and metrics.md (result gets its "plots" list)."""
    plots = {"steps.png": plot_steps, "reference.png": plot_reference}
    if result.get("long"):
        plots["long.png"] = plot_long
    if result.get("compare_steps"):
        plots["compare.png"] = plot_compare
    if result.get("guided_steps"):
        plots["guided.png"] = plot_guided
    result["plots"] = list(plots)
    result["targets"] = targets(result)
    for name, plot in plots.items():
        plot(result, os.path.join(out, name))
    _write_text(os.path.join(out, "metrics.json"), json.dumps(jsonable(result), indent=1) + "\n")
    _write_text(os.path.join(out, "metrics.md"), markdown(result))
