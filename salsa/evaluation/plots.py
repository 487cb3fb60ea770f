"""The PNG plots of an evaluation, each from the metrics.json dict and written atomically.

steps.png      metrics against sampling steps (paper Fig. 5 left), flow-only overlaid with --compare
long.png       onset F1 and SWSD per segment of long clips (iterative extension vs one window), and their FD
               (Fig. 5 right)
reference.png  SWSD, FD and (with hidden acoustics) the hidden-property probes' accuracy of the
               generated section against the reference length (Fig. 6)
text.png       the probes' accuracy with the caption without vs with its hidden-acoustics words
compare.png    shortcut vs flow-only at equal steps (Table 2 in miniature), with --compare only
guided.png     guidance baked into training (1 branch per step) vs CFG (2 branches): quality and
               sampling time against steps, with --guided only
Values carry their 95% bootstrap interval over clips as error bars.
"""

from __future__ import annotations

import math

import matplotlib

from salsa import io

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PLOTTED = [
    ("f1", "onset F1 (±50 ms) ↑"),
    ("fd", "FD (sync audio tower) ↓"),
    ("swsd", "SWSD ↓"),
    ("desync", "DeSync (s) ↓"),
    ("material_accuracy", "material accuracy ↑"),
    ("kl", "KL ↓"),
]
PROBES = ("room", "microphone", "pitch")  # salsa.evaluation.hidden.PROPERTIES


def missing(value) -> bool:
    """No value to show: None, NaN or infinite."""
    return value is None or (isinstance(value, float) and not math.isfinite(value))


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
        ok = not any(missing(x) for x in (v.get(key), lo, hi))
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
    label = {"iterative": "iterative extension", "one_shot": "one window", "ground_truth": "ground truth"}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    for name, style in (("iterative", "o-"), ("one_shot", "s--"), ("ground_truth", ":")):
        segments = dict(enumerate(long[name]["segments"]))
        axes[0].errorbar(
            ends, _values(segments, "f1"), _errors(segments, "f1"), fmt=style, capsize=3, label=label[name]
        )
        if name != "ground_truth":
            axes[1].errorbar(ends, _values(segments, "swsd"), _errors(segments, "swsd"), fmt=style, capsize=3)
    axes[0].set_title(f"onset F1 per {long['segment_seconds']:g} s segment ↑")
    axes[1].set_title("SWSD per segment ↓")
    for ax in axes[:2]:
        ax.set_xlabel("generated length (s, segment end)")
        ax.axvline(r["geometry"]["window_s"], color="gray", lw=0.8, ls=":")  # the training window
    axes[0].legend()
    # FD over the whole clips (a distance between distributions: one value per method, no segments).
    methods = {label[name]: long[name] for name in ("iterative", "one_shot")}
    fd, fd_errors = _values(methods, "fd"), _errors(methods, "fd")
    axes[2].bar(range(len(methods)), fd, yerr=fd_errors, capsize=4, color=["C0", "C1"])
    axes[2].set_xticks(range(len(methods)), list(methods))
    axes[2].set_title("FD over the whole clips ↓")
    window = r["geometry"]["window_s"]
    fig.suptitle(f"Long clips (Fig. 5 right), 95% intervals; dotted line: one {window:g} s training window")
    _save(fig, path)


def plot_reference(r: dict, path: str) -> None:
    lengths = r["reference"]["lengths"]
    x = [float(k) for k in lengths]
    probed = all("room_accuracy" in v for v in lengths.values())
    panels = 3 if probed else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.8), layout="constrained")
    other = r["reference"].get("other_clip")  # the control: the longest reference from another clip
    for ax, (key, title) in zip(axes, (("swsd", "SWSD ↓"), ("fd", "FD (sync audio tower) ↓")), strict=False):
        ax.errorbar(x, _values(lengths, key), _errors(lengths, key), fmt="o-", capsize=3, label="own clip's")
        if other is not None:
            ax.errorbar(
                [max(x) * 1.03],  # beside the clip's own reference of the same length
                _values({"other": other}, key),
                _errors({"other": other}, key),
                fmt="s",
                mfc="none",
                color="tab:red",
                capsize=3,
                label="another clip's",
            )
            ax.legend()
        ax.set_title(title)
    if probed:
        for name in PROBES:
            key = f"{name}_accuracy"
            axes[2].errorbar(x, _values(lengths, key), _errors(lengths, key), fmt="o-", capsize=3, label=name)
        axes[2].set_title("hidden-property probe accuracy ↑")
        axes[2].legend()
    for ax in axes:
        ax.set_xlabel("reference length (s); 0 = none")
    fig.suptitle("Generated section vs ground truth, by reference length (Fig. 6)")
    _save(fig, path)


def plot_text(r: dict, path: str) -> None:
    t = r["text"]
    rows = {"caption": t["plain"], "caption + hidden words": t["hidden"]}
    pos = list(range(len(PROBES)))
    fig, ax = plt.subplots(figsize=(6, 3.8), layout="constrained")
    width = 0.35
    for shift, (label, row) in zip((-1, 1), rows.items(), strict=True):
        values = [_values({n: row}, f"{n}_accuracy")[0] for n in PROBES]
        errors = [_errors({n: row}, f"{n}_accuracy") for n in PROBES]
        yerr = [[e[0][0] for e in errors], [e[1][0] for e in errors]]
        ax.bar([p + shift * width / 2 for p in pos], values, width, yerr=yerr, capsize=3, label=label)
    ax.set_xticks(pos, list(PROBES))
    ax.set_title("probe accuracy on generated audio ↑")
    ax.legend()
    fig.suptitle("Caption without vs with the hidden-acoustics words")
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
    try:
        with io.atomic_file(path) as temp:
            fig.savefig(temp, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)


def plots(result: dict) -> dict:
    """{file name: plot function} of the plots `result` has data for."""
    out = {"steps.png": plot_steps, "reference.png": plot_reference}
    if result.get("text"):
        out["text.png"] = plot_text
    if result.get("long"):
        out["long.png"] = plot_long
    if result.get("compare_steps"):
        out["compare.png"] = plot_compare
    if result.get("guided_steps"):
        out["guided.png"] = plot_guided
    return out
