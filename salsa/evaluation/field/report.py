"""The field evaluation's report: OUT/metrics.json (every column, the protocol, every clip not scored),
OUT/metrics.md (the same for reading) and OUT/per_clip.csv (one row per clip pair or unpaired clip; a
scored pair's column it was excluded from, IB or DeSync without video, is empty and its reason says
why; a column's per-pair details follow the columns, DeSync's signed offsets of its two windows)."""

from __future__ import annotations

import csv
import io as text_io
import math
import os

from salsa import io
from salsa.evaluation.field import inputs

PROTOCOL = (
    "av-benchmark (the protocol MMAudio and SALSA-V report): audio channels averaged, the mean removed, "
    "resampled per embedder, the first {seconds:g} s of each clip; clips ending less than "
    f"{inputs.SHORT_TOLERANCE_S:g} s early are zero-padded, shorter ones are not scored; IB reads the video "
    "of the same first {seconds:g} s at the stream's own frame rate (ImageBind's data.py sampling: 5 clips "
    "of 2 s, their first and last frames, 3 crops), from the generated file, else from the real one; "
    "DeSync reads the real clip's video (else the generated one's) at 25 fps against the generated audio "
    "at 16 kHz, in the first and the last 4.8 s window"
)


def _number(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def to_json(r) -> dict:
    return {
        "real": r.real,
        "generated": r.generated,
        "protocol": PROTOCOL.format(seconds=r.seconds),
        "seconds": r.seconds,
        "columns": {
            c.name: {
                "value": _number(c.value),
                **({"std": _number(c.std)} if c.std is not None else {}),
                "status": c.status,
                "better": c.better,
                "embedder": c.embedder,
                "note": c.note,
                **({"excluded": c.excluded} if c.excluded else {}),
            }
            for c in r.columns
        },
        "embedders": r.protocols,
        "weights": r.weights,
        "clips": {
            "pairs": len(r.pairing.pairs),
            "scored": len(r.scored),
            "excluded": r.excluded,
            "excluded_from_column": {c.name: c.excluded for c in r.columns if c.excluded},
            "unpaired_real": r.pairing.unpaired_real,
            "unpaired_generated": r.pairing.unpaired_generated,
            "other_files": r.pairing.other_files,
        },
        "run": {
            "clips_embedded": r.embedded,
            "clips_from_cache": r.cached,
            "seconds": round(r.elapsed_s, 3),
            "clips_per_second": round(r.embedded / r.elapsed_s, 3)
            if r.embedded and r.elapsed_s > 0
            else None,
            "device": r.device,
        },
    }


def _cell(c) -> str:
    if c.status != "ok":
        return c.status.split(" (")[0] if c.status != "undefined" else "—"
    text = f"{c.value:.4g}"
    return f"{text} ± {c.std:.2g}" if c.std is not None else text


def _list(title: str, items) -> list[str]:
    items = list(items)
    if not items:
        return []
    return [f"### {title} ({len(items)})", "", *[f"- {x}" for x in items], ""]


def to_markdown(r) -> str:
    lines = [
        f"# Field metrics: {r.generated} against {r.real}",
        "",
        f"{len(r.scored)} of {len(r.pairing.pairs)} clip pairs scored; excluded pairs: {len(r.excluded)}, "
        f"unpaired clips: {len(r.pairing.unpaired_real) + len(r.pairing.unpaired_generated)} (listed below).",
        "",
        f"Protocol: {PROTOCOL.format(seconds=r.seconds)}.",
        "",
        "| " + " | ".join(c.name for c in r.columns) + " |",
        "|" + "---|" * len(r.columns),
        "| " + " | ".join(_cell(c) for c in r.columns) + " |",
        "",
        "| column | value | better | status | note |",
        "|---|---|---|---|---|",
    ]
    for c in r.columns:
        value = _cell(c) if c.status == "ok" else "—"
        lines.append(f"| {c.name} | {value} | {c.better} | {c.status.split(':')[0]} | {c.note} |")
    lines += ["", "## Embedders", ""]
    lines += [f"- **{title}**: {text}." for title, text in r.protocols.items()]
    lines += [f"- **{c.name}**: {c.note}." for c in r.columns if c.status not in ("ok", "undefined")]
    if r.weights:
        lines += ["", "## Weights", ""]
        for name, w in r.weights.items():
            lines.append(
                f"- {name}: bundle {w['bundle']}, converted from {w['source']} (sha256 {w['sha256']})"
            )
    lines += ["", "## Clips not scored", ""]
    lines += _list("Excluded pairs", [f"{n}: {why}" for n, why in r.excluded.items()])
    for c in r.columns:
        lines += _list(
            f"Pairs excluded from {c.name} alone", [f"{n}: {why}" for n, why in c.excluded.items()]
        )
    lines += _list("Real clips without a generated namesake", r.pairing.unpaired_real)
    lines += _list("Generated clips without a real namesake", r.pairing.unpaired_generated)
    lines += _list("Other files (not media by their extension)", r.pairing.other_files)
    partly = any(c.excluded for c in r.columns)
    if not (
        r.excluded
        or partly
        or r.pairing.unpaired_real
        or r.pairing.unpaired_generated
        or r.pairing.other_files
    ):
        lines += ["None.", ""]
    run = to_json(r)["run"]
    lines += [
        "## Run",
        "",
        f"{r.embedded} clips embedded in {r.elapsed_s:.1f} s ({run['clips_per_second'] or 0:.2f} clips/s) on "
        f"{r.device}; {r.cached} clips from the cache.",
        "",
    ]
    return "\n".join(lines)


def to_csv(r) -> str:
    paired = [c for c in r.columns if c.per_clip is not None]
    buf = text_io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    details = [(c, k) for c in paired for k in c.details]
    w.writerow(
        ["name", "real", "generated", "status", "reason", *[c.name for c in paired]]
        + [f"{c.name}_{k}" for c, k in details]
    )
    index = {p.name: i for i, p in enumerate(r.scored)}
    for p in r.pairing.pairs:
        if p.name in index:
            i = index[p.name]
            reason = "; ".join(f"{c.name}: {c.excluded[p.name]}" for c in paired if p.name in c.excluded)
            values = [c.per_clip[i] for c in paired] + [c.details[k][i] for c, k in details]
            cells = ["" if math.isnan(v) else f"{v:.6g}" for v in values]
            w.writerow([p.name, p.real, p.generated, "scored", reason, *cells])
        else:
            w.writerow(
                [
                    p.name,
                    p.real,
                    p.generated,
                    "excluded",
                    r.excluded[p.name],
                    *[""] * (len(paired) + len(details)),
                ]
            )
    for path in r.pairing.unpaired_real:
        w.writerow(
            [os.path.splitext(os.path.basename(path))[0], path, "", "unpaired", "no generated namesake"]
        )
    for path in r.pairing.unpaired_generated:
        w.writerow([os.path.splitext(os.path.basename(path))[0], "", path, "unpaired", "no real namesake"])
    return buf.getvalue()


def write(out: str, r) -> None:
    io.write_json(os.path.join(out, "metrics.json"), to_json(r))
    io.write_text(os.path.join(out, "metrics.md"), to_markdown(r))
    io.write_text(os.path.join(out, "per_clip.csv"), to_csv(r))
