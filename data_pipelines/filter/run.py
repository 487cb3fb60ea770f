"""Scores every clip of a feature set with the sync model and writes the best ones as a new feature set.

`load_models` reads the sync and VAE bundles (by default those extraction.json names: the sync model
must be the one whose video tower made the records' `sync` frames); `filter_features` scores, cuts and
writes. Outputs (docs/extraction.md, "Sync filtering"):

    FEATURES/sync_scores.csv    every clip's scores and whether it was kept, beside the shards
    OUT/features-*.array_record the kept records, unchanged, in their order (docs/records.md)
    OUT/extraction.json         the input's, with a "filter" section saying what was done
    OUT/sync_scores.csv, OUT/filter_report.md, OUT/filter_scores.png

OUT appears complete or not at all (salsa.io.atomic_directory); bad input is a FilterError before any
output is written.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable, Iterator

import numpy as np
from flax import nnx

from data_pipelines.features import extraction, records
from data_pipelines.filter import report as report_lib
from data_pipelines.filter.scores import PARAMS, ClipScore, keep_mask, score_clip
from salsa import bundle, io
from salsa.errors import UserError
from salsa.inference import codec
from salsa.metrics import desync
from salsa.models.encoders.sync import SyncConfig, SyncModel
from salsa.models.vae.model import VAE

SCORES = "sync_scores.csv"
COLUMNS = ("id", "duration", "offset_s", "temporal", "semantic", "combined", "caption", "kept")


class FilterError(UserError):
    """The feature set, a bundle or a filter setting cannot be used; the message names it."""


@dataclasses.dataclass
class Models:
    """The sync model and the VAE that turns a record's latents back into sound."""

    sync: nnx.Module
    vae: nnx.Module
    stats: dict[str, np.ndarray] | None  # latent statistics; None when the latents are not normalised
    paths: dict[str, str]

    def audio(self, record: dict) -> np.ndarray:
        """(samples,) the record's sound, mono at the sync model's rate: latents de-normalised, decoded,
        cut to the clip's duration."""
        latents = np.asarray(record["latents"], np.float32)
        if self.stats is not None:
            latents = codec.denormalize(latents, self.stats)
        rate = self.vae.config.sample_rate
        audio = codec.decode(self.vae, latents)[: round(float(record["duration"]) * rate)]
        return desync.model_audio(self.sync, audio, rate)


def _bundle_path(flag: str | None, doc: dict | None, name: str, features: str) -> str:
    path = flag or ((doc or {}).get("components") or {}).get(name)
    if not path:
        raise FilterError(
            f"{features} has no extraction.json naming the {name} bundle the features were extracted with; "
            f"pass --{name} BUNDLE."
        )
    if not os.path.isdir(path):
        raise FilterError(f"the {name} bundle {path} does not exist; pass --{name} BUNDLE.")
    return os.path.abspath(path)


def load_models(features: str, vae: str | None = None, sync: str | None = None) -> Models:
    """The bundles named by the flags, else by FEATURES/extraction.json, checked against its geometry."""
    doc = extraction.read(features)
    paths = {n: _bundle_path(f, doc, n, features) for n, f in (("vae", vae), ("sync", sync))}
    named = (doc or {}).get("components") or {}
    for name, path in paths.items():
        if named.get(name) and os.path.abspath(named[name]) != path:
            logging.warning(
                "--%s %s is not the bundle extraction.json names (%s): the scores mean something only "
                "if it is the same model",
                name,
                path,
                named[name],
            )
    try:
        vae_config, vae_params, stats, _ = bundle.load_vae(paths["vae"])
        sync_model = bundle.from_bundle(paths["sync"], "sync", SyncModel, SyncConfig)
        vae_model = bundle.materialize(VAE, vae_config, vae_params)
    except (ValueError, TypeError, KeyError) as e:  # BundleError is a UserError: one sentence
        raise FilterError(f"a bundle is unreadable: {e}") from None
    if doc is not None:
        checks = [
            ("vae", "sample_rate", vae_config.sample_rate, "audio.sample_rate"),
            ("vae", "hop", vae_config.hop, "audio.hop"),
            ("vae", "latent_dim", vae_config.latent_dim, "audio.latent_dim"),
            ("sync", "video width", sync_model.config.video.spatial.width, "features.sync_dim"),
            ("sync", "fps", sync_model.config.fps, "video.sync_fps"),
        ]
        for name, what, has, field in checks:
            section, key = field.split(".")
            want = (doc.get(section) or {}).get(key)
            if want is not None and float(has) != float(want):
                raise FilterError(
                    f"the {name} bundle {paths[name]} has {what}={has!r} but the features were extracted "
                    f"with {field}={want!r}; use the bundle they were extracted with."
                )
    normalized = doc is None or bool(doc.get("normalized_latents", True))
    if normalized and stats is None:
        raise FilterError(
            f"the vae bundle {paths['vae']} has no latent statistics, which the normalised latents of "
            f"{features} need; use the bundle the features were extracted with."
        )
    return Models(sync=sync_model, vae=vae_model, stats=stats if normalized else None, paths=paths)


@dataclasses.dataclass
class Result:
    scores: list[ClipScore]
    kept: np.ndarray  # (clips,) bool
    cut: float  # the lowest combined score kept
    out: str


def check_settings(features: str, out: str, keep: float | None, threshold: float | None) -> list[str]:
    """The input's shard paths, after refusing settings that cannot work (FilterError)."""
    if (keep is None) == (threshold is None):
        raise FilterError("give one of --keep FRACTION and --threshold SCORE.")
    if keep is not None and not 0 < keep <= 1:
        raise FilterError(f"--keep {keep} is not a fraction in (0, 1].")
    if threshold is not None and not math.isfinite(threshold):
        raise FilterError(f"--threshold {threshold} is not a finite number.")
    if not os.path.isdir(features):
        raise FilterError(f"--features {features} is not a folder.")
    paths = records.shard_paths(features)
    if not paths:
        raise FilterError(
            f"--features {features} holds no complete set of feature shards "
            "(features-*-of-*.array_record, written by python -m data_pipelines.extract)."
        )
    if os.path.realpath(out) == os.path.realpath(features):
        raise FilterError(f"--out {out} is the --features folder; write the kept clips to a new folder.")
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise FilterError(f"--out {out} exists and is not an empty folder; choose a new one.")
    io.check_creatable(out, "--out", folder=True)
    io.check_creatable(os.path.join(features, SCORES), "the scores file")
    return paths


def score_all(
    paths: list[str],
    sync_model: nnx.Module,
    audio: Callable[[dict], np.ndarray],
    on_clip: Callable[[ClipScore], None] | None = None,
) -> list[ClipScore]:
    """Every record's scores, shard by shard; `audio(record)` is its sound at the sync model's rate."""
    out = []
    for path in paths:
        for record in records.iter_shard(path):
            if "sync" not in record:
                raise FilterError(
                    f"record {record['id']} in {path} has no video features; sync filtering needs clips "
                    "with video (audio-only sets train unfiltered, through a mixture)."
                )
            out.append(score_clip(sync_model, record, audio(record), PARAMS))
            if on_clip is not None:
                on_clip(out[-1])
    return out


def _kept_records(paths: list[str], kept: np.ndarray) -> Iterator[dict]:
    """The records whose flag is set, `kept` in the order `score_all` read them."""
    flags = iter(kept)
    for path in paths:
        for record in records.iter_shard(path):
            if next(flags):
                yield record


def _csv(scores: list[ClipScore], kept: np.ndarray) -> str:
    lines = [",".join(COLUMNS)]
    for s, k in zip(scores, kept, strict=True):
        values = (s.duration, s.offset_s, s.temporal, s.semantic, s.combined, s.caption)
        numbers = ["" if math.isnan(v) else f"{v:.6g}" for v in values]
        lines.append(",".join([_field(s.id), *numbers, str(bool(k)).lower()]))
    return "\n".join(lines) + "\n"


def _field(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def filter_features(
    features: str,
    out: str,
    sync_model: nnx.Module,
    audio: Callable[[dict], np.ndarray],
    keep: float | None = None,
    threshold: float | None = None,
    components: dict[str, str] | None = None,
    on_clip: Callable[[ClipScore], None] | None = None,
) -> Result:
    """Scores every clip of the feature set `features` (`audio(record)`: its sound, mono at the sync
    model's rate, e.g. `Models.audio`), keeps the best `keep` fraction or those scoring >= `threshold`,
    writes the outputs of the module docstring; `components` (the bundles' paths) goes into the
    metadata. FilterError before any output for settings that cannot work or when nothing is kept."""
    paths = check_settings(features, out, keep, threshold)
    doc = extraction.read(features)
    scores = score_all(paths, sync_model, audio, on_clip)
    kept = keep_mask(scores, keep, threshold)
    if not kept.any():
        best = max((s.combined for s in scores if s.scored), default=math.nan)
        raise FilterError(
            f"no clip of {features} scores >= --threshold {threshold} (the best scores {best:.4g}); "
            "lower it or use --keep FRACTION."
        )
    cut = float(min(s.combined for s, k in zip(scores, kept, strict=True) if k))
    table = _csv(scores, kept)
    rule = {"keep": keep} if keep is not None else {"threshold": threshold}
    summary = {
        "from": os.path.abspath(features),
        "components": components or {},
        "rule": rule,
        "cut": cut,
        "clips": len(scores),
        "kept": int(kept.sum()),
        "dropped": int((~kept).sum()),
        "unscored": sum(not s.scored for s in scores),
        "offsets_s": [float(d) for d in PARAMS.offsets],
        "scores": SCORES,
    }
    with io.atomic_directory(out) as temp:
        records.write_shards(_kept_records(paths, kept), temp, min(len(paths), int(kept.sum())))
        if doc is not None:
            extraction.write(temp, {**doc, "filter": summary})
        io.write_text(os.path.join(temp, SCORES), table)
        report_lib.write(temp, scores, kept, summary)
    io.write_text(os.path.join(features, SCORES), table)  # last: it says which clips OUT holds
    return Result(scores=scores, kept=kept, cut=cut, out=os.path.abspath(out))


def summary_line(result: Result) -> str:
    return (
        f"{result.out}: kept {int(result.kept.sum())} of {len(result.scores)} clips "
        f"(combined score >= {result.cut:.4g}); report in {report_lib.REPORT}"
    )
