"""Reading a transformers checkpoint folder (config.json + *.safetensors) into numpy, without torch.

The linear-layer conversion lives here because every transformers converter needs it: torch keeps
Linear weights as (out, in), Flax kernels are (in, out).
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from salsa.convert import ConvertError


def read_folder(src: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(config dict, {parameter name: float32 array}) of a `save_pretrained` folder."""
    cfg_path = os.path.join(src, "config.json")
    files = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    if not os.path.isfile(cfg_path) or not files:
        raise ConvertError(
            f"--src {src!r} must be a transformers checkpoint folder with config.json and *.safetensors."
        )
    from safetensors.numpy import load_file

    with open(cfg_path) as f:
        config = json.load(f)
    weights: dict[str, np.ndarray] = {}
    for path in files:
        weights.update({k: np.asarray(v, np.float32) for k, v in load_file(path).items()})
    return config, weights


def linear(w: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """torch Linear `name` -> {'kernel': (in, out), 'bias': (out,)}."""
    try:
        return {"kernel": w[f"{name}.weight"].T, "bias": w[f"{name}.bias"]}
    except KeyError as e:
        raise ConvertError(f"checkpoint lacks {e.args[0]!r}") from None


def norm(w: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """torch LayerNorm -> {'scale', 'bias'}."""
    try:
        return {"scale": w[f"{name}.weight"], "bias": w[f"{name}.bias"]}
    except KeyError as e:
        raise ConvertError(f"checkpoint lacks {e.args[0]!r}") from None


def block(w: dict[str, np.ndarray], p: str, names: dict[str, str]) -> dict:
    """One pre-LN block `p` into salsa.models.encoders.vit.Block's layout; `names` gives the checkpoint's
    sub-module names for ln1, q, k, v, out, ln2, fc1, fc2."""
    n = names
    return {
        "ln1": norm(w, f"{p}.{n['ln1']}"),
        "attn": {x: linear(w, f"{p}.{n[x]}") for x in ("q", "k", "v", "out")},
        "ln2": norm(w, f"{p}.{n['ln2']}"),
        "mlp": {"fc1": linear(w, f"{p}.{n['fc1']}"), "fc2": linear(w, f"{p}.{n['fc2']}")},
    }


def count_layers(w: dict[str, np.ndarray], prefix: str) -> int:
    """Number of consecutive `prefix.<i>.` layers in the checkpoint."""
    i = 0
    while any(k.startswith(f"{prefix}.{i}.") for k in w):
        i += 1
    return i
