"""The pipeline checkpoint: everything generation needs, in one folder, checked on the way in and out.

    DIR/pipeline.json   {"format": 1, "generator_config": {...},
                         "components": {"generator": "generator", "vae": "vae", "siglip": "siglip",
                                        "sync": "sync", "tokenizer": "tokenizer.json" | null}}
    DIR/generator/      salsa.bundle bundle, kind "generator" (EMA parameters)
    DIR/vae/            salsa.bundle bundle, kind "vae" (with latent statistics)
    DIR/siglip/         bundle kind "siglip2";  DIR/sync/  bundle kind "sync"
    DIR/tokenizer.json  optional (Hugging Face `tokenizers` format)

Written atomically by `save`, the generator task's `export` and `python -m salsa.pipeline assemble`;
read by `load` (the components, checked against the generator config), which salsa.inference.pipeline
wraps in the Python API.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import zipfile

import jax
import ml_collections
import numpy as np

from data_pipelines.features import extraction
from data_pipelines.features import sources as data_sources
from salsa import bundle, io
from salsa.errors import UserError
from salsa.models.encoders.siglip2 import Siglip, SiglipConfig
from salsa.models.encoders.sync import SyncConfig, SyncModel
from salsa.models.generator.attention import KERNEL_BACKEND
from salsa.models.generator.model import Generator, GeneratorConfig
from salsa.models.vae.model import VAE

FORMAT = 1
FILE = "pipeline.json"
NAMES = {"generator": "generator", "vae": "vae", "siglip": "siglip", "sync": "sync"}
TOKENIZER = "tokenizer.json"


class PipelineError(UserError):
    """A pipeline checkpoint (or a part of one) is missing, unreadable or inconsistent; one sentence."""


@dataclasses.dataclass
class Components:
    """What a checkpoint holds, loaded: the generator config and every model, ready to run."""

    config: ml_collections.ConfigDict
    generator: Generator
    vae: VAE
    vae_stats: dict[str, np.ndarray]
    siglip: Siglip
    sync: SyncModel
    tokenizer: str | None
    directory: str


# ---------------------------------------------------------------------------------------------- files


def _config_dict(config) -> dict:
    return json.loads(config.to_json_best_effort())


def _check_dims(config, vae_config, stats, siglip_config, sync_config, where: str) -> None:
    """PipelineError naming the first component whose geometry disagrees with the generator config."""
    a, f, v = config.audio, config.features, config.video
    checks = [
        ("vae sample rate", vae_config.sample_rate, a.sample_rate, "audio.sample_rate"),
        ("vae hop", vae_config.hop, a.hop, "audio.hop"),
        ("vae audio channels", vae_config.audio_channels, a.channels, "audio.channels"),
        ("vae latent_dim", vae_config.latent_dim, a.latent_dim, "audio.latent_dim"),
        ("siglip image width", siglip_config.image.width, f.semantic_dim, "features.semantic_dim"),
        ("siglip text_proj", siglip_config.text_proj, f.text_dim, "features.text_dim"),
        ("sync width", sync_config.video.spatial.width, f.sync_dim, "features.sync_dim"),
        ("sync fps", sync_config.fps, v.sync_fps, "video.sync_fps"),
    ]
    for name, got, want, field in checks:
        if got != want:
            raise PipelineError(f"{where}: {name} is {got} but the generator config's {field} is {want}.")
    if stats is None:
        raise PipelineError(
            f"{where}: the VAE bundle has no latent statistics; add them with `python -m salsa.codec stats`."
        )


def _read_bundle(path: str, kind: str, from_dict):
    try:
        _, cfg, params = bundle.load(path, kind)
        config = from_dict(cfg)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise PipelineError(f"{path}: unreadable {kind} bundle ({_reason(e)}).") from None
    return config, params


def _reason(e: BaseException) -> str:
    return str(e).rstrip(".") or type(e).__name__


def _materialize(cls, config, params: dict, where: str):
    """`cls(config)` holding `params` (checked against the config's shapes); PipelineError otherwise."""
    try:
        model = bundle.abstract(cls, config)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise PipelineError(f"{where}: the config cannot build a {cls.__name__} ({_reason(e)}).") from None
    try:
        return bundle.materialize(cls, config, params, model)
    except ValueError as e:
        raise PipelineError(
            f"{where}: {cls.__name__} parameters do not match its config ({_reason(e)})."
        ) from None


def _read_vae(path: str):
    try:
        return bundle.load_vae(path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise PipelineError(f"{path}: unreadable VAE bundle ({_reason(e)}).") from None


def save(
    directory: str | os.PathLike,
    generator_config: ml_collections.ConfigDict,
    generator_params: dict,
    *,
    vae: str,
    siglip: str,
    sync: str,
    tokenizer: str | None = None,
) -> None:
    """Writes the pipeline checkpoint at `directory` from the generator and the component bundles
    (copied in); checks that their dimensions agree first. Nothing appears unless all was written."""
    directory = io.absolute(directory)
    vae_config, _, stats, _ = _read_vae(vae)
    siglip_config, _ = _read_bundle(siglip, "siglip2", SiglipConfig.from_dict)
    sync_config, _ = _read_bundle(sync, "sync", SyncConfig.from_dict)
    _check_dims(generator_config, vae_config, stats, siglip_config, sync_config, directory)
    try:
        abstract = bundle.abstract(Generator, GeneratorConfig.from_config(generator_config))
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise PipelineError(
            f"{directory}: the generator config cannot build a model ({_reason(e)})."
        ) from None
    try:
        bundle.check_shapes(abstract, generator_params)
    except ValueError as e:
        raise PipelineError(
            f"{directory}: Generator parameters do not match its config ({_reason(e)})."
        ) from None
    if tokenizer is not None and not io.is_file(tokenizer):
        raise PipelineError(f"{tokenizer}: no such tokenizer file.")
    with io.atomic_directory(directory) as temp:
        config = _config_dict(generator_config)
        bundle.save(
            os.path.join(temp, NAMES["generator"]), "generator", config, jax.device_get(generator_params)
        )
        for name, src in (("vae", vae), ("siglip", siglip), ("sync", sync)):
            io.copy_tree(src, os.path.join(temp, NAMES[name]))
        if tokenizer is not None:
            io.copy_file(tokenizer, os.path.join(temp, TOKENIZER))
        doc = {
            "format": FORMAT,
            "generator_config": config,
            "components": {**NAMES, "tokenizer": TOKENIZER if tokenizer is not None else None},
        }
        io.write_json(os.path.join(temp, FILE), doc)


def load(directory: str | os.PathLike) -> Components:
    """The components stored at `directory`; PipelineError naming the problem when it is missing,
    unreadable, or its parts do not match the generator config."""
    directory = os.fspath(directory)
    path = os.path.join(directory, FILE)
    if not io.is_dir(directory):
        raise PipelineError(f"{directory}: no such checkpoint folder.")
    if not io.is_file(path):
        raise PipelineError(f"{directory}: not a pipeline checkpoint (no {FILE}; make one with `assemble`).")
    try:
        with io.open_file(path) as f:
            doc = json.load(f)
        fmt = doc["format"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PipelineError(f"{path}: unreadable pipeline description ({_reason(e)}).") from None
    if fmt != FORMAT:  # before anything else: another format may lay out the rest differently
        raise PipelineError(f"{path}: {_format_mismatch(fmt)}")
    try:
        parts = doc["components"]
        config = ml_collections.ConfigDict(doc["generator_config"])
    except (KeyError, TypeError, ValueError) as e:
        raise PipelineError(f"{path}: unreadable pipeline description ({_reason(e)}).") from None

    def part(name):
        return os.path.join(directory, parts[name]) if parts.get(name) else None

    vae_config, vae_params, stats, _ = _read_vae(part("vae"))
    siglip_config, siglip_params = _read_bundle(part("siglip"), "siglip2", SiglipConfig.from_dict)
    sync_config, sync_params = _read_bundle(part("sync"), "sync", SyncConfig.from_dict)
    _check_dims(config, vae_config, stats, siglip_config, sync_config, directory)
    _, gen_params = _read_bundle(part("generator"), "generator", ml_collections.ConfigDict)
    if KERNEL_BACKEND.get(config.model.get("attention"), jax.default_backend()) != jax.default_backend():
        # The attention implementation is the machine's choice, not the checkpoint's: same parameters.
        config.model.attention = "xla"
    generator = _materialize(Generator, GeneratorConfig.from_config(config), gen_params, part("generator"))
    siglip = _materialize(Siglip, siglip_config, siglip_params, part("siglip"))
    sync = _materialize(SyncModel, sync_config, sync_params, part("sync"))
    vae = _materialize(VAE, vae_config, vae_params, part("vae"))
    tokenizer = part("tokenizer")
    if tokenizer is not None and not io.is_file(tokenizer):
        raise PipelineError(
            f"{directory}: pipeline.json names {parts['tokenizer']!r} but there is no such file."
        )
    return Components(config, generator, vae, stats, siglip, sync, tokenizer, directory)


def _format_mismatch(fmt) -> str:
    """What to say about a checkpoint of format `fmt` (not FORMAT): which is which, and what to do."""
    if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > FORMAT:
        return (
            f"pipeline checkpoint format {fmt}, newer than this salsa, which reads format {FORMAT}; "
            "update salsa to load it."
        )
    if isinstance(fmt, int) and not isinstance(fmt, bool):
        return (
            f"pipeline checkpoint format {fmt}, older than this salsa, which reads format {FORMAT}; "
            "assemble it again with this salsa (python -m salsa.pipeline assemble)."
        )
    return f"pipeline checkpoint format {fmt!r} is not known; this salsa reads format {FORMAT}."


def export(config: ml_collections.ConfigDict, params: dict, workdir: str) -> str:
    """Called when generator training ends: writes WORKDIR/pipeline/ from the record folder's
    extraction.json components, or only WORKDIR/pipeline/generator/ when there is none (toy features) or
    a component it names is not on this machine. Returns what was written."""
    out = f"{workdir.rstrip('/')}/pipeline"
    # data.dir, or a mixture's first source (by name): its extraction.json names the parts
    data = data_sources.sources(config)[0].dir or os.path.join(workdir, "data")
    doc = extraction.read(data)
    parts = doc["components"] if doc is not None else {}
    missing = [f"{k} {parts[k]}" for k in ("vae", "siglip", "sync") if parts and not io.is_dir(parts[k])]
    if parts and not missing:
        save(
            out,
            config,
            params,
            vae=parts["vae"],
            siglip=parts["siglip"],
            sync=parts["sync"],
            tokenizer=parts.get("tokenizer"),
        )
        logging.info("exported the pipeline checkpoint to %s", out)
        return out
    gen = f"{out}/{NAMES['generator']}"
    bundle.save(gen, "generator", _config_dict(config), params)
    why = (
        f"the components that {data}'s extraction.json names are not on this machine ({', '.join(missing)})"
        if parts
        else f"{data} has no extraction.json, so the VAE and encoders are not known"
    )
    logging.warning(
        "exported the generator bundle to %s; %s: make a pipeline with "
        "`python -m salsa.pipeline assemble --generator %s ...`",
        gen,
        why,
        workdir,
    )
    return gen


def generator_bundle(path: str) -> tuple[ml_collections.ConfigDict, dict]:
    """(config, params) from a generator bundle or a training workdir that exported one."""
    for candidate in (path, os.path.join(path, "pipeline", NAMES["generator"])):
        if all(io.is_file(os.path.join(candidate, f)) for f in ("config.json", "params.npz")):
            return _read_bundle(candidate, "generator", ml_collections.ConfigDict)
    raise PipelineError(
        f"{path}: neither a generator bundle nor a training workdir with pipeline/generator/ in it "
        "(it is written when training ends)."
    )
