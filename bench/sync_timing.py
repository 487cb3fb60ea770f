"""How precisely a sync model's features place impacts: its shift top-1 and an exact-frame probe.

    python -m bench.sync_timing --sync=default=runs/tiny/sync/export[,NAME=DIR ...] [--clips=240] \
        [--shutter=0.5]

For each sync bundle (a sync stage's WORKDIR/export), at its own frame size:
- shift top-1: the model's own timing metric, the true audio among 7 shifts of 100 held-out 4 s
  clips of the plain world (salsa.metrics.sync_offset; chance 0.14), as the slow sync test measures it;
- frame AUC and exact frame: a ridge probe over the 64 features of each 24 fps frame, fitted on the first
  two thirds of `clips` 2 s test clips of the world with hidden acoustics (the tiny pipeline's) and
  tested on the rest, reads "an impact starts in this frame". Frame AUC is its held-out ROC AUC; exact
  frame is how often it scores an impact's frame above every frame without an impact within ±3 frames
  (1 for features that mark impact frames; about 0.2 by chance on this world's dense impacts), overall
  and over the clips of each ambience (the picture's rain, room light or wind).

Both draw their clips through the camera's shutter of --shutter (default the tiny pipeline's world's):
measure a sync stage trained with `data.world.shutter` at the same value.

The generator reads these features (docs/tiny_experiments.md, "Where onset F1 is lost"). Prints one table;
writes bench/results/sync_timing.json (--out).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from absl import app, flags

from bench.material_cues import auc, ridge_probe
from bench.sync_oracle import impact_code
from configs import tiny
from data_pipelines.synthetic import WorldConfig, heldout
from data_pipelines.synthetic.heldout import world_settings
from data_pipelines.synthetic.snippets import SnippetSpec
from salsa import bundle, io
from salsa.inference import encoders
from salsa.metrics.sync_offset import shift_top1
from salsa.models.encoders.sync import SyncConfig, SyncModel

WORLD = world_settings(tiny.get_config().data.world.to_dict())  # the tiny pipeline's world
WINDOW = 3  # frames either side of an impact among which the probe's highest score is looked for


def impact_frames(annotation: dict, frames: int, fps: float = 24.0) -> np.ndarray:
    """(frames,) bool: an impact (onsets.reference_onsets) starts in the frame."""
    return impact_code(annotation, frames, 1.0, fps)[:, 0] > 0


def frame_probe(
    features: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    train: int,
    ridge: float = 10.0,
    groups: Sequence[str] | None = None,
) -> dict:
    """A ridge probe (least squares on ±1) fitted on clips [:train], scored on the rest: held-out frame
    AUC, and the fraction of impacts whose frame the probe scores above every frame without an impact
    within ±WINDOW frames ("exact"; a probe that tells impact frames apart scores 1, chance is about
    one in the window's non-impact frames plus one). groups: a name per clip (e.g. its ambience); adds
    "exact_by", exact frame over each group's held-out clips."""
    probe = ridge_probe(np.concatenate(features[:train]), np.concatenate(labels[:train]), ridge)
    scores = [probe(f) for f in features[train:]]
    exact, by = [], {}
    names = groups[train:] if groups is not None else [""] * len(scores)
    for s, lab, name in zip(scores, labels[train:], names, strict=True):
        for k in np.flatnonzero(lab):
            lo, hi = max(0, k - WINDOW), min(len(s), k + WINDOW + 1)
            others = s[lo:hi][~lab[lo:hi]]
            exact.append(bool(others.size == 0 or s[k] > others.max()))
            by.setdefault(name, []).append(exact[-1])
    held = np.concatenate(labels[train:])
    out = {
        "frame_auc": auc(np.concatenate(scores), held),
        "exact": float(np.mean(exact)),
        "impacts": len(exact),
    }
    if groups is not None:
        out["exact_by"] = {name: float(np.mean(v)) for name, v in sorted(by.items())}
    return out


def probe_clips(
    size: int, clips: int, sample_rate: int = 16000, fps: float = 24.0, world: dict | None = None
) -> list:
    """The first `clips` 2 s test clips of `world` (world_settings fields; default the tiny pipeline's,
    WORLD), at `size` pixels: the frame probe's clips."""
    geometry = heldout.ClipGeometry(sample_rate, 1, fps, 8.0, size, size)
    return [heldout.test_clip(geometry, "test", i, 2.0, world or WORLD) for i in range(clips)]


def probe(model: SyncModel, clips: int, world: dict | None = None) -> dict:
    """frame_probe of `model`'s features of its `clips` probe_clips, overall and by ambience."""
    c = model.config
    test = probe_clips(c.video.image_size, clips, c.frontend.sample_rate, c.fps, world)
    features = [np.asarray(encoders.sync(model, t.frames24)) for t in test]
    labels = [impact_frames(t.annotation, len(f), c.fps) for t, f in zip(test, features, strict=True)]
    ambience = [t.annotation["ambience"]["kind"] for t in test]
    return {
        "image_size": c.video.image_size,
        **frame_probe(features, labels, clips * 2 // 3, groups=ambience),
    }


def measure(path: str, clips: int, world: dict | None = None) -> dict:
    """Shift top-1 and probe() of the sync bundle at `path`."""
    model = bundle.from_bundle(path, "sync", SyncModel, SyncConfig)
    size, c = model.config.video.image_size, model.config
    shutter = (world or WORLD)["shutter"]  # the plain world (no hidden acoustics) through the same camera
    plain = WorldConfig(
        seconds=4.0, height=size, width=size, sample_rate=c.frontend.sample_rate, channels=1, shutter=shutter
    )
    spec = SnippetSpec(1, 1, c.snippet_frames, c.snippet_samples)
    top1, chance = shift_top1(model, *heldout.shift_snippets(plain, 12345, 100, spec))
    return {"shift_top1": top1, "shift_chance": chance, **probe(model, clips, world)}


def table(rows: dict[str, dict]) -> str:
    """measure() rows as markdown: exact frame overall and by the clips' ambience."""
    ambiences = sorted({a for r in rows.values() for a in r["exact_by"]})
    lines = [
        "| sync | frames px | shift top-1 | frame AUC | exact frame | " + " | ".join(ambiences) + " |",
        "|" + "---|" * (5 + len(ambiences)),
    ]
    for name, r in rows.items():
        top1 = f"{r['shift_top1']:.2f}" if "shift_top1" in r else "–"
        by = " | ".join(f"{r['exact_by'].get(a, float('nan')):.2f}" for a in ambiences)
        lines.append(
            f"| {name} | {r['image_size']} | {top1} | {r['frame_auc']:.3f} | {r['exact']:.2f} | {by} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    rows = {}
    for item in _SYNC.value.split(","):
        name, path = item.split("=", 1)
        rows[name] = {"sync": path, **measure(path, _CLIPS.value, {**WORLD, "shutter": _SHUTTER.value})}
    print(f"sync features: shift top-1 (100 clips) and an impact-frame probe ({_CLIPS.value} test clips)")
    print(table(rows))
    io.write_json(_OUT.value, rows)


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _SYNC = flags.DEFINE_string(
        "sync", "default=runs/tiny/sync/export", "NAME=DIR of sync bundles, comma-separated"
    )
    _SHUTTER = flags.DEFINE_float(
        "shutter", WORLD["shutter"], "the probe clips' shutter (default the tiny pipeline's world's)"
    )
    _CLIPS = flags.DEFINE_integer(
        "clips", 240, "held-out test clips for the frame probe (2/3 fit, 1/3 scored)"
    )
    _OUT = flags.DEFINE_string("out", "bench/results/sync_timing.json", "JSON results")
    app.run(main)
