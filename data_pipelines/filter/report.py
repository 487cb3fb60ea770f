"""The filter's report: counts, score distributions (a table and a PNG) and the lowest-scoring clips."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from data_pipelines.filter.scores import ClipScore
from salsa import io

REPORT = "filter_report.md"
PLOT = "filter_scores.png"
LOWEST = 20  # dropped clips listed by name
FIELDS = ("temporal", "semantic", "combined")


def _values(scores: Sequence[ClipScore], field: str, mask: np.ndarray) -> np.ndarray:
    return np.array([getattr(s, field) for s, m in zip(scores, mask, strict=True) if m and s.scored])


def _quantiles(values: np.ndarray) -> str:
    if values.size == 0:
        return "| | | | | |"
    q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
    return "| " + " | ".join(f"{v:.3f}" for v in q) + " |"


def markdown(scores: Sequence[ClipScore], kept: np.ndarray, summary: dict) -> str:
    """The report's text: what was done, how many kept, quantiles per score, the lowest dropped clips."""
    rule = summary["rule"]
    how = f"the best {rule['keep']:.0%}" if "keep" in rule else f"combined score >= {rule['threshold']:g}"
    lines = [
        "# Sync filtering",
        "",
        f"From `{summary['from']}`: {summary['clips']} clips scored with the sync model, {how} kept.",
        "",
        f"- kept **{summary['kept']}**, dropped **{summary['dropped']}** "
        f"({summary['unscored']} too short to score); the lowest kept combined score is {summary['cut']:.4f}",
        f"- offsets compared: {len(summary['offsets_s'])}, {summary['offsets_s'][0]:g} ... "
        f"{summary['offsets_s'][-1]:g} s; every clip's scores in `{summary['scores']}`",
        "- temporal = s(0) - max over shifts d != 0 of s(d); semantic = s(0); combined = their sum "
        "(s(d): mean cosine of the video and audio snippet embeddings with the audio moved by d)",
        "",
        f"![score distributions]({PLOT})",
        "",
        "| score | clips | min | 25% | median | 75% | max |",
        "|---|---|---|---|---|---|---|",
    ]
    everyone = np.ones(len(scores), bool)
    for field in FIELDS:
        for name, mask in (("all", everyone), ("kept", kept), ("dropped", ~kept)):
            values = _values(scores, field, mask)
            lines.append(f"| {field} ({name}) | {values.size} {_quantiles(values)}")
    dropped = sorted(
        (s for s, k in zip(scores, kept, strict=True) if not k),
        key=lambda s: s.combined if s.scored else -np.inf,
    )
    lines += [
        "",
        f"## The {min(LOWEST, len(dropped))} lowest-scoring dropped clips",
        "",
        "| clip | seconds | best offset (s) | temporal | semantic | combined |",
        "|---|---|---|---|---|---|",
    ]
    for s in dropped[:LOWEST]:
        if not s.scored:
            lines.append(f"| {s.id} | {s.duration:g} | too short to score | | | |")
            continue
        lines.append(
            f"| {s.id} | {s.duration:g} | {s.offset_s:+.1f} | {s.temporal:.4f} | {s.semantic:.4f} | "
            f"{s.combined:.4f} |"
        )
    return "\n".join(lines) + "\n"


def plot(path: str, scores: Sequence[ClipScore], kept: np.ndarray, cut: float) -> None:
    """Histograms of the three scores, kept and dropped clips stacked, the cut on the combined one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, field in zip(axes, FIELDS, strict=True):
        parts = [_values(scores, field, kept), _values(scores, field, ~kept)]
        both = np.concatenate(parts)
        bins = np.linspace(both.min(), both.max(), 25) if both.size and np.ptp(both) > 0 else 10
        ax.hist(parts, bins=bins, stacked=True, color=["tab:green", "tab:red"], label=["kept", "dropped"])
        if field == "combined":
            ax.axvline(cut, color="black", linestyle="--", label="cut")
        ax.set_xlabel(field)
        ax.set_ylabel("clips")
    axes[-1].legend()
    fig.tight_layout()
    with io.atomic_file(path) as temp:
        fig.savefig(temp, dpi=100)
    plt.close(fig)


def write(folder: str, scores: Sequence[ClipScore], kept: np.ndarray, summary: dict) -> None:
    """FOLDER/filter_report.md and FOLDER/filter_scores.png."""
    plot(os.path.join(folder, PLOT), scores, kept, summary["cut"])
    io.write_text(os.path.join(folder, REPORT), markdown(scores, kept, summary))
