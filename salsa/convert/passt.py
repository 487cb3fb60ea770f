"""PaSST checkpoint -> salsa bundle (kind 'passt').

    python -m salsa.convert passt --src passt-s-f128-p16-s10-ap.476-swa.pt --out DIR

The file is the state dict the PaSST authors release (the av-benchmark protocol's model,
"passt_s_swa_p16_128_ap476"). The geometry is read off it: width from the class token, depth from the
blocks, MLP width, classes, and the frequency/time position grid (which must be the 16x16 patches at
stride 10 over 128 mels that the front end gives); heads are width / 64, as in every released PaSST.
The fused qkv projections are split into q, k, v. The distillation head (`head_dist`) is not used at
the reference's inference and is left out.
"""

from __future__ import annotations

import argparse

import numpy as np

from salsa.convert import ConvertError, pth
from salsa.models.encoders.vit import VitConfig
from salsa.models.evaluators.passt import Passt, PasstConfig

EXPECTED = "a PaSST checkpoint such as passt-s-f128-p16-s10-ap.476-swa.pt"
HELP = "PaSST (.pt from github.com/kkoutini/PaSST releases) -> bundle"
UNUSED = ("head_dist.weight", "head_dist.bias")


def _linear(w: dict, name: str) -> dict:
    return {"kernel": w[f"{name}.weight"].T, "bias": w[f"{name}.bias"]}


def _norm(w: dict, name: str) -> dict:
    return {"scale": w[f"{name}.weight"], "bias": w[f"{name}.bias"]}


def _depth(w: dict) -> int:
    i = 0
    while f"blocks.{i}.attn.qkv.weight" in w:
        i += 1
    return i


def config_from_weights(w: dict[str, np.ndarray], src: str) -> PasstConfig:
    """The geometry the checkpoint holds; ConvertError (naming --src) when it is not PaSST's."""
    for key in ("cls_token", "dist_token", "freq_new_pos_embed", "time_new_pos_embed", "head.1.weight"):
        if key not in w:
            raise ConvertError(f"--src {src!r}: no {key} in it; expected {EXPECTED}.")
    width = w["cls_token"].shape[-1]
    depth = _depth(w)
    if depth == 0 or width % 64:
        raise ConvertError(f"--src {src!r}: {depth} blocks of width {width}; expected {EXPECTED}.")
    vit = VitConfig(
        width=width,
        depth=depth,
        mlp_dim=w["blocks.0.mlp.fc1.weight"].shape[0],
        heads=width // 64,
        eps=1e-6,
        gelu_approximate=False,
    )
    c = PasstConfig(vit=vit, classes=w["head.1.weight"].shape[0])
    f, t = w["freq_new_pos_embed"].shape[2], w["time_new_pos_embed"].shape[3]
    if f != c.grid()[0] or w["patch_embed.proj.weight"].shape[-2:] != (c.patch, c.patch):
        raise ConvertError(
            f"--src {src!r}: {f} frequency patch rows; the 128-mel front end with 16x16 patches at "
            f"stride 10 gives {c.grid()[0]}."
        )
    if t == c.grid()[1]:  # the released 10 s grid (998 frames in the reference's configuration)
        return c
    return PasstConfig(vit=vit, classes=c.classes, max_frames=(t - 1) * c.stride + c.patch)


def params_from_weights(w: dict[str, np.ndarray], config: PasstConfig) -> dict:
    width = config.vit.width
    blocks = {}
    for i in range(config.vit.depth):
        p = f"blocks.{i}"
        qkv_w, qkv_b = w[f"{p}.attn.qkv.weight"], w[f"{p}.attn.qkv.bias"]
        attn = {
            name: {"kernel": qkv_w[j * width : (j + 1) * width].T, "bias": qkv_b[j * width : (j + 1) * width]}
            for j, name in enumerate(("q", "k", "v"))
        }
        attn["out"] = _linear(w, f"{p}.attn.proj")
        blocks[i] = {
            "ln1": _norm(w, f"{p}.norm1"),
            "attn": attn,
            "ln2": _norm(w, f"{p}.norm2"),
            "mlp": {"fc1": _linear(w, f"{p}.mlp.fc1"), "fc2": _linear(w, f"{p}.mlp.fc2")},
        }
    return {
        # (out, 1, kf, kt) -> (kf, kt, 1, out): frequency is the image's height, as in the reference
        "patch_embed": {
            "kernel": w["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
            "bias": w["patch_embed.proj.bias"],
        },
        "tokens": np.concatenate([w["cls_token"][0], w["dist_token"][0]]),
        "token_pos": w["new_pos_embed"][0],
        "freq_pos": w["freq_new_pos_embed"][0, :, :, 0].T,
        "time_pos": w["time_new_pos_embed"][0, :, 0, :].T,
        "encoder": {"blocks": blocks},
        "norm": _norm(w, "norm"),
        "head_norm": _norm(w, "head.0"),
        "head": _linear(w, "head.1"),
    }


def convert(src: str, out: str) -> PasstConfig:
    def read(w):
        config = config_from_weights(w, src)
        return config, params_from_weights(w, config)

    config, params = pth.read_mapped(src, EXPECTED, read)
    pth.save_checked(out, "passt", Passt, config, params, src)
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--src", required=True, help="PaSST checkpoint, e.g. passt-s-f128-p16-s10-ap.476-swa.pt"
    )
    parser.add_argument("--out", required=True, help="output bundle directory")


def main(args: argparse.Namespace) -> str:
    c = convert(args.src, args.out)
    return f"PaSST ({c.vit.width} wide, {c.vit.depth} blocks, {c.classes} classes) -> {args.out}"
