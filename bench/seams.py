"""Window joins of long-form generation with a trained pipeline: is the jump between neighbouring samples
at a window boundary an ordinary one?

    JAX_PLATFORMS=cpu python bench/seams.py --checkpoint runs/tiny/generator/pipeline [--clips 4]
        [--seconds 20] [--steps 8]

Each held-out test clip (synthetic/heldout.py) is extended window by window (Pipeline.extend); the
audio is decoded from the whole latent sequence, so a seam could only come from the latents. For every
boundary (where a window's new latents follow its context) the |sample jump| there is ranked among the
clip's jumps inside windows. As a contrast the same is done for audio whose windows are decoded one by
one and concatenated (what a naive implementation does), whose boundaries should stand out. Prints one
table and writes bench/results/seams.json. With random weights the sound is noise-like everywhere and
neither stands out; this needs a trained checkpoint.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from salsa.io import write_json


def _rank(jumps: np.ndarray, bounds: list[int]) -> tuple[list[float], float]:
    """Percentile of each boundary jump among the other jumps, and the 99.9th percentile itself."""
    inside = np.delete(jumps, bounds)
    return [100.0 * float(np.mean(inside < jumps[b])) for b in bounds], float(np.percentile(inside, 99.9))


def main(argv):
    del argv
    from salsa.evaluation import generation
    from salsa.inference import codec as vae_codec
    from salsa.inference import long_form, pipeline

    p = pipeline.load(_CHECKPOINT.value)
    geo = long_form.geometry(p.config)
    hop = int(p.config.audio.hop)
    rows = []
    for i in range(_CLIPS.value):
        (clip,) = generation.test_clips(p, "test", [i], _SECONDS.value)
        out = p.extend(clip.frames8, clip.frames24, steps=_STEPS.value, seed=i)
        n = geo.num_windows(clip.seconds)
        bounds = [(geo.latent_start(k - 1) + geo.latents) * hop - 1 for k in range(1, n)]
        bounds = [b for b in bounds if b + 1 < len(out.audio)]
        # naive: each window's latents decoded alone, windows laid end to end without overlap
        z = vae_codec.denormalize(out.latents, p.vae_stats)
        edges = [0] + [b + 1 for b in bounds] + [len(out.audio)]
        naive = np.concatenate(
            [
                vae_codec.decode(p.vae, z[a // hop : e // hop])[: e - a]
                for a, e in zip(edges, edges[1:], strict=False)
            ]
        )
        for name, audio in (
            ("whole-sequence decode (ours)", out.audio),
            ("per-window decode (naive)", naive),
        ):
            ranks, p999 = _rank(np.abs(np.diff(audio[:, 0])), bounds)
            rows.append(
                dict(
                    clip=i,
                    decode=name,
                    boundaries=len(bounds),
                    median_rank=float(np.median(ranks)),
                    above_p999=int(sum(r > 99.9 for r in ranks)),
                    inside_p999=p999,
                )
            )
    print(f"{'clip':>4} {'decode':30} {'joins':>5} {'median pct':>10} {'> p99.9':>7}")
    for r in rows:
        print(
            f"{r['clip']:4d} {r['decode']:30} {r['boundaries']:5d} {r['median_rank']:10.1f} "
            f"{r['above_p999']:7d}"
        )
    write_json(
        "bench/results/seams.json",
        {"checkpoint": _CHECKPOINT.value, "seconds": _SECONDS.value, "steps": _STEPS.value, "rows": rows},
        indent=1,
    )


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _CHECKPOINT = flags.DEFINE_string("checkpoint", "runs/tiny/generator/pipeline", "Pipeline checkpoint.")
    _CLIPS = flags.DEFINE_integer("clips", 4, "Held-out clips.")
    _SECONDS = flags.DEFINE_float("seconds", 20.0, "Length of each clip.")
    _STEPS = flags.DEFINE_integer("steps", 8, "Sampling steps.")
    app.run(main)
