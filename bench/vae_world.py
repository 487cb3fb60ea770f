"""A VAE's reconstructions of held-out world clips, scored as the evaluation scores its "codec" row.

    python -m bench.vae_world [--pipeline=runs/tiny/generator/pipeline] [--vae=NAME=DIR ...] [--clips=32]

The clips are the evaluation's (salsa.evaluate): the first `clips` clips of the `split`'s world seed, at
the pipeline checkpoint's geometry and in its training world (data.world: hidden acoustics on in the
tiny pipeline). Each VAE (a bundle: a VAE stage's WORKDIR/vae, or a pipeline's vae/) encodes and decodes
them as salsa.evaluation.generation.codec does, and the reconstructions are scored by
salsa.evaluation.scoring.score (onset P/R/F1 and offset, material accuracy, SWSD, FD over the
pipeline's sync model) and salsa.evaluation.hidden (room, microphone, pitch probes), with the same 95%
bootstrap intervals over clips (± half-width). The ground truth and the pipeline's own VAE ("pipeline")
are scored too. DeSync is left out (it needs a second pass of the sync model per clip; --desync adds it).

"comb dB": how far a VAE's reconstructions stand above the ground truth at the harmonics of its latent
rate (62.5 Hz for the tiny VAE) against halfway between them (`comb_db`): a decoder that repeats a
pattern every latent frame buzzes there (docs/tiny_experiments.md, "Where the material is lost").

Prints one table; writes bench/results/vae_world.json (--out). docs/vae.md quotes it.
"""

from __future__ import annotations

import os
import time
import types

import numpy as np
from absl import app, flags

from salsa import bundle, io
from salsa.evaluation import generation, hidden, report
from salsa.inference import pipeline as pipeline_lib

COLUMNS = [c for c in report.COLUMNS if c[0] in ("precision", "recall", "f1", "mean_abs_offset_s")]
COLUMNS += [c for c in report.COLUMNS if c[0] in ("material_accuracy", "swsd", "fd", "desync")]


def _vaes(p: pipeline_lib.Pipeline) -> list[tuple[str, object, str]]:
    """(name, VAE, where) of the pipeline's own VAE and each --vae NAME=DIR."""
    out = [("pipeline", p.vae, os.path.join(os.path.abspath(_PIPELINE.value), "vae"))]
    for spec in _VAE.value:
        name, sep, directory = spec.partition("=")
        if not sep or not name or not directory:
            raise app.UsageError(f"--vae {spec!r}: give NAME=DIR, e.g. --vae=onset=/tmp/vae_A/vae/vae.")
        model, _ = bundle.vae_model(directory)
        c = model.config
        if (c.sample_rate, c.audio_channels) != (p.sample_rate, p.channels):
            raise app.UsageError(
                f"--vae {spec!r}: a {c.sample_rate} Hz x{c.audio_channels} VAE cannot code the pipeline's "
                f"{p.sample_rate} Hz x{p.channels} clips."
            )
        out.append((name, model, os.path.abspath(directory)))
    return out


def comb_db(reference, coded, sample_rate: int, rate: float, harmonics: int = 32, n_fft: int = 4096) -> float:
    """Mean over the first `harmonics` multiples k·rate (below Nyquist) of the coded audio's excess power
    over the reference's (dB, long-term spectra of Hann frames) at k·rate minus the excess halfway to the
    next multiple. 0: nothing repeats every frame; a buzz at the latent rate makes it positive."""

    def power(signals) -> np.ndarray:
        total = np.zeros(n_fft // 2 + 1)
        for x in signals:
            x = np.asarray(x, np.float64).reshape(len(x), -1).mean(axis=1)
            frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[:: n_fft // 4] * np.hanning(n_fft)
            total += (np.abs(np.fft.rfft(frames, axis=-1)) ** 2).sum(axis=0)
        return total

    excess = 10 * np.log10((power(coded) + 1e-12) / (power(reference) + 1e-12))
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    at = lambda f: excess[int(np.argmin(np.abs(freqs - f)))]  # noqa: E731
    ks = [k for k in range(1, harmonics + 1) if (k + 0.5) * rate < sample_rate / 2]
    return float(np.mean([at(k * rate) - at((k + 0.5) * rate) for k in ks]))


def _row(audio, clips, p, probes) -> dict:
    return hidden.scored(audio, clips, p.sync, probes, with_desync=_DESYNC.value)


def main(argv):
    del argv
    p = pipeline_lib.load(_PIPELINE.value)
    world = generation.checkpoint_world(p)
    clips = generation.held_out(p, _CLIPS.value, _SPLIT.value)
    probes = hidden.probes(p.sample_rate) if world["hidden_acoustics"] else None
    truth = [c.audio for c in clips]
    rows = [("ground truth", _row(truth, clips, p, probes), "", 0.0)]
    for name, model, where in _vaes(p):
        start = time.perf_counter()
        coded = generation.codec(types.SimpleNamespace(vae=model), clips)  # the evaluation's codec row
        seconds = time.perf_counter() - start
        row = _row(coded, clips, p, probes)
        row["comb_db"] = comb_db(truth, coded, p.sample_rate, model.config.latent_rate)
        rows.append((name, row, where, seconds))
    columns = COLUMNS + (report.PROBE_COLUMNS if probes is not None else [])
    print(
        f"{len(clips)} {_SPLIT.value} clips of {float(p.config.window_s):g} s, world {world}, "
        f"{p.sample_rate} Hz x{p.channels}; value ± half-width of the 95% bootstrap interval"
    )
    print("\n".join(report.table([(n, r) for n, r, _, _ in rows], "audio", columns)))
    print(
        "comb dB (excess at the latent rate's harmonics over halfway between): "
        + ", ".join(f"{n} {r['comb_db']:+.1f}" for n, r, _, _ in rows[1:])
    )
    result = {
        "pipeline": os.path.abspath(_PIPELINE.value),
        "split": _SPLIT.value,
        "clips": len(clips),
        "world": world,
        "rows": [{"name": n, "vae": w, "codec_seconds": s, **r} for n, r, w, s in rows],
    }
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    io.write_json(_OUT.value, report.jsonable(result))


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _PIPELINE = flags.DEFINE_string(
        "pipeline",
        "runs/tiny/generator/pipeline",
        "pipeline checkpoint: geometry, world, sync model, its VAE",
    )
    _VAE = flags.DEFINE_multi_string("vae", [], "NAME=DIR: a VAE bundle to score (repeatable)")
    _CLIPS = flags.DEFINE_integer("clips", 32, "held-out clips (the evaluation's default: 32)")
    _SPLIT = flags.DEFINE_enum("split", "test", ["test", "validation"], "held-out split")
    _DESYNC = flags.DEFINE_bool("desync", False, "also score DeSync (slower)")
    _OUT = flags.DEFINE_string("out", "bench/results/vae_world.json", "JSON results")
    app.run(main)
