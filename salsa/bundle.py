"""The bundle: one directory holding a model's parameters and the config that rebuilds it.

    DIR/config.json   {"kind": "siglip2" | "ast" | "videoprism" | "sync", "config": {...}}
    DIR/params.npz    every nnx.Param as float32, keyed by its '/'-joined path in the module
                      (list indices as numbers: "image/encoder/blocks/0/attn/q/kernel")

Converters write bundles, training exports them, and the feature functions load them, so every
encoder has one on-disk format. Writes go to a temporary sibling directory renamed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in tree.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, path + "/"))
        else:
            out[path] = np.asarray(v, np.float32)
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
    cls: Callable[..., nnx.Module], config: Any, params: dict, model: nnx.Module | None = None
) -> nnx.Module:
    """`cls(config)` holding `params` (checked as `assign` does) without running its initializers;
    `model` is its `abstract` form when the caller has built that already."""
    model = abstract(cls, config) if model is None else model
    check_shapes(model, params)
    graphdef, state, rest = nnx.split(model, nnx.Param, ...)
    if jax.tree.leaves(rest):  # state other than parameters: let the initializers make it
        model = build(cls, config)
        assign(model, params)
        return model
    state.replace_by_pure_dict(jax.tree.map(jnp.asarray, params))
    return nnx.merge(graphdef, state, rest)


def from_bundle(path: str, kind: str, cls: Callable[..., nnx.Module], config_cls: Any) -> nnx.Module:
    """The model stored in the bundle at `path`: `cls(config_cls.from_dict(config))` with its params."""
    _, config, params = load(path, kind)
    return materialize(cls, config_cls.from_dict(config), params)


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


def _shapes(tree: dict, prefix: str = "") -> dict[str, tuple]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_shapes(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = tuple(getattr(v, "shape", np.shape(v)))
    return out


def check_shapes(model: nnx.Module, params: dict) -> None:
    """ValueError naming the first entry of `params` missing, extra or misshapen for `model` (a real or
    an `abstract` one)."""
    want = _shapes(nnx.state(model, nnx.Param).to_pure_dict())
    got = _shapes(params)
    if missing := sorted(set(want) - set(got)):
        raise ValueError(f"parameters missing: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if extra := sorted(set(got) - set(want)):
        raise ValueError(f"unexpected parameters: {extra[:5]}{' ...' if len(extra) > 5 else ''}")
    for k, shape in want.items():
        if shape != got[k]:
            raise ValueError(f"parameter {k} has shape {got[k]}; the model expects {shape}.")


@contextlib.contextmanager
def atomic_directory(directory: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary sibling folder to write into; when the block ends without error it becomes
    `directory` (an older one is moved aside, the new one renamed in, the old one removed), otherwise it
    is removed. Readers see the old directory or the complete new one, never a partial one."""
    directory = os.path.abspath(os.fspath(directory))
    temp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.", dir=os.path.dirname(directory))
    try:
        yield temp
        os.chmod(temp, 0o755)
        if os.path.isdir(directory):
            old = directory + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(directory, old)
            os.replace(temp, directory)
            shutil.rmtree(old)
        else:
            os.replace(temp, directory)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def save(
    out_dir: str, kind: str, config: dict, params: dict, extra_files: dict[str, str] | None = None
) -> None:
    """Writes the bundle atomically: nothing appears at `out_dir` unless everything was written.
    `extra_files` ({file name: text}) go into the same directory (e.g. a tokenizer.json)."""
    os.makedirs(os.path.dirname(os.path.abspath(out_dir)) or ".", exist_ok=True)
    with atomic_directory(out_dir) as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump({"kind": kind, "config": config}, f, indent=2)
        np.savez(os.path.join(tmp, "params.npz"), **flatten(params))
        for name, text in (extra_files or {}).items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)


def load(path: str, kind: str | None = None) -> tuple[str, dict, dict]:
    """(kind, config, params) of the bundle at `path`; ValueError if it is not one (or not `kind`)."""
    cfg_path, npz_path = os.path.join(path, "config.json"), os.path.join(path, "params.npz")
    if not (os.path.isfile(cfg_path) and os.path.isfile(npz_path)):
        raise ValueError(f"{path!r} is not a model bundle (expected config.json and params.npz in it).")
    with open(cfg_path) as f:
        meta = json.load(f)
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"bundle {path!r} holds a {meta.get('kind')!r} model; expected {kind!r}.")
    with np.load(npz_path) as z:
        params = unflatten({k: z[k] for k in z.files})
    return meta["kind"], meta["config"], params
