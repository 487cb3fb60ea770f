"""Synchformer state dict -> salsa bundle (kind 'synchformer').

    python -m salsa.convert synchformer --src synchformer_state_dict.pth --out DIR

The file is the state dict of Synchformer's AudioSet model 24-01-04T16-39-21 that MMAudio releases
(v0.1, 907 MB, MD5 5b2f5594b0730f70e41e549b7c94390c) and av-benchmark loads for DeSync: the `model`
entry of the authors' checkpoint, whose other entries (the training configuration) would need pickled
code to load. A checkpoint that still holds it under "model" or "state_dict" is read the same way
when torch can load it with weights_only. `key_layout` is the file's layout, transcribed from the
public model definition: every key is mapped, none may be missing, none may be left over (the 2D
`patch_embed`, which the model keeps but never runs, is the one key dropped) and every shape must fit.
"""

from __future__ import annotations

import argparse

import numpy as np

from salsa.convert import ConvertError, pth
from salsa.models.evaluators.synchformer import Synchformer, SynchformerConfig

EXPECTED = "synchformer_state_dict.pth (Synchformer 24-01-04T16-39-21, MMAudio's release)"
HELP = "Synchformer (synchformer_state_dict.pth from MMAudio's v0.1 release) -> bundle"
V, A, T = "vfeat_extractor.", "afeat_extractor.", "transformer."
UNUSED = (f"{V}patch_embed.proj.weight", f"{V}patch_embed.proj.bias")


def _norm_keys(name: str, w: int) -> dict:
    return {f"{name}.weight": (w,), f"{name}.bias": (w,)}


def _linear_keys(name: str, n_in: int, n_out: int) -> dict:
    return {f"{name}.weight": (n_out, n_in), f"{name}.bias": (n_out,)}


def _pool_keys(name: str, w: int, mlp: int) -> dict:
    """torch's TransformerEncoderLayer (norm_first) with a CLS token, the towers' aggregating layers."""
    return {
        f"{name}.cls_token": (1, 1, w),
        f"{name}.self_attn.in_proj_weight": (3 * w, w),
        f"{name}.self_attn.in_proj_bias": (3 * w,),
        **_linear_keys(f"{name}.self_attn.out_proj", w, w),
        **_linear_keys(f"{name}.linear1", w, mlp),
        **_linear_keys(f"{name}.linear2", mlp, w),
        **_norm_keys(f"{name}.norm1", w),
        **_norm_keys(f"{name}.norm2", w),
    }


def key_layout(c: SynchformerConfig | None = None) -> dict[str, tuple[int, ...]]:
    """Every tensor of the state dict and its shape (default: the released model's, 907 MB)."""
    c = SynchformerConfig() if c is None else c
    vw, vm, p, g = c.video.width, c.video.mlp_dim, c.patch, c.image_size // c.patch
    out = {
        f"{V}patch_embed.proj.weight": (vw, 3, p, p),
        f"{V}patch_embed.proj.bias": (vw,),
        f"{V}patch_embed_3d.proj.weight": (vw, 3, c.tubelet, p, p),
        f"{V}patch_embed_3d.proj.bias": (vw,),
        f"{V}cls_token": (1, 1, vw),
        f"{V}pos_embed": (1, 1 + g * g, vw),
        f"{V}temp_embed": (1, c.steps, vw),
    }
    for i in range(c.video.depth):
        b = f"{V}blocks.{i}"
        for n in ("norm1", "norm2", "norm3"):
            out |= _norm_keys(f"{b}.{n}", vw)
        for n in ("attn", "timeattn"):
            out |= _linear_keys(f"{b}.{n}.qkv", vw, 3 * vw) | _linear_keys(f"{b}.{n}.proj", vw, vw)
        out |= _linear_keys(f"{b}.mlp.fc1", vw, vm) | _linear_keys(f"{b}.mlp.fc2", vm, vw)
    out |= _norm_keys(f"{V}norm", vw) | _pool_keys(f"{V}spatial_attn_agg", vw, vm)

    aw, am, e = c.audio.width, c.audio.mlp_dim, f"{A}ast.embeddings."
    f, t = c.ast.grid()
    out |= {
        f"{e}cls_token": (1, 1, aw),
        f"{e}distillation_token": (1, 1, aw),
        f"{e}position_embeddings": (1, 2 + f * t, aw),
        f"{e}patch_embeddings.projection.weight": (aw, 1, c.audio_patch, c.audio_patch),
        f"{e}patch_embeddings.projection.bias": (aw,),
    }
    for i in range(c.audio.depth):
        b = f"{A}ast.encoder.layer.{i}"
        for n in ("query", "key", "value"):
            out |= _linear_keys(f"{b}.attention.attention.{n}", aw, aw)
        out |= _linear_keys(f"{b}.attention.output.dense", aw, aw)
        out |= _linear_keys(f"{b}.intermediate.dense", aw, am) | _linear_keys(f"{b}.output.dense", am, aw)
        out |= _norm_keys(f"{b}.layernorm_before", aw) | _norm_keys(f"{b}.layernorm_after", aw)
    out |= _norm_keys(f"{A}ast.layernorm", aw) | _pool_keys(f"{A}freq_attn_agg", aw, am)

    jw, jm = c.joint.width, c.joint.mlp_dim
    out |= _linear_keys("vproj", vw, jw) | _linear_keys("aproj", aw, jw)
    out |= _norm_keys(f"{T}vis_in_lnorm", jw) | _norm_keys(f"{T}aud_in_lnorm", jw)
    out |= {
        f"{T}OFF_tok": (1, 1, jw),
        f"{T}MOD_tok": (1, 1, jw),
        f"{T}pos_emb_cfg.pos_emb": (1, c.joint_length, jw),
    }
    for i in range(c.joint.depth):
        b = f"{T}blocks.{i}"
        out |= _norm_keys(f"{b}.ln1", jw) | _norm_keys(f"{b}.ln2", jw)
        for n in ("query", "key", "value", "proj"):
            out |= _linear_keys(f"{b}.attn.{n}", jw, jw)
        out |= _linear_keys(f"{b}.mlp.0", jw, jm) | _linear_keys(f"{b}.mlp.2", jm, jw)
    out |= _norm_keys(f"{T}ln_f", jw) | _linear_keys(f"{T}off_head", jw, c.classes)
    return out


class _Reader:
    """Takes tensors out of the state dict once each, so that what is left over can be named."""

    def __init__(self, w: dict[str, np.ndarray]):
        self.w = dict(w)

    def take(self, key: str) -> np.ndarray:
        return self.w.pop(key)  # a missing key raises KeyError, which read_mapped names

    def linear(self, name: str) -> dict:
        return {"kernel": self.take(f"{name}.weight").T, "bias": self.take(f"{name}.bias")}

    def norm(self, name: str) -> dict:
        return {"scale": self.take(f"{name}.weight"), "bias": self.take(f"{name}.bias")}

    def split_linear(self, weight: str, bias: str, names: tuple[str, ...]) -> dict:
        """A fused (q, k, v) projection split into our three Linears."""
        wt, bs = self.take(weight), self.take(bias)
        n = wt.shape[0] // len(names)
        return {
            name: {"kernel": wt[j * n : (j + 1) * n].T, "bias": bs[j * n : (j + 1) * n]}
            for j, name in enumerate(names)
        }

    def mlp(self, fc1: str, fc2: str) -> dict:
        return {"fc1": self.linear(fc1), "fc2": self.linear(fc2)}

    def pool(self, name: str) -> dict:
        attn = self.split_linear(
            f"{name}.self_attn.in_proj_weight", f"{name}.self_attn.in_proj_bias", ("q", "k", "v")
        )
        attn["out"] = self.linear(f"{name}.self_attn.out_proj")
        return {
            "cls": self.take(f"{name}.cls_token")[0],
            "block": {
                "ln1": self.norm(f"{name}.norm1"),
                "attn": attn,
                "ln2": self.norm(f"{name}.norm2"),
                "mlp": self.mlp(f"{name}.linear1", f"{name}.linear2"),
            },
        }


def _video(r: _Reader, c: SynchformerConfig) -> dict:
    blocks = {}
    for i in range(c.video.depth):
        b = f"{V}blocks.{i}"
        attn = {}
        for ours, theirs in (("time_attn", "timeattn"), ("space_attn", "attn")):
            attn[ours] = r.split_linear(f"{b}.{theirs}.qkv.weight", f"{b}.{theirs}.qkv.bias", ("q", "k", "v"))
            attn[ours]["out"] = r.linear(f"{b}.{theirs}.proj")
        blocks[i] = {
            "norm3": r.norm(f"{b}.norm3"),
            "norm1": r.norm(f"{b}.norm1"),
            "norm2": r.norm(f"{b}.norm2"),
            "mlp": r.mlp(f"{b}.mlp.fc1", f"{b}.mlp.fc2"),
            **attn,
        }
    return {
        # (out, 3, kt, kh, kw) -> (kt, kh, kw, 3, out)
        "patch_embed": {
            "kernel": r.take(f"{V}patch_embed_3d.proj.weight").transpose(2, 3, 4, 1, 0),
            "bias": r.take(f"{V}patch_embed_3d.proj.bias"),
        },
        "cls": r.take(f"{V}cls_token")[0],
        "pos": r.take(f"{V}pos_embed")[0],
        "time_pos": r.take(f"{V}temp_embed")[0],
        "blocks": blocks,
        "norm": r.norm(f"{V}norm"),
        "space_pool": r.pool(f"{V}spatial_attn_agg"),
    }


def _audio(r: _Reader, c: SynchformerConfig) -> dict:
    e = f"{A}ast.embeddings."
    blocks = {}
    for i in range(c.audio.depth):
        b = f"{A}ast.encoder.layer.{i}"
        attn = {
            n: r.linear(f"{b}.attention.attention.{t}")
            for n, t in (("q", "query"), ("k", "key"), ("v", "value"))
        }
        attn["out"] = r.linear(f"{b}.attention.output.dense")
        blocks[i] = {
            "ln1": r.norm(f"{b}.layernorm_before"),
            "attn": attn,
            "ln2": r.norm(f"{b}.layernorm_after"),
            "mlp": r.mlp(f"{b}.intermediate.dense", f"{b}.output.dense"),
        }
    ast = {
        # (out, 1, kf, kt) -> (kf, kt, 1, out): frequency is the image's height, as in the reference
        "patch_embed": {
            "kernel": r.take(f"{e}patch_embeddings.projection.weight").transpose(2, 3, 1, 0),
            "bias": r.take(f"{e}patch_embeddings.projection.bias"),
        },
        "cls": np.concatenate([r.take(f"{e}cls_token")[0], r.take(f"{e}distillation_token")[0]]),
        "pos": r.take(f"{e}position_embeddings")[0],
        "encoder": {"blocks": blocks},
        "norm": r.norm(f"{A}ast.layernorm"),
    }
    return {"ast": ast, "freq_pool": r.pool(f"{A}freq_attn_agg")}


def _offset(r: _Reader, c: SynchformerConfig) -> dict:
    blocks = {}
    for i in range(c.joint.depth):
        b = f"{T}blocks.{i}"
        attn = {
            n: r.linear(f"{b}.attn.{t}")
            for n, t in (("q", "query"), ("k", "key"), ("v", "value"), ("out", "proj"))
        }
        blocks[i] = {
            "ln1": r.norm(f"{b}.ln1"),
            "attn": attn,
            "ln2": r.norm(f"{b}.ln2"),
            "mlp": r.mlp(f"{b}.mlp.0", f"{b}.mlp.2"),
        }
    return {
        "video_proj": r.linear("vproj"),
        "audio_proj": r.linear("aproj"),
        "video_norm": r.norm(f"{T}vis_in_lnorm"),
        "audio_norm": r.norm(f"{T}aud_in_lnorm"),
        "off": r.take(f"{T}OFF_tok")[0],
        "mod": r.take(f"{T}MOD_tok")[0],
        "pos": r.take(f"{T}pos_emb_cfg.pos_emb")[0],
        "encoder": {"blocks": blocks},
        "norm": r.norm(f"{T}ln_f"),
        "head": r.linear(f"{T}off_head"),
    }


def params_from_weights(w: dict[str, np.ndarray], c: SynchformerConfig, src: str = "") -> dict:
    """Our parameter tree from the state dict; ConvertError for a misshapen or left-over tensor,
    KeyError for a missing one."""
    layout = key_layout(c)
    for key, shape in layout.items():
        if key in w and tuple(w[key].shape) != shape:
            raise ConvertError(
                f"--src {src!r}: {key} has shape {tuple(w[key].shape)}, not {shape}; expected {EXPECTED}."
            )
    r = _Reader({k: v for k, v in w.items() if k not in UNUSED})
    params = {"video": _video(r, c), "audio": _audio(r, c), "offset": _offset(r, c)}
    if r.w:
        extra = sorted(r.w)
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        raise ConvertError(
            f"--src {src!r}: unexpected tensors {', '.join(extra[:3])}{more}; expected {EXPECTED}."
        )
    return params


def convert(src: str, out: str, config: SynchformerConfig | None = None) -> SynchformerConfig:
    """Converts --src to a bundle at `out` (default: the released geometry; tests pass a small one)."""
    config = SynchformerConfig() if config is None else config

    def read(w):
        return params_from_weights(w, config, src)

    params = pth.read_mapped(src, EXPECTED, read)
    pth.save_checked(out, "synchformer", Synchformer, config, params, src)
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="Synchformer state dict, synchformer_state_dict.pth")
    parser.add_argument("--out", required=True, help="output bundle directory")


def main(args: argparse.Namespace) -> str:
    c = convert(args.src, args.out)
    return (
        f"Synchformer (video {c.video.depth} and audio {c.audio.depth} blocks, {c.video.width} wide; "
        f"{c.classes} offsets over ±{c.max_offset:g} s) -> {args.out}"
    )
