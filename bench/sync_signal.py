"""How much timing signal do the sync metric's snippets carry? Ground-truth diagnostics, no model.

    python -m bench.sync_signal [--clips=100]

On the clips and shifts of `heldout.shift_snippets` (4 s, 32 x 32, seed 12345): audible impacts per
16-frame video window; the top-1 of an oracle that matches ground-truth impact frames of the video
window against each shifted audio window (ties split); and how much larger the whole frame's
|second difference| (what a pixel model sees of a contact) is at contact frames than elsewhere.
Prints one table and writes bench/results/sync_signal.json.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from data_pipelines.synthetic import WorldConfig, make_clip
from data_pipelines.synthetic.heldout import SHIFTS_S
from salsa.io import write_json


def main(argv):
    del argv
    world = WorldConfig(seconds=4.0, height=32, width=32, sample_rate=16000, channels=1)
    frames_per_window = 16
    shifts = [round(s * world.fps) for s in SHIFTS_S]
    start = -min(shifts)
    counts, oracle, at_contact, elsewhere = [], [], [], []
    for i in range(_CLIPS.value):
        clip = make_clip(world, 12345, i)
        impacts = np.zeros(world.num_frames + 1)  # impacts between frame k and k + 1, per k
        for e in clip.annotation["events"]:
            if e["kind"] == "impact":
                impacts[int(np.floor(e["time"] * world.fps))] += 1
        video = impacts[start : start + frames_per_window]
        counts.append(video.sum())
        audio = [impacts[start + s : start + s + frames_per_window] for s in shifts]
        scores = np.array([(video * a).sum() - 0.5 * a.sum() for a in audio])
        best = np.flatnonzero(scores == scores.max())
        oracle.append(1.0 / len(best) if shifts.index(0) in best else 0.0)
        grey = clip.frames.astype(np.float32).mean(-1)
        change = np.abs(np.diff(grey, n=2, axis=0)).sum((1, 2))  # change[k - 1]: frames k-1, k, k+1
        for k in range(1, world.num_frames - 1):
            (at_contact if impacts[k] or impacts[k - 1] else elsewhere).append(change[k - 1])
    counts = np.asarray(counts)
    result = {
        "clips": _CLIPS.value,
        "impacts_per_window": float(counts.mean()),
        "windows_with_impact": float((counts > 0).mean()),
        "oracle_top1": float(np.mean(oracle)),
        "chance": 1.0 / len(shifts),
        "frame_change_ratio_at_contacts": float(np.mean(at_contact) / np.mean(elsewhere)),
    }
    print("| " + " | ".join(result) + " |")
    print("|" + "---|" * len(result))
    print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in result.values()) + " |")
    write_json("bench/results/sync_signal.json", result)


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _CLIPS = flags.DEFINE_integer("clips", 100, "held-out clips (seed 12345)")
    app.run(main)
