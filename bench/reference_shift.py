"""What a reference does to the generated sound, against no reference and against another clip's.

    JAX_PLATFORMS=cpu python -m bench.reference_shift --checkpoint runs/tiny/generator/pipeline \
        [--clips 256] [--reference 1] [--start 0] [--cfg 4] [--cfg_audio 2]

The reference experiment's clips (the test split in the checkpoint's world; with --start S, windows cut
from S s into scenes rendered S s longer, past the scenes' opening) are generated three ways: without a
reference, with the first --reference seconds of each clip's own audio, and with the same seconds of the
next clip's audio (the evaluation's control). All three keep the clip's video and noise and are scored
on what follows the reference, as `salsa.evaluate` scores them. The bench reports:
- every metric of the three rows, and the ratios own / none, another's / none and own / another's with
  their 95% intervals over the same bootstrap draws (salsa/metrics/bootstrap.py, `paired_ratio`);
- in the sync tower's snippet embeddings (the FD's space): how far the clip's own reference moves the
  generated mean, and the cosine of that move to the way towards the ground truth's mean and to the way
  towards the mean of the clips' openings (the seconds the reference was cut from);
- the ground truth's level per quarter second (dB of the mean power over clips): how stationary the
  clips are.

--cfg and --cfg_audio set the guidance (salsa/sampling/guidance.py; cfg_audio 2 is the configs' default,
1 the reference as context, 4 with cfg 4 the paper's Eq. 3). Prints two tables; writes
bench/results/reference_shift.json (--out). docs/tiny_experiments.md, "FD rises with any reference".
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import app, flags

from salsa.io import write_json

METRICS = ("f1", "recall", "material_accuracy", "swsd", "fd", "kl")
PROBES = ("room_accuracy", "microphone_accuracy", "pitch_accuracy")
PAIRS = (("own", "none"), ("other", "none"), ("own", "other"))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def shifts(truth: np.ndarray, opening: np.ndarray, none: np.ndarray, given: np.ndarray) -> dict[str, float]:
    """(n, width) snippet embeddings of the scored section's ground truth, of the clips' openings, and of
    the section generated without and with the reference -> the move of the generated mean, its cosine
    to the way towards the ground truth's mean and to the way towards the opening's, and the distances."""
    t, o, n, g = (x.mean(axis=0) for x in (truth, opening, none, given))
    return {
        "shift": float(np.linalg.norm(g - n)),
        "cos_to_truth": _cos(g - n, t - n),
        "cos_to_opening": _cos(g - n, o - n),
        "truth_to_none": float(np.linalg.norm(t - n)),
        "truth_to_given": float(np.linalg.norm(t - g)),
        "truth_to_opening": float(np.linalg.norm(t - o)),
    }


def levels(audio: list[np.ndarray], sample_rate: int, part_s: float = 0.25) -> list[float]:
    """Level (dB of the mean power over clips) of each part_s-long part of the clips."""
    step = round(part_s * sample_rate)
    parts = min(len(a) for a in audio) // step
    power = [[float(np.mean(a[k * step : (k + 1) * step] ** 2)) for k in range(parts)] for a in audio]
    return [float(10 * np.log10(np.mean([p[k] for p in power]) + 1e-12)) for k in range(parts)]


def ratios(rows: dict[str, dict], metric: str) -> dict[str, list]:
    """{"own/none": [ratio, lo, hi], ...} of `metric` over rows {"none", "own", "other"} that were scored
    on the same clips and keep their bootstrap draws."""
    from salsa.metrics import bootstrap

    out = {}
    for a, b in PAIRS:
        lo, hi = bootstrap.paired_ratio(rows[a]["draws"].samples[metric], rows[b]["draws"].samples[metric])
        out[f"{a}/{b}"] = [float(bootstrap.ratio(rows[a][metric], rows[b][metric])), lo, hi]
    return out


def window_clips(p, clips: int, start: float, world) -> list:
    """The test clips 0..clips-1 as the checkpoint's windows, cut from `start` s into their scenes."""
    from salsa.evaluation import generation

    window = float(p.config.window_s)
    scenes = generation.test_clips(p, "test", range(clips), start + window, world)
    return [scene.section(start, window) for scene in scenes] if start else scenes


def main(argv):
    del argv
    from salsa.evaluation import experiments, generation, hidden
    from salsa.evaluation.settings import EvalSettings
    from salsa.inference import pipeline
    from salsa.metrics import embeddings

    p = pipeline.load(_CHECKPOINT.value)
    settings = EvalSettings()
    steps, cfg = p.sampling(settings.fixed_steps, _CFG.value)
    sr, ref_s, cut = p.sample_rate, _REFERENCE.value, round(_REFERENCE.value * p.sample_rate)
    world = generation.checkpoint_world(p)
    clips = window_clips(p, _CLIPS.value, _START.value, world)
    others = experiments.others_audio(clips)  # the evaluation's control: the next clip's audio
    sections = [c.section(ref_s) for c in clips]
    probes = hidden.probes(sr) if world["hidden_acoustics"] else None

    generated = {}
    for name, given, reference_s in (("none", clips, 0.0), ("own", clips, ref_s), ("other", others, ref_s)):
        audio = generation.generate(
            p,
            given,
            steps=steps,
            cfg=cfg,
            seed=settings.seed,
            reference_s=reference_s,
            batch=settings.batch,
            cfg_audio=_CFG_AUDIO.value,
        )
        generated[name] = [a[cut:] for a in audio]
    rows = {name: hidden.scored(audio, sections, p.sync, probes) for name, audio in generated.items()}
    metrics = METRICS + (PROBES if probes is not None else ())
    table = {m: {**{k: rows[k][m] for k in rows}, **ratios(rows, m)} for m in metrics}

    def embedded(audio: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(embeddings.sync_embeddings(p.sync, audio, sr)).astype(np.float64)

    shift = shifts(
        embedded([s.audio for s in sections]),
        embedded([c.audio[:cut] for c in clips]),
        embedded(generated["none"]),
        embedded(generated["own"]),
    )
    level = levels([c.audio for c in clips], sr)
    guidance = p.guidance(cfg, audio=_CFG_AUDIO.value)

    def cell(r):
        return f"{r[0]:.3g} [{r[1]:.3g}, {r[2]:.3g}]" if r[1] is not None else f"{r[0]:.3g}"

    print(
        f"{len(clips)} clips from {_START.value:g} s into their scenes, {ref_s:g} s reference, {steps} "
        f"steps, guidance video {guidance.video:g} / text {guidance.text:g} / reference {guidance.audio:g}"
    )
    print("| metric | none | own | another clip's | own / none | another's / none | own / another's |")
    print("|---|---|---|---|---|---|---|")
    for m, line in table.items():
        values = " | ".join(f"{line[k]:.4g}" for k in ("none", "own", "other"))
        print(f"| {m} | {values} | " + " | ".join(cell(line[f"{a}/{b}"]) for a, b in PAIRS) + " |")
    print("\n| the own reference's move in the FD's embedding | value |\n|---|---|")
    for key, value in shift.items():
        print(f"| {key} | {value:.3f} |")
    print("| ground-truth level per quarter second (dB) | " + ", ".join(f"{x:.1f}" for x in level) + " |")
    write_json(
        _OUT.value,
        {
            "checkpoint": _CHECKPOINT.value,
            "clips": len(clips),
            "start_s": _START.value,
            "reference_s": ref_s,
            "steps": steps,
            "guidance": dataclasses.asdict(guidance),
            "metrics": table,
            "shift": shift,
            "truth_level_db_per_quarter_second": level,
        },
    )


if __name__ == "__main__":
    _CHECKPOINT = flags.DEFINE_string("checkpoint", "runs/tiny/generator/pipeline", "Pipeline checkpoint.")
    _CLIPS = flags.DEFINE_integer("clips", 256, "Held-out clips (the evaluation's reference experiment's).")
    _REFERENCE = flags.DEFINE_float("reference", 1.0, "Seconds of audio given as reference.")
    _START = flags.DEFINE_float("start", 0.0, "Cut each window this many seconds into its scene.")
    _CFG = flags.DEFINE_float("cfg", None, "Video and text guidance scale (default: the config's).")
    _CFG_AUDIO = flags.DEFINE_float(
        "cfg_audio", None, "The reference's guidance scale (default: the config's)."
    )
    _OUT = flags.DEFINE_string("out", "bench/results/reference_shift.json", "Where to write the JSON.")
    app.run(main)
