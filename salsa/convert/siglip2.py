"""transformers SiglipModel / Siglip2Model checkpoint -> salsa SigLIP bundle (kind 'siglip2').

    python -m salsa.convert siglip2 --src <save_pretrained folder> --out DIR

The fixed-resolution SigLIP 2 releases (e.g. siglip2-so400m-patch16-256) load as SiglipModel, with a
Conv2d patch embedding; the NaFlex releases load as Siglip2Model, with a Linear one over patches
flattened (row, col, channel). Both become our Linear over (row, col, channel) patches.
"""

from __future__ import annotations

import argparse

import numpy as np

from salsa import bundle
from salsa.convert import ConvertError
from salsa.convert.hf import block, count_layers, linear, norm, read_folder
from salsa.models.encoders.siglip2 import SiglipConfig
from salsa.models.encoders.vit import VitConfig

_NAMES = dict(
    ln1="layer_norm1",
    q="self_attn.q_proj",
    k="self_attn.k_proj",
    v="self_attn.v_proj",
    out="self_attn.out_proj",
    ln2="layer_norm2",
    fc1="mlp.fc1",
    fc2="mlp.fc2",
)
_GELU_APPROXIMATE = {"gelu_pytorch_tanh": True, "gelu": False}


def _tower(cfg: dict) -> VitConfig:
    act = cfg.get("hidden_act", "gelu_pytorch_tanh")
    if act not in _GELU_APPROXIMATE:
        raise ConvertError(
            f"hidden_act {act!r} is not supported; expected one of {sorted(_GELU_APPROXIMATE)}."
        )
    return VitConfig(
        width=cfg["hidden_size"],
        depth=cfg["num_hidden_layers"],
        mlp_dim=cfg["intermediate_size"],
        heads=cfg["num_attention_heads"],
        eps=cfg.get("layer_norm_eps", 1e-6),
        gelu_approximate=_GELU_APPROXIMATE[act],
    )


def config_from_hf(cfg: dict) -> SiglipConfig:
    if cfg.get("model_type") not in ("siglip", "siglip2"):
        raise ConvertError(f"model_type {cfg.get('model_type')!r} is not 'siglip' or 'siglip2'.")
    v, t = cfg["vision_config"], cfg["text_config"]
    patch = v["patch_size"]
    if cfg["model_type"] == "siglip2":
        grid = int(round(v["num_patches"] ** 0.5))
        image_size = grid * patch
    else:
        image_size = v["image_size"]
    return SiglipConfig(
        image=_tower(v),
        text=_tower(t),
        patch=patch,
        image_size=image_size,
        vocab_size=t["vocab_size"],
        text_len=t["max_position_embeddings"],
        text_proj=t.get("projection_size") or t["hidden_size"],
    )


def params_from_hf(cfg: dict, w: dict[str, np.ndarray]) -> dict:
    """Nested params for salsa.models.encoders.siglip2.Siglip from the checkpoint's tensors."""
    vp, tp = "vision_model", "text_model"
    patch_w = w[f"{vp}.embeddings.patch_embedding.weight"]
    # Conv2d (out, in, kh, kw) -> Linear over (kh, kw, in) patches; Siglip2's Linear is (out, in).
    conv = patch_w.ndim == 4
    patch_w = patch_w.transpose(2, 3, 1, 0).reshape(-1, patch_w.shape[0]) if conv else patch_w.T
    d = patch_w.shape[1]
    head = f"{vp}.head"
    in_w, in_b = w[f"{head}.attention.in_proj_weight"], w[f"{head}.attention.in_proj_bias"]
    qkv = {
        n: {"kernel": in_w[i * d : (i + 1) * d].T, "bias": in_b[i * d : (i + 1) * d]}
        for i, n in enumerate("qkv")
    }
    image = {
        "embed": {"kernel": patch_w, "bias": w[f"{vp}.embeddings.patch_embedding.bias"]},
        "pos": w[f"{vp}.embeddings.position_embedding.weight"],
        "encoder": {
            "blocks": {
                i: block(w, f"{vp}.encoder.layers.{i}", _NAMES)
                for i in range(count_layers(w, f"{vp}.encoder.layers"))
            }
        },
        "norm": norm(w, f"{vp}.post_layernorm"),
        "head": {
            "probe": w[f"{head}.probe"].reshape(1, d),
            "attn": {**qkv, "out": linear(w, f"{head}.attention.out_proj")},
            "ln": norm(w, f"{head}.layernorm"),
            "mlp": {"fc1": linear(w, f"{head}.mlp.fc1"), "fc2": linear(w, f"{head}.mlp.fc2")},
        },
    }
    text = {
        "token": {"embedding": w[f"{tp}.embeddings.token_embedding.weight"]},
        "pos": w[f"{tp}.embeddings.position_embedding.weight"],
        "encoder": {
            "blocks": {
                i: block(w, f"{tp}.encoder.layers.{i}", _NAMES)
                for i in range(count_layers(w, f"{tp}.encoder.layers"))
            }
        },
        "norm": norm(w, f"{tp}.final_layer_norm"),
        "head": linear(w, f"{tp}.head"),
    }
    return {
        "image": image,
        "text": text,
        "log_temperature": w["logit_scale"].reshape(()),
        "bias": w["logit_bias"].reshape(()),
    }


def convert(src: str, out: str) -> SiglipConfig:
    """Converts the checkpoint folder `src` into a bundle at `out`; returns its config."""
    cfg, w = read_folder(src)
    config = config_from_hf(cfg)
    if "vision_model.head.probe" not in w:
        raise ConvertError(f"{src!r} has no vision MAP head (vision_use_head=False); salsa needs it.")
    try:
        params = params_from_hf(cfg, w)
    except KeyError as e:
        raise ConvertError(f"checkpoint lacks {e.args[0]!r}") from None
    bundle.save(out, "siglip2", config.to_dict(), params)
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="transformers SiglipModel/Siglip2Model folder")
    parser.add_argument("--out", required=True, help="output bundle directory")


def main(args: argparse.Namespace) -> str:
    c = convert(args.src, args.out)
    return f"SigLIP ({c.image.width} wide, {c.image.depth}+{c.text.depth} layers) -> {args.out}"
