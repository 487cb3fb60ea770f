"""ImageBind checkpoint -> salsa bundle (kind 'imagebind'): the vision and audio towers.

    python -m salsa.convert imagebind --src imagebind_huge.pth --out DIR

The file is the state dict the ImageBind authors release (imagebind_huge.pth, all six modalities).
The vision and audio towers are read off it (`modality_{preprocessors,trunks,heads}.{vision,audio}`);
text, depth, thermal and IMU are left out, and so is the audio postprocessor's fixed logit scale (a
cosine ignores it). Widths, depths, MLP widths and the output width come from the tensors; heads are
not stored, and are width / 80 for vision and width / 64 for audio, as in the released model (16 and
12). The fused attention projections (in_proj) are split into q, k, v; the audio blocks' bias_k and
bias_v become the extra key and value of salsa.models.evaluators.imagebind.BiasKvAttention.
"""

from __future__ import annotations

import argparse

import numpy as np

from salsa.convert import ConvertError, pth
from salsa.models.encoders.vit import VitConfig
from salsa.models.evaluators.imagebind import ImageBind, ImageBindConfig

EXPECTED = "the ImageBind checkpoint imagebind_huge.pth"
HELP = "ImageBind (imagebind_huge.pth from dl.fbaipublicfiles.com/imagebind) -> bundle (vision + audio)"
HEAD_WIDTH = {"vision": 80, "audio": 64}
PRE = "modality_preprocessors"
VISION_STEM = f"{PRE}.vision.rgbt_stem.proj.1.weight"
AUDIO_STEM = f"{PRE}.audio.rgbt_stem.proj.weight"


def _linear(w: dict, name: str) -> dict:
    return {"kernel": w[f"{name}.weight"].T, "bias": w[f"{name}.bias"]}


def _norm(w: dict, name: str) -> dict:
    return {"scale": w[f"{name}.weight"], "bias": w[f"{name}.bias"]}


def _depth(w: dict, tower: str) -> int:
    i = 0
    while f"modality_trunks.{tower}.blocks.{i}.attn.in_proj_weight" in w:
        i += 1
    return i


def _tower(w: dict, tower: str, src: str) -> VitConfig:
    width, depth = w[f"{PRE}.{tower}.cls_token"].shape[-1], _depth(w, tower)
    if depth == 0 or width % HEAD_WIDTH[tower]:
        raise ConvertError(
            f"--src {src!r}: a {tower} tower of {depth} blocks, {width} wide; expected {EXPECTED}."
        )
    mlp = w[f"modality_trunks.{tower}.blocks.0.mlp.fc1.weight"].shape[0]
    return VitConfig(width, depth, mlp, width // HEAD_WIDTH[tower], eps=1e-6, gelu_approximate=False)


def config_from_weights(w: dict[str, np.ndarray], src: str) -> ImageBindConfig:
    """The towers' geometry the checkpoint holds; ConvertError (naming --src) when it is not ImageBind's
    or its patch and position grids are not those of the released front end (224 px clips of 2 frames,
    128 mels x 204 frames)."""
    for key in (f"{PRE}.vision.cls_token", f"{PRE}.audio.cls_token", VISION_STEM, AUDIO_STEM):
        if key not in w:
            raise ConvertError(f"--src {src!r}: no {key} in it; expected {EXPECTED}.")
    out_dims = {w[f"modality_heads.{t}.2.weight"].shape[0] for t in ("vision", "audio")}
    if len(out_dims) != 1:
        raise ConvertError(
            f"--src {src!r}: vision and audio heads of widths {sorted(out_dims)}; expected one."
        )
    c = ImageBindConfig(
        vision=_tower(w, "vision", src), audio=_tower(w, "audio", src), out_dim=out_dims.pop()
    )
    checks = (
        ("vision patch kernel", w[VISION_STEM].shape[1:], (3, c.frames, c.patch, c.patch)),
        ("vision positions", w[f"{PRE}.vision.pos_embedding_helper.pos_embed"].shape[1], 1 + c.grid**2),
        ("audio patch kernel", w[AUDIO_STEM].shape[1:], (1, c.audio_patch, c.audio_patch)),
        (
            "audio positions",
            w[f"{PRE}.audio.pos_embedding_helper.pos_embed"].shape[1],
            1 + np.prod(c.audio_grid),
        ),
    )
    for what, got, want in checks:
        if tuple(np.atleast_1d(got)) != tuple(np.atleast_1d(want)):
            raise ConvertError(f"--src {src!r}: {what} {got}; the released front end needs {want}.")
    return c


def _blocks(w: dict, tower: str, c: VitConfig) -> dict:
    blocks = {}
    for i in range(c.depth):
        p = f"modality_trunks.{tower}.blocks.{i}"
        qkv_w, qkv_b = w[f"{p}.attn.in_proj_weight"], w[f"{p}.attn.in_proj_bias"]
        attn = {
            name: {
                "kernel": qkv_w[j * c.width : (j + 1) * c.width].T,
                "bias": qkv_b[j * c.width : (j + 1) * c.width],
            }
            for j, name in enumerate(("q", "k", "v"))
        }
        attn["out"] = _linear(w, f"{p}.attn.out_proj")
        if tower == "audio":
            attn |= {"bias_k": w[f"{p}.attn.bias_k"].reshape(-1), "bias_v": w[f"{p}.attn.bias_v"].reshape(-1)}
        blocks[i] = {
            "ln1": _norm(w, f"{p}.norm_1"),
            "attn": attn,
            "ln2": _norm(w, f"{p}.norm_2"),
            "mlp": {"fc1": _linear(w, f"{p}.mlp.fc1"), "fc2": _linear(w, f"{p}.mlp.fc2")},
        }
    return {"blocks": blocks}


def _common(w: dict, tower: str, c: VitConfig) -> dict:
    return {
        "cls": w[f"{PRE}.{tower}.cls_token"][0],
        "pos": w[f"{PRE}.{tower}.pos_embedding_helper.pos_embed"][0],
        "encoder": _blocks(w, tower, c),
        "head": {
            "head_norm": _norm(w, f"modality_heads.{tower}.0"),
            "head": {"kernel": w[f"modality_heads.{tower}.2.weight"].T},
        },
    }


def params_from_weights(w: dict[str, np.ndarray], config: ImageBindConfig) -> dict:
    vision = _common(w, "vision", config.vision)
    # (out, 3, t, h, w) -> (t, h, w, 3, out)
    vision["patch_embed"] = {"kernel": w[VISION_STEM].transpose(2, 3, 4, 1, 0)}
    vision["pre_norm"] = _norm(w, "modality_trunks.vision.pre_transformer_layer.0")
    audio = _common(w, "audio", config.audio)
    # (out, 1, mel, time) -> (mel, time, 1, out): mel is the image's height, as in the reference
    audio["patch_embed"] = {"kernel": w[AUDIO_STEM].transpose(2, 3, 1, 0)}
    audio["patch_norm"] = _norm(w, f"{PRE}.audio.rgbt_stem.norm_layer")
    return {"vision": vision, "audio": audio}


def convert(src: str, out: str) -> ImageBindConfig:
    def read(w):
        config = config_from_weights(w, src)
        return config, params_from_weights(w, config)

    config, params = pth.read_mapped(src, EXPECTED, read)
    pth.save_checked(out, "imagebind", ImageBind, config, params, src)
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="ImageBind checkpoint, imagebind_huge.pth")
    parser.add_argument("--out", required=True, help="output bundle directory")


def main(args: argparse.Namespace) -> str:
    c = convert(args.src, args.out)
    return (
        f"ImageBind vision ({c.vision.width} wide, {c.vision.depth} blocks) and audio ({c.audio.width} wide, "
        f"{c.audio.depth} blocks) towers, {c.out_dim}-d embeddings -> {args.out}"
    )
