"""metrics.json and metrics.md of an evaluation, and its plots (plots.py), each written atomically.

Values in the tables carry their 95% bootstrap interval over clips (± half-width); the targets
(docs/targets.json, targets.py) and the baked-guidance verdict are read from those intervals.
"""

from __future__ import annotations

import math
import os

from salsa import io
from salsa.evaluation import plots as plots_lib
from salsa.evaluation import targets as targets_lib
from salsa.metrics import bootstrap

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
PROBE_COLUMNS = [  # the hidden-property probes (hidden.py), where the world has hidden acoustics
    ("room_accuracy", "room acc.", "{:.3f}"),
    ("microphone_accuracy", "mic. acc.", "{:.3f}"),
    ("pitch_accuracy", "pitch acc.", "{:.3f}"),
]
TEXT_COLUMNS = [("f1", "F1", "{:.3f}"), ("fd", "FD", "{:.3f}"), ("swsd", "SWSD", "{:.4f}"), *PROBE_COLUMNS]


def jsonable(x):
    """x with NaN / inf as None and numpy scalars as Python numbers (strict JSON); bootstrap draws
    (a row's "draws", kept for the paired targets) left out."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items() if not isinstance(v, bootstrap.Draws)}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, str):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _cell(value, fmt: str, interval=None) -> str:
    """value in `fmt`, with ± the half-width of its interval [lo, hi] when one is given."""
    if plots_lib.missing(value):
        return "–"
    text = f"{value * 1e3:.1f}" if fmt == "ms" else fmt.format(value)
    text = text.lstrip("-") if float(text) == 0 else text  # round-off below 0 (FD of equal sets)
    if interval is None or plots_lib.missing(interval[0]) or plots_lib.missing(interval[1]):
        return text
    half = (interval[1] - interval[0]) / 2
    return f"{text} ± {f'{half * 1e3:.1f}' if fmt == 'ms' else fmt.format(half)}"


def table(rows: list[tuple[str, dict]], first: str, columns=None) -> list[str]:
    """A markdown table of rows; columns default to COLUMNS, plus PROBE_COLUMNS when a row has them."""
    if columns is None:
        probed = any(k in m for _, m in rows for k, _, _ in PROBE_COLUMNS)
        columns = COLUMNS + PROBE_COLUMNS if probed else COLUMNS
    lines = [
        "| " + " | ".join([first] + [h for _, h, _ in columns]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for name, m in rows:
        iv = m.get("interval", {})
        lines.append(
            "| " + " | ".join([name] + [_cell(m.get(k), f, iv.get(k)) for k, _, f in columns]) + " |"
        )
    return lines


def materials_section(rows: list[tuple[str, dict]]) -> list[str]:
    """Which material the probe hears at each isolated impact, by the impact's material: for each
    row "right / classified", and the material heard most often when that is another one."""
    confusions = [(name, m["material_confusion"]) for name, m in rows if "material_confusion" in m]
    materials = sorted({t for _, c in confusions for t in c})
    if not materials:
        return []
    lines = [
        "## Materials heard at isolated impacts",
        "",
        "For each material, the impacts the probe heard as that material / the impacts it classified "
        "(isolated impacts matched to a detected onset); → the material most often heard instead, when "
        "it outnumbers the right one.",
        "",
        "| audio | " + " | ".join(materials) + " |",
        "|" + "---|" * (len(materials) + 1),
    ]
    for name, confusion in confusions:
        cells = []
        for truth in materials:
            heard = confusion.get(truth, {})
            right, total = heard.get(truth, 0), sum(heard.values())
            cell = f"{right}/{total}" if total else "–"
            top, n = max(heard.items(), key=lambda kv: (kv[1], kv[0]), default=(truth, 0))
            if top != truth and n > right:
                cell += f" → {top} {n}"
            cells.append(cell)
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return lines


def text_section(t: dict) -> list[str]:
    """The text experiment's table: each clip's caption without and with its hidden-acoustics words."""
    return [
        f"## Caption without vs with the hidden-acoustics words (text experiment), {t['steps']} steps",
        "",
        f"The first {t['clips']} clips, each generated from its caption without the words naming its "
        "hidden acoustics and with them (e.g. "
        f"“{t['example']['hidden']}”); the probes read room, microphone and pitch from the audio.",
        "",
        *table([("caption", t["plain"]), ("caption + hidden words", t["hidden"])], "prompt", TEXT_COLUMNS),
    ]


def _audio_scale(settings: dict) -> str:
    """' (reference audio W)' where the reference's guidance scale is recorded (sampling/guidance.py)."""
    w = settings.get("cfg_audio")
    return "" if w is None else f" (reference audio {w:g})"


def markdown(r: dict) -> str:
    s, g = r["split"], r["geometry"]
    ceiling = [("ground truth", r["ground_truth"])] + ([("codec", r["codec"])] if r.get("codec") else [])
    lines = [
        "# Evaluation",
        "",
        f"Checkpoint `{r['checkpoint']}`; split `{s['name']}` (world seed {s['world_seed']}, clips "
        f"{s['clip_indices'][0]}–{s['clip_indices'][1] - 1} of {g['window_s']:g} s); cfg "
        f"{r['settings']['cfg']:g}{_audio_scale(r['settings'])}; noise seed {r['settings']['seed']}; "
        f"{g['sample_rate']} Hz × "
        f"{g['channels']}. FD over the {r['embedding']}; KL and IS over the {r['classifier']}. "
        "Ground truth scored through the same code is the ceiling. Metrics: docs/evaluation.md.",
        "",
        "## Sampling steps (Fig. 5 left)",
        "",
        *table(ceiling + [(k, v) for k, v in r["steps"].items()], "steps"),
        "",
        "Codec: the ground truth encoded and decoded by the checkpoint's VAE (the ceiling of generation).",
    ]
    if r.get("world", {}).get("hidden_acoustics"):
        lines += [
            "",
            "The clips' world has hidden acoustics (room, microphone, pitch; docs/synthetic_world.md); the "
            "probes' accuracy on ground truth is their ceiling (chance: 1/3, 1/4, 1/3).",
        ]
    heard = materials_section(
        ceiling + [(f"{k} step{'' if str(k) == '1' else 's'}", v) for k, v in r["steps"].items()]
    )
    if heard:
        lines += ["", *heard]
    if r.get("compare_steps"):
        lines += ["", "## Shortcut vs flow-only at equal steps (Table 2 in miniature)", ""]
        lines += [f"Flow-only checkpoint `{r['compare']}`.", ""]
        rows = []
        for k in r["steps"]:
            rows += [(f"{k} shortcut", r["steps"][k]), (f"{k} flow-only", r["compare_steps"][k])]
        lines += table(rows, "steps, training")
    ref = r["reference"]
    n = ref.get("clips")  # absent in results saved before the experiment had its own clip count
    of = f", {n} clips" if n is not None and n != r["settings"]["clips"] else ""
    lines += ["", f"## Reference audio length (Fig. 6), {ref['steps']} steps{of}", ""]
    scored_from = ref.get("scored_from")  # absent in results saved before every length shared a section
    where = (
        f"every length is scored on the same section, the window after {scored_from:g} s (the longest "
        "reference)"
        if scored_from is not None
        else "only the rest of the window is scored"
    )
    lines += [f"The first L s of each clip's ground-truth audio are given as clean reference; {where}.", ""]
    rows = [(f"{k} s", v) for k, v in ref["lengths"].items()]
    other = ref.get("other_clip")  # the control; absent with one clip and in results saved before it
    if other is not None:
        longest = max(ref["lengths"], key=float)
        rows.append((f"{longest} s of another clip", other))
        lines += [
            f"The last row is the control: the first {longest} s of another clip's audio (the next clip's) "
            "as reference, with this clip's video and noise: what any reference does, without the clip's "
            "own sound.",
            "",
        ]
    lines += table(rows, "reference")
    if ref["skipped"]:
        skipped = ", ".join(f"{x:g}" for x in ref["skipped"])
        lines += ["", f"Skipped: {skipped} s (leaves less than 0.5 s of the window to generate)."]
    if r.get("text"):
        lines += ["", *text_section(r["text"])]
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
        lines += ["", *table([(n.replace("_", " "), long[n]) for n in ("iterative", "one_shot")], "method")]
    if r.get("targets"):
        lines += ["", *targets_section(r["targets"])]
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


GUIDED_VERDICT = (("F1", "f1", ">"), ("FD", "fd", "<"), ("DeSync", "desync", "<"))  # claimed "better"


def guided_verdict(g: dict) -> str:
    """One sentence from the 95% intervals: at how many step counts the baked model at 1 branch is as
    good as or better than CFG at 2 on F1, FD and DeSync (CFG not shown better), at how many it is
    shown better, and the sampling time it takes relative to CFG."""
    rows = g["steps"].values()
    counts = []
    for name, key, better in GUIDED_VERDICT:
        verdicts = []
        for x in rows:
            (baked, baked_iv), (cfg, cfg_iv) = (targets_lib.side(x[side], key) for side in ("baked", "cfg"))
            if baked is not None and cfg is not None:
                verdicts.append(targets_lib.separation(baked_iv, cfg_iv, better))
        if verdicts:
            no_worse = sum(v != targets_lib.CONTRADICTED for v in verdicts)
            counts.append((name, no_worse, verdicts.count(targets_lib.SHOWN), len(verdicts)))
    ratio = [x["baked"]["sampling_seconds_per_clip"] / x["cfg"]["sampling_seconds_per_clip"] for x in rows]
    return (
        "Baked guidance is as good as or better than CFG at "
        f"{', '.join(f'{k} {a} of {n}' for k, a, _, n in counts)} step counts (CFG not shown better by the "
        f"95% intervals), shown better at {', '.join(f'{k} {b}' for k, _, b, _ in counts)}; sampling in "
        f"{min(ratio):.2f}–{max(ratio):.2f}× CFG's time per clip."
    )


def targets_section(checked: list[dict]) -> list[str]:
    """The targets table: each target's values with their intervals, and the verdict they give."""
    lines = [
        "## Targets (docs/targets.json)",
        "",
        "Verdicts from the 95% intervals: shown when they separate in the claimed direction, "
        "contradicted when they separate the other way, else not shown. A target with a ratio compares "
        "two rows of the same clips draw by draw: its verdict is the interval of left / right over the "
        "same bootstrap draws against the claimed factor (a chain's: its last row over its first, "
        "against 1).",
        "",
        "| target | value [95% interval] | verdict | source |",
        "|---|---|---|---|",
    ]
    for t in checked:
        values = []
        for value, interval in zip(t["value"], t["interval"], strict=True):
            text = _cell(value, "{:.3g}")
            if interval is not None:
                text += f" [{_cell(interval[0], '{:.3g}')}, {_cell(interval[1], '{:.3g}')}]"
            values.append(text)
        if "ratio" in t:
            ratio, lo, hi = (_cell(x, "{:.3g}") for x in (t["ratio"]["value"], *t["ratio"]["interval"]))
            values[-1] += f"; ratio {ratio} [{lo}, {hi}]"
        lines.append(f"| {t['target']} | {' / '.join(values)} | {t['verdict']} | {t['source']} |")
    return lines


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


def write(out: str, result: dict, targets: list[dict] | None = None) -> None:
    """Plots, then metrics.json and metrics.md; result gets its "plots" list and its "targets" verdicts
    (`targets`: a targets file's entries, default docs/targets.json)."""
    plots = plots_lib.plots(result)
    result["plots"] = list(plots)
    result["targets"] = targets_lib.check_all(targets_lib.load() if targets is None else targets, result)
    for name, plot in plots.items():
        plot(result, os.path.join(out, name))
    io.write_json(os.path.join(out, "metrics.json"), jsonable(result), indent=1)
    io.write_text(os.path.join(out, "metrics.md"), markdown(result))
