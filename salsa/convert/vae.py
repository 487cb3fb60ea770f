"""Oobleck VAE weights from stable-audio-tools or diffusers into a salsa VAE bundle.

Sources (never unpickled beyond tensors):
  - a diffusers `AutoencoderOobleck` folder (config.json + diffusion_pytorch_model.safetensors or .bin),
    or a pipeline folder holding one in vae/;
  - a stable-audio-tools checkpoint: model.safetensors / model.ckpt / a lightning .ckpt (a folder with
    one, or the file itself). Keys may carry any prefix before `encoder.layers.` / `decoder.layers.`
    (`pretransform.model.` in a full Stable Audio checkpoint, `autoencoder.` in a training one).

The geometry (channels, multiples, strides, latent size, audio channels) is read off the tensor shapes.
Weight normalisation is kept as its (g, v) parameterisation, which is exact and lets the converted model
be fine-tuned as it was trained; plain (already folded) weights load as g = ‖w‖, v = w.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from salsa.convert import ConvertError
from salsa.models.vae.model import VAEConfig

SAFETENSORS = ("diffusion_pytorch_model.safetensors", "model.safetensors")
TORCH = ("diffusion_pytorch_model.bin", "model.ckpt", "pytorch_model.bin")


# ---------------------------------------------------------------- reading tensors


def _read_tensors(path: str) -> dict[str, np.ndarray]:
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return dict(load_file(path))
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, ... for foreign files
        raise ConvertError(f"{path}: not a torch state dict loadable with weights_only=True ({e}).") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: expected a state dict, found {type(obj).__name__}.")
    return {k: v.float().numpy() for k, v in obj.items() if hasattr(v, "numpy")}


def _find_source(src: str) -> tuple[str, dict]:
    """(weights file, config dict or {}) for a file or folder."""
    if os.path.isfile(src):
        return src, {}
    if not os.path.isdir(src):
        raise ConvertError(f"{src}: no such file or folder.")
    if os.path.isfile(os.path.join(src, "vae", "config.json")):
        src = os.path.join(src, "vae")
    config = {}
    for name in ("config.json", "model_config.json"):
        p = os.path.join(src, name)
        if os.path.isfile(p):
            with open(p) as f:
                config = json.load(f)
            break
    for name in SAFETENSORS + TORCH:
        p = os.path.join(src, name)
        if os.path.isfile(p):
            return p, config
    raise ConvertError(f"{src}: found none of {', '.join(SAFETENSORS + TORCH)}.")


# ---------------------------------------------------------------- key mapping


def _sat_to_diffusers(key: str, n_blocks: int) -> str:
    """stable-audio-tools names (nn.Sequential indices) -> diffusers names, for one encoder/decoder key."""
    m = re.fullmatch(r"(encoder|decoder)\.layers\.(\d+)\.(.+)", key)
    if m is None:
        raise ConvertError(f"unexpected stable-audio-tools key {key!r}.")
    part, i, rest = m.group(1), int(m.group(2)), m.group(3)
    if i == 0:
        return f"{part}.conv1.{rest}"
    if i == n_blocks + 1:
        return f"{part}.snake1.{rest}"
    if i == n_blocks + 2:
        return f"{part}.conv2.{rest}"
    m = re.fullmatch(r"layers\.(\d+)\.(.+)", rest)
    if m is None:
        raise ConvertError(f"unexpected stable-audio-tools key {key!r}.")
    j, leaf = int(m.group(1)), m.group(2)
    # Encoder block: 3 residual units, snake, strided conv. Decoder block: snake, transposed conv, 3 units.
    if part == "encoder":
        name = {0: "res_unit1", 1: "res_unit2", 2: "res_unit3", 3: "snake1", 4: "conv1"}.get(j)
    else:
        name = {0: "snake1", 1: "conv_t1", 2: "res_unit1", 3: "res_unit2", 4: "res_unit3"}.get(j)
    if name is None:
        raise ConvertError(f"unexpected stable-audio-tools key {key!r}.")
    if name.startswith("res_unit"):
        m = re.fullmatch(r"layers\.(\d)\.(.+)", leaf)
        if m is None or int(m.group(1)) > 3:
            raise ConvertError(f"unexpected stable-audio-tools key {key!r}.")
        leaf = ("snake1", "conv1", "snake2", "conv2")[int(m.group(1))] + "." + m.group(2)
    return f"{part}.block.{i - 1}.{name}.{leaf}"


def _canonical(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Any supported layout -> diffusers names with weight_g / weight_v / weight / bias leaves."""
    out = {}
    sat = any(re.search(r"(^|\.)(encoder|decoder)\.layers\.\d", k) for k in tensors)
    for key, value in tensors.items():
        m = re.search(r"(^|\.)((encoder|decoder)\..+)$", key)
        if m is None:
            continue  # not part of the autoencoder (diffusion model, conditioners, ...)
        name = m.group(2)
        name = name.replace("parametrizations.weight.original0", "weight_g")
        name = name.replace("parametrizations.weight.original1", "weight_v")
        out[name] = value
    if not out:
        raise ConvertError("no encoder.* / decoder.* tensors found: not an Oobleck autoencoder checkpoint.")
    if sat:
        n = {
            p: 1 + max(int(k.split(".")[2]) for k in out if k.startswith(p)) - 3
            for p in ("encoder", "decoder")
        }
        if n["encoder"] != n["decoder"]:
            raise ConvertError(f"encoder has {n['encoder']} blocks but decoder {n['decoder']}.")
        out = {_sat_to_diffusers(k, n["encoder"]): v for k, v in out.items()}
    return out


def _weight(sd: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(g, v) in torch layout for a weight-normed (or plain) conv named `name`."""
    if f"{name}.weight_v" in sd:
        return sd[f"{name}.weight_g"], sd[f"{name}.weight_v"]
    if f"{name}.weight" in sd:
        w = sd[f"{name}.weight"]
        return np.sqrt((w.astype(np.float64) ** 2).sum(axis=(1, 2))), w
    raise ConvertError(f"missing weights of {name}.")


def _conv(sd, name, transpose=False) -> dict:
    g, v = _weight(sd, name)
    v = np.asarray(v, np.float32)
    # torch Conv1d (out, in, k) / ConvTranspose1d (in, out, k) -> ours (k, in, out)
    p = {
        "g": np.asarray(g, np.float32).reshape(-1),
        "v": v.transpose(2, 0, 1) if transpose else v.transpose(2, 1, 0),
    }
    if f"{name}.bias" in sd:
        p["bias"] = np.asarray(sd[f"{name}.bias"], np.float32)
    return p


def _snake(sd, name) -> dict:
    return {k: np.asarray(sd[f"{name}.{k}"], np.float32).reshape(-1) for k in ("alpha", "beta")}


def _res(sd, name) -> dict:
    return {
        "snake1": _snake(sd, f"{name}.snake1"),
        "conv1": _conv(sd, f"{name}.conv1"),
        "snake2": _snake(sd, f"{name}.snake2"),
        "conv2": _conv(sd, f"{name}.conv2"),
    }


def infer_config(sd: dict[str, np.ndarray], sample_rate: int = 44100) -> VAEConfig:
    """The geometry of a canonical (diffusers-named) state dict, from tensor shapes."""
    n = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.block."))
    _, v = _weight(sd, "encoder.conv1")
    audio_channels, enc = v.shape[1], v.shape[0]
    widths, strides = [enc], []
    for i in range(n):
        _, v = _weight(sd, f"encoder.block.{i}.conv1")
        widths.append(v.shape[0])
        strides.append(1 if v.shape[2] == 3 else v.shape[2] // 2)
    if any(w % enc for w in widths):
        raise ConvertError(f"encoder widths {widths} are not multiples of the first ({enc}).")
    _, v_out = _weight(sd, "encoder.conv2")
    _, v_dec = _weight(sd, "decoder.conv2")
    _, v_in = _weight(sd, "decoder.conv1")
    if 2 * v_in.shape[1] != v_out.shape[0]:
        raise ConvertError(
            f"decoder takes {v_in.shape[1]} latent channels but the encoder makes {v_out.shape[0]} "
            "(expected 2 x latent: mean and scale)."
        )
    return VAEConfig(
        sample_rate=int(sample_rate),
        audio_channels=int(audio_channels),
        latent_dim=int(v_in.shape[1]),
        encoder_channels=int(enc),
        decoder_channels=int(v_dec.shape[1]),
        multiples=tuple(int(w // enc) for w in widths[1:]),
        strides=tuple(strides),
    )


def convert_state_dict(tensors: dict[str, np.ndarray], sample_rate: int = 44100) -> tuple[VAEConfig, dict]:
    """(config, salsa parameter tree) from a stable-audio-tools or diffusers state dict."""
    sd = _canonical(tensors)
    config = infer_config(sd, sample_rate)
    n = len(config.strides)
    enc = {
        "conv1": _conv(sd, "encoder.conv1"),
        "block": {
            i: {
                **{f"res_unit{j}": _res(sd, f"encoder.block.{i}.res_unit{j}") for j in (1, 2, 3)},
                "snake1": _snake(sd, f"encoder.block.{i}.snake1"),
                "conv1": _conv(sd, f"encoder.block.{i}.conv1"),
            }
            for i in range(n)
        },
        "snake1": _snake(sd, "encoder.snake1"),
        "conv2": _conv(sd, "encoder.conv2"),
    }
    dec = {
        "conv1": _conv(sd, "decoder.conv1"),
        "block": {
            i: {
                "snake1": _snake(sd, f"decoder.block.{i}.snake1"),
                "conv_t1": _conv(sd, f"decoder.block.{i}.conv_t1", transpose=True),
                **{f"res_unit{j}": _res(sd, f"decoder.block.{i}.res_unit{j}") for j in (1, 2, 3)},
            }
            for i in range(n)
        },
        "snake1": _snake(sd, "decoder.snake1"),
        "conv2": _conv(sd, "decoder.conv2"),
    }
    return config, {"encoder": enc, "decoder": dec}


def load_source(src: str) -> tuple[VAEConfig, dict]:
    """Reads and converts a checkpoint file or folder (see the module docstring)."""
    path, cfg = _find_source(src)
    if not path.endswith((".safetensors", ".bin", ".ckpt", ".pt", ".pth")):
        raise ConvertError(f"{path}: expected a .safetensors, .bin, .ckpt, .pt or .pth file.")
    rate = cfg.get("sampling_rate") or cfg.get("sample_rate") or 44100
    return convert_state_dict(_read_tensors(path), rate)


def transplant(target: dict, source: dict) -> tuple[dict, list[str]]:
    """`target` with every layer (a module's set of parameters) taken from `source` when the source has
    it with the same shapes; also returns the layers kept from `target` (e.g. sao43's replaced ones)."""
    from salsa.bundle import flatten, unflatten

    taken, kept = matching_layers(target, source)
    fresh = {k: v for k, v in flatten(target).items() if k.rsplit("/", 1)[0] in kept}
    return unflatten({**flatten(taken), **fresh}), kept


def matching_layers(target: dict, source: dict) -> tuple[dict, list[str]]:
    """The layers of `source` that `target` has with the same shapes (a tree like target's, holding only
    those layers), and the names of target's layers that the source cannot fill. Target's leaves need only
    a shape: an abstract state (jax.ShapeDtypeStruct) will do."""
    from salsa.bundle import flatten, unflatten

    t = flatten(target, leaf=np.shape)
    s = flatten(source)
    layers: dict[str, list[str]] = {}
    for k in t:
        layers.setdefault(k.rsplit("/", 1)[0], []).append(k)
    kept = sorted(
        layer for layer, keys in layers.items() if any(k not in s or s[k].shape != t[k] for k in keys)
    )
    return unflatten({k: s[k] for layer, keys in layers.items() if layer not in kept for k in keys}), kept
