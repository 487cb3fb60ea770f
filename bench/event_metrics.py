"""Reference values of the event metrics: the synthetic world's own audio, late, and silent.

    python -m bench.event_metrics [--clips=8] [--seed=21]

For each audio setting (16 kHz mono, the tiny generator's; 44.1 kHz stereo, the paper's) and each world
(2-4 objects, 1 object), scores the ground-truth soundtrack (the ceiling a generator can reach), the same
audio 100 ms late (the chance level of ±50 ms matching at that event density) and silence, pooled over
`clips` 8 s clips. Prints one table; writes bench/results/event_metrics.json. docs/metrics.md quotes it.
"""

from __future__ import annotations

import functools
import json
import os
import time

import numpy as np
from absl import app, flags

from data_pipelines.synthetic import WorldConfig, make_clip, material_probe
from salsa.metrics import onsets


def _late(audio: np.ndarray, seconds: float, sample_rate: int) -> np.ndarray:
    n = round(seconds * sample_rate)
    return np.concatenate([np.zeros((n, audio.shape[1]), audio.dtype), audio])[: len(audio)]


def main(argv):
    del argv
    rows = []
    for sample_rate, channels in ((16000, 1), (44100, 2)):
        for objects in ((2, 4), (1, 1)):
            world = WorldConfig(
                seconds=8.0,
                sample_rate=sample_rate,
                channels=channels,
                height=32,
                width=32,
                min_objects=objects[0],
                max_objects=objects[1],
            )
            clips = [make_clip(world, _SEED.value, i) for i in range(_CLIPS.value)]
            for name, edit in (
                ("ground truth", lambda a: a),
                ("100 ms late", functools.partial(_late, seconds=0.1, sample_rate=sample_rate)),
                ("silence", np.zeros_like),
            ):
                start = time.perf_counter()
                probe = material_probe.fit(sample_rate)
                events = [
                    onsets.clip_events(edit(c.audio), sample_rate, c.annotation, probe=probe) for c in clips
                ]
                pooled = onsets.pool_events(events)
                rows.append(
                    {
                        "audio": f"{sample_rate // 1000} kHz x{channels}",
                        "objects": f"{objects[0]}-{objects[1]}",
                        "audio_edit": name,
                        **{
                            k: pooled["onsets"][k] for k in ("precision", "recall", "f1", "mean_abs_offset_s")
                        },
                        "onsets": pooled["onsets"]["references"],
                        "material_accuracy": pooled["material_accuracy"],
                        "material_count": pooled["material_count"],
                        "seconds_per_clip": (time.perf_counter() - start) / len(clips),
                    }
                )
    print(
        f"{'audio':10} {'objects':7} {'audio edit':13} {'P':>5} {'R':>5} {'F1':>5} {'offset ms':>9} "
        f"{'onsets':>6} {'material':>8} {'n':>4} {'s/clip':>6}"
    )
    for r in rows:
        print(
            f"{r['audio']:10} {r['objects']:7} {r['audio_edit']:13} {r['precision']:5.2f} {r['recall']:5.2f} "
            f"{r['f1']:5.2f} {r['mean_abs_offset_s'] * 1e3:9.1f} {r['onsets']:6d} "
            f"{r['material_accuracy']:8.2f} {r['material_count']:4d} {r['seconds_per_clip']:6.2f}"
        )
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/event_metrics.json", "w") as f:
        json.dump({"clips": _CLIPS.value, "seed": _SEED.value, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _CLIPS = flags.DEFINE_integer("clips", 8, "8 s clips per setting")
    _SEED = flags.DEFINE_integer("seed", 21, "world seed")
    app.run(main)
