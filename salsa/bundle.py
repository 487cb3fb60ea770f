"""The bundle: one directory holding a model's parameters, the config that rebuilds it, and its extras.

    DIR/config.json   {"kind": "generator" | "vae" | "siglip2" | "sync" | "ast" | "videoprism",
                       "format": 1, "config": {...}, "meta": {...}}
    DIR/params.npz    every nnx.Param as float32, keyed by its '/'-joined path in the module
                      (list indices as numbers: "image/encoder/blocks/0/attn/q/kernel")
    DIR/NAME.npz      extra arrays a kind needs (the VAE's latent statistics: stats.npz, mean and std)
    DIR/NAME          extra text files (a tokenizer.json)

Converters write bundles, training exports them, extraction and the pipeline checkpoint load them: every
component has this one on-disk format, one load path (`read`), one shape check (`check_shapes`) and one
error (`BundleError`, naming the file and the array). Writes are atomic (salsa.io.atomic_directory).
VAE bundles of the older layout (vae.json holding config and statistics, + params.npz) still load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from salsa import io
from salsa.errors import UserError

FORMAT = 1
CONFIG, PARAMS, STATS = "config.json", "params.npz", "stats.npz"
LEGACY_VAE = "vae.json"  # the VAE's own layout before the one format: config and stats in one file


class BundleError(UserError):
    """A bundle is missing, unreadable, or does not fit its config; the message names the file and,
    where it is one array, the array."""


@dataclasses.dataclass
class Bundle:
    """A bundle as read: kind, config dict, nested parameter dict, meta, extra arrays by file stem."""

    path: str
    kind: str
    config: dict
    params: dict
    meta: dict
    arrays: dict[str, dict[str, np.ndarray]]


def flatten(tree: dict, prefix: str = "", leaf: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """{"a/b/0": leaf} of a nested dict; leaves as float32 arrays, or `leaf(v)` (e.g. a shape)."""
    out = {}
    for k, v in tree.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, path + "/", leaf))
        else:
            out[path] = np.asarray(v, np.float32) if leaf is None else leaf(v)
    return out


def unflatten(flat: dict[str, Any]) -> dict:
    tree: dict = {}
    for path, v in flat.items():
        keys = [int(k) if k.isdigit() else k for k in path.split("/")]
        node = tree
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = v
    return tree


def build(cls: Callable[..., nnx.Module], config: Any, seed: int = 0) -> nnx.Module:
    """`cls(config, rngs)` created outside any mesh (parameters keep their logical axis names)."""
    with nnx.use_eager_sharding(False):
        return cls(config, nnx.Rngs(seed))


def abstract(cls: Callable[..., nnx.Module], config: Any) -> nnx.Module:
    """`cls(config, rngs)` with shapes only: no initializer runs, so building is instant."""
    with nnx.use_eager_sharding(False):
        return nnx.eval_shape(lambda: cls(config, nnx.Rngs(0)))


def materialize(
    cls: Callable[..., nnx.Module],
    config: Any,
    params: dict,
    model: nnx.Module | None = None,
    where: str | None = None,
) -> nnx.Module:
    """`cls(config)` holding `params` (checked as `assign` does, BundleError starting with `where`)
    without running its initializers; `model` is its `abstract` form when the caller has it already."""
    model = abstract(cls, config) if model is None else model
    check_shapes(model, params, where)
    graphdef, state, rest = nnx.split(model, nnx.Param, ...)
    if jax.tree.leaves(rest):  # state other than parameters: let the initializers make it
        model = build(cls, config)
        assign(model, params)
        return model
    state.replace_by_pure_dict(jax.tree.map(jnp.asarray, params))
    return nnx.merge(graphdef, state, rest)


def from_bundle(path: str, kind: str, cls: Callable[..., nnx.Module], config_cls: Any) -> nnx.Module:
    """The model stored in the bundle at `path`: `cls(config_cls.from_dict(config))` with its params."""
    b = read(path, kind)
    return materialize(cls, config_cls.from_dict(b.config), b.params, where=os.path.join(path, PARAMS))


def params_of(model: nnx.Module) -> dict:
    """The model's parameters as a nested dict of arrays."""
    return nnx.state(model, nnx.Param).to_pure_dict()


def assign(model: nnx.Module, params: dict) -> None:
    """Loads `params` (nested dict, same structure and shapes as the model's) into `model` in place;
    ValueError naming the first missing, extra or misshapen entry."""
    check_shapes(model, params)
    state = nnx.state(model, nnx.Param)
    state.replace_by_pure_dict(unflatten(flatten(params)))
    nnx.update(model, state)


def check_shapes(model: nnx.Module, params: dict, where: str | None = None) -> None:
    """BundleError naming the first entry of `params` missing, extra or misshapen for `model` (a real or
    an `abstract` one); `where` (a params.npz path) starts the message."""
    want = flatten(nnx.state(model, nnx.Param).to_pure_dict(), leaf=np.shape)
    got = flatten(params, leaf=np.shape)
    at = f"{where}: " if where else ""
    if missing := sorted(set(want) - set(got)):
        raise BundleError(f"{at}parameters missing: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if extra := sorted(set(got) - set(want)):
        raise BundleError(f"{at}unexpected parameters: {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    for k, shape in want.items():
        if shape != got[k]:
            raise BundleError(f"{at}parameter {k} has shape {got[k]}; the model expects {shape}.")


def save(
    out_dir: str | os.PathLike,
    kind: str,
    config: dict,
    params: dict,
    extra_files: dict[str, str] | None = None,
    *,
    arrays: dict[str, dict[str, np.ndarray]] | None = None,
    meta: dict | None = None,
) -> None:
    """Writes the bundle atomically: nothing appears at `out_dir` unless everything was written.
    `extra_files` ({file name: text}, e.g. a tokenizer.json) and `arrays` ({stem: {name: array}},
    written as STEM.npz) go into the same directory."""
    with io.atomic_directory(out_dir) as tmp:
        doc = {"kind": kind, "format": FORMAT, "config": config, "meta": meta or {}}
        io.write_json(os.path.join(tmp, CONFIG), doc)
        np.savez(os.path.join(tmp, PARAMS), **flatten(jax.device_get(params)))
        for stem, named in (arrays or {}).items():
            np.savez(os.path.join(tmp, f"{stem}.npz"), **{k: np.asarray(v) for k, v in named.items()})
        for name, text in (extra_files or {}).items():
            io.write_text(os.path.join(tmp, name), text)


def _npz(path: str) -> dict[str, np.ndarray]:
    try:
        with io.open_file(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise BundleError(f"{path}: unreadable arrays ({str(e).rstrip('.') or type(e).__name__}).") from None


def _json(path: str) -> dict:
    try:
        with io.open_file(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise BundleError(f"{path}: unreadable ({str(e).rstrip('.') or type(e).__name__}).") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise BundleError(f'{path}: no "config" object in it.')
    return doc


def read(path: str | os.PathLike, kind: str | None = None) -> Bundle:
    """The bundle at `path`, a folder or a URL (the extra arrays of every STEM.npz beside params.npz
    included); BundleError if it is not one, not `kind`, or a file in it is unreadable."""
    path = os.fspath(path)
    cfg_path, npz_path = os.path.join(path, CONFIG), os.path.join(path, PARAMS)
    if not io.is_file(cfg_path) and io.is_file(os.path.join(path, LEGACY_VAE)):
        return _read_legacy_vae(path, kind)
    if not (io.is_file(cfg_path) and io.is_file(npz_path)):
        raise BundleError(f"{path!r} is not a model bundle (expected {CONFIG} and {PARAMS} in it).")
    doc = _json(cfg_path)
    if doc.get("format", FORMAT) != FORMAT:
        raise BundleError(f"{cfg_path}: format {doc['format']!r} is not known; this version reads {FORMAT}.")
    if kind is not None and doc.get("kind") != kind:
        raise BundleError(f"bundle {path!r} holds a {doc.get('kind')!r} model; expected {kind!r}.")
    arrays = {
        name[:-4]: _npz(os.path.join(path, name))
        for name in io.listdir(path)
        if name.endswith(".npz") and name != PARAMS
    }
    params = unflatten(_npz(npz_path))
    return Bundle(path, doc["kind"], doc["config"], params, doc.get("meta", {}), arrays)


def _read_legacy_vae(path: str, kind: str | None) -> Bundle:
    """A VAE bundle of the older layout: vae.json {"config", "stats" (lists) or null, "meta"}."""
    if kind not in (None, "vae"):
        raise BundleError(f"bundle {path!r} holds a 'vae' model (older layout); expected {kind!r}.")
    doc = _json(os.path.join(path, LEGACY_VAE))
    npz_path = os.path.join(path, PARAMS)
    if not io.is_file(npz_path):
        raise BundleError(f"{path} is not a model bundle (expected {LEGACY_VAE} and {PARAMS} in it).")
    stats = doc.get("stats")
    arrays = (
        {} if stats is None else {"stats": {k: np.asarray(stats[k], np.float32) for k in ("mean", "std")}}
    )
    return Bundle(path, "vae", doc["config"], unflatten(_npz(npz_path)), doc.get("meta", {}), arrays)


def load(path: str | os.PathLike, kind: str | None = None) -> tuple[str, dict, dict]:
    """(kind, config, params) of the bundle at `path` (`read` without the extras)."""
    b = read(path, kind)
    return b.kind, b.config, b.params


# ------------------------------------------------------------------------------------ the VAE's bundle


def save_vae(
    directory: str | os.PathLike,
    config,
    params: dict,
    stats: dict[str, np.ndarray] | None = None,
    meta: dict | None = None,
) -> None:
    """A "vae" bundle: `config` a VAEConfig, `stats` the latent statistics ({"mean", "std"}: (latent_dim,)
    each) as stats.npz, when computed."""
    arrays = (
        None if stats is None else {"stats": {k: np.asarray(stats[k], np.float32) for k in ("mean", "std")}}
    )
    save(directory, "vae", config.to_dict(), params, arrays=arrays, meta=meta)


def load_vae(directory: str | os.PathLike):
    """(VAEConfig, params, stats or None, meta) of a "vae" bundle (either layout); BundleError naming
    the file for an unreadable config or statistics of the wrong size."""
    from salsa.models.vae.model import VAEConfig

    b = read(directory, "vae")
    try:
        config = VAEConfig.from_dict(b.config)
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"{os.path.join(b.path, CONFIG)}: unreadable VAE config ({e}).") from None
    stats = b.arrays.get("stats")
    if stats is not None:
        for name in ("mean", "std"):
            if np.shape(stats.get(name)) != (config.latent_dim,):
                raise BundleError(
                    f"{os.path.join(b.path, STATS)}: array {name!r} must have {config.latent_dim} entries "
                    f"(one per latent channel), got shape {np.shape(stats.get(name))}."
                )
        stats = {k: np.asarray(stats[k], np.float32) for k in ("mean", "std")}
    return config, b.params, stats, b.meta


def vae_model(directory: str | os.PathLike):
    """(VAE with the bundle's parameters, latent statistics or None)."""
    from salsa.models.vae.model import VAE

    config, params, stats, _ = load_vae(directory)
    return materialize(VAE, config, params, where=os.path.join(os.fspath(directory), PARAMS)), stats
