"""transformers ASTModel checkpoint -> salsa AST bundle (kind 'ast').

    python -m salsa.convert ast --src <save_pretrained folder of ASTModel / ASTForAudioClassification>
        --out DIR

The classifier head of ASTForAudioClassification checkpoints is dropped: salsa uses the encoder.
"""

from __future__ import annotations

import argparse

import numpy as np

from salsa import bundle
from salsa.convert import ConvertError
from salsa.convert.hf import block, count_layers, norm, read_folder
from salsa.models.encoders.ast import AstConfig
from salsa.models.encoders.vit import VitConfig

_NAMES = dict(
    ln1="layernorm_before",
    q="attention.q_proj",
    k="attention.k_proj",
    v="attention.v_proj",
    out="attention.o_proj",
    ln2="layernorm_after",
    fc1="mlp.fc1",
    fc2="mlp.fc2",
)
# Checkpoints written by transformers < 5 (the released ones) use these names; map them to the new ones.
_OLD_NAMES = (
    ("encoder.layer.", "layers."),
    ("attention.attention.query", "attention.q_proj"),
    ("attention.attention.key", "attention.k_proj"),
    ("attention.attention.value", "attention.v_proj"),
    ("attention.output.dense", "attention.o_proj"),
    ("intermediate.dense", "mlp.fc1"),
    ("output.dense", "mlp.fc2"),
)


def config_from_hf(cfg: dict) -> AstConfig:
    if cfg.get("model_type") != "audio-spectrogram-transformer":
        raise ConvertError(f"model_type {cfg.get('model_type')!r} is not 'audio-spectrogram-transformer'.")
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise ConvertError(f"hidden_act {cfg['hidden_act']!r} is not supported; expected 'gelu'.")
    vit = VitConfig(
        width=cfg["hidden_size"],
        depth=cfg["num_hidden_layers"],
        mlp_dim=cfg["intermediate_size"],
        heads=cfg["num_attention_heads"],
        eps=cfg.get("layer_norm_eps", 1e-12),
        gelu_approximate=False,
    )
    return AstConfig(
        vit=vit,
        num_mel_bins=cfg["num_mel_bins"],
        max_length=cfg["max_length"],
        patch=cfg["patch_size"],
        frequency_stride=cfg["frequency_stride"],
        time_stride=cfg["time_stride"],
    )


def _renamed(w: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in w.items():
        k = k.removeprefix("audio_spectrogram_transformer.")
        for old, new in _OLD_NAMES:
            k = k.replace(old, new)
        out[k] = v
    return out


def params_from_hf(w: dict[str, np.ndarray]) -> dict:
    w = _renamed(w)
    conv = w["embeddings.patch_embeddings.projection.weight"]  # (out, 1, kf, kt) -> (kf, kt, 1, out)
    return {
        "patch_embed": {
            "kernel": conv.transpose(2, 3, 1, 0),
            "bias": w["embeddings.patch_embeddings.projection.bias"],
        },
        "cls": np.concatenate([w["embeddings.cls_token"][0], w["embeddings.distillation_token"][0]]),
        "pos": w["embeddings.position_embeddings"][0],
        "encoder": {"blocks": {i: block(w, f"layers.{i}", _NAMES) for i in range(count_layers(w, "layers"))}},
        "norm": norm(w, "layernorm"),
    }


def convert(src: str, out: str) -> AstConfig:
    cfg, w = read_folder(src)
    config = config_from_hf(cfg)
    try:
        params = params_from_hf(w)
    except KeyError as e:
        raise ConvertError(f"checkpoint lacks {e.args[0]!r}") from None
    bundle.save(out, "ast", config.to_dict(), params)
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="transformers ASTModel folder")
    parser.add_argument("--out", required=True, help="output bundle directory")


def main(args: argparse.Namespace) -> str:
    c = convert(args.src, args.out)
    return f"AST ({c.vit.width} wide, {c.vit.depth} layers, {c.num_mel_bins} mel) -> {args.out}"
