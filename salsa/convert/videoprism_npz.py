"""Released VideoPrism .npz (e.g. flax_base_f16r288_repeated.npz) <-> salsa VideoPrism params.

    python -m salsa.convert videoprism --src flax_base_f16r288_repeated.npz --out DIR

The layout implemented (a flat .npz, '/'-joined Flax paths, the layers of each encoder stacked along a
leading axis of length L because the model was built with a scanned `Repeat`):

    params/patch_projection/linear/{kernel (p*p*3, D), bias (D,)}
    params/spatial_pos_emb/emb_var (N, D)            params/temporal_pos_emb/emb_var (T, D)
    params/{spatial,temporal}_ln/{scale, bias} (D,)
    params/{spatial,temporal}_encoder/transformers_stack/x_layers/
        layer_norm/{scale, bias} (L, D)
        self_attention/{query,key,value}/w (L, D, H, D/H), .../b (L, H, D/H)
        self_attention/post/w (L, D, H, D/H), .../b (L, D)
        ff_layer/layer_norm/{scale, bias} (L, D)
        ff_layer/ffn_layer1/linear/{kernel (L, D, M), bias (L, M)}
        ff_layer/ffn_layer2/linear/{kernel (L, M, D), bias (L, D)}

LayerNorm scales are stored as (gain - 1) (praxis' direct_scale=False). This follows public ports of the
released file; it has not been checked against the file itself here (docs/encoders.md).
"""

from __future__ import annotations

import argparse
import os
import zipfile

import numpy as np

from salsa import bundle
from salsa.convert import ConvertError
from salsa.models.encoders.videoprism import VideoPrismConfig
from salsa.models.encoders.vit import VitConfig

_STACK = "transformers_stack/x_layers"


def _get(flat: dict[str, np.ndarray], key: str) -> np.ndarray:
    try:
        return np.asarray(flat[f"params/{key}"], np.float32)
    except KeyError:
        raise ConvertError(f"the .npz lacks 'params/{key}' (see salsa/convert/videoprism_npz.py)") from None


def _ln(flat, key):
    return {"scale": _get(flat, f"{key}/scale") + 1.0, "bias": _get(flat, f"{key}/bias")}


def _encoder(flat: dict[str, np.ndarray], name: str) -> tuple[dict, VitConfig]:
    p = f"{name}/{_STACK}"
    qw = _get(flat, f"{p}/self_attention/query/w")
    depth, d, heads, _ = qw.shape

    def proj(x):  # (L, D, H, Dh) -> per layer {"kernel": (D, H*Dh), "bias": (H*Dh,)}
        w, b = _get(flat, f"{p}/self_attention/{x}/w"), _get(flat, f"{p}/self_attention/{x}/b")
        return w.reshape(depth, d, -1), b.reshape(depth, -1)

    q, k, v = proj("query"), proj("key"), proj("value")
    post_w, post_b = _get(flat, f"{p}/self_attention/post/w"), _get(flat, f"{p}/self_attention/post/b")
    fc1_w, fc1_b = (
        _get(flat, f"{p}/ff_layer/ffn_layer1/linear/kernel"),
        _get(flat, f"{p}/ff_layer/ffn_layer1/linear/bias"),
    )
    fc2_w, fc2_b = (
        _get(flat, f"{p}/ff_layer/ffn_layer2/linear/kernel"),
        _get(flat, f"{p}/ff_layer/ffn_layer2/linear/bias"),
    )
    ln1, ln2 = _ln(flat, f"{p}/layer_norm"), _ln(flat, f"{p}/ff_layer/layer_norm")
    blocks = {}
    for i in range(depth):
        blocks[i] = {
            "ln1": {k_: v_[i] for k_, v_ in ln1.items()},
            "attn": {
                "q": {"kernel": q[0][i], "bias": q[1][i]},
                "k": {"kernel": k[0][i], "bias": k[1][i]},
                "v": {"kernel": v[0][i], "bias": v[1][i]},
                "out": {"kernel": post_w[i].reshape(d, -1).T, "bias": post_b[i]},
            },
            "ln2": {k_: v_[i] for k_, v_ in ln2.items()},
            "mlp": {
                "fc1": {"kernel": fc1_w[i], "bias": fc1_b[i]},
                "fc2": {"kernel": fc2_w[i], "bias": fc2_b[i]},
            },
        }
    return {"blocks": blocks}, VitConfig(width=d, depth=depth, mlp_dim=fc1_w.shape[-1], heads=heads)


def from_npz(flat: dict[str, np.ndarray]) -> tuple[VideoPrismConfig, dict]:
    """(config, params for salsa.models.encoders.videoprism.VideoPrism) from the released flat layout."""
    spatial, s_cfg = _encoder(flat, "spatial_encoder")
    temporal, t_cfg = _encoder(flat, "temporal_encoder")
    kernel = _get(flat, "patch_projection/linear/kernel")
    patch = int(round((kernel.shape[0] / 3) ** 0.5))
    spatial_pos, temporal_pos = _get(flat, "spatial_pos_emb/emb_var"), _get(flat, "temporal_pos_emb/emb_var")
    grid = int(round(spatial_pos.shape[0] ** 0.5))
    if patch * patch * 3 != kernel.shape[0] or grid * grid != spatial_pos.shape[0]:
        raise ConvertError(
            f"patch kernel {kernel.shape} / spatial positions {spatial_pos.shape} are not square."
        )
    config = VideoPrismConfig(
        spatial=s_cfg, temporal=t_cfg, patch=patch, image_size=grid * patch, num_frames=temporal_pos.shape[0]
    )
    params = {
        "patch_embed": {"kernel": kernel, "bias": _get(flat, "patch_projection/linear/bias")},
        "spatial_pos": spatial_pos,
        "spatial": spatial,
        "spatial_norm": _ln(flat, "spatial_ln"),
        "temporal_pos": temporal_pos,
        "temporal": temporal,
        "temporal_norm": _ln(flat, "temporal_ln"),
    }
    return config, params


def to_npz(config: VideoPrismConfig, params: dict) -> dict[str, np.ndarray]:
    """The inverse of `from_npz`: our params in the released flat layout (for tests and exports)."""
    out: dict[str, np.ndarray] = {}

    def put(key, value):
        out[f"params/{key}"] = np.asarray(value, np.float32)

    def ln(key, p):
        put(f"{key}/scale", np.asarray(p["scale"]) - 1.0)
        put(f"{key}/bias", p["bias"])

    put("patch_projection/linear/kernel", params["patch_embed"]["kernel"])
    put("patch_projection/linear/bias", params["patch_embed"]["bias"])
    put("spatial_pos_emb/emb_var", params["spatial_pos"])
    put("temporal_pos_emb/emb_var", params["temporal_pos"])
    ln("spatial_ln", params["spatial_norm"])
    ln("temporal_ln", params["temporal_norm"])
    for name, vit in (("spatial", config.spatial), ("temporal", config.temporal)):
        blocks = [params[name]["blocks"][i] for i in range(vit.depth)]
        p = f"{name}_encoder/{_STACK}"
        d, h = vit.width, vit.heads

        def stack(f, blocks=blocks):
            return np.stack([np.asarray(f(b)) for b in blocks])

        ln(f"{p}/layer_norm", {k: stack(lambda b, k=k: b["ln1"][k]) for k in ("scale", "bias")})
        ln(f"{p}/ff_layer/layer_norm", {k: stack(lambda b, k=k: b["ln2"][k]) for k in ("scale", "bias")})
        for ours, theirs in (("q", "query"), ("k", "key"), ("v", "value")):
            put(
                f"{p}/self_attention/{theirs}/w",
                stack(lambda b, o=ours: b["attn"][o]["kernel"]).reshape(-1, d, h, d // h),
            )
            put(
                f"{p}/self_attention/{theirs}/b",
                stack(lambda b, o=ours: b["attn"][o]["bias"]).reshape(-1, h, d // h),
            )
        put(
            f"{p}/self_attention/post/w",
            stack(lambda b: np.asarray(b["attn"]["out"]["kernel"]).T).reshape(-1, d, h, d // h),
        )
        put(f"{p}/self_attention/post/b", stack(lambda b: b["attn"]["out"]["bias"]))
        for i in (1, 2):
            fc = f"fc{i}"
            put(f"{p}/ff_layer/ffn_layer{i}/linear/kernel", stack(lambda b, fc=fc: b["mlp"][fc]["kernel"]))
            put(f"{p}/ff_layer/ffn_layer{i}/linear/bias", stack(lambda b, fc=fc: b["mlp"][fc]["bias"]))
    return out


def load(path: str) -> tuple[VideoPrismConfig, dict]:
    """(config, params) from a released-layout .npz file."""
    if not os.path.isfile(path):
        raise ConvertError(f"--src {path!r} is not a file; expected a VideoPrism .npz checkpoint.")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ConvertError(f"--src {path}: not a readable .npz archive ({e}).") from None
    return from_npz(arrays)


def convert(src: str, out: str) -> VideoPrismConfig:
    config, params = load(src)
    bundle.save(out, "videoprism", config.to_dict(), params)
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="VideoPrism .npz in the released layout")
    parser.add_argument("--out", required=True, help="output bundle directory")


def main(args: argparse.Namespace) -> str:
    c = convert(args.src, args.out)
    return f"VideoPrism ({c.spatial.width} wide, {c.spatial.depth}+{c.temporal.depth} layers) -> {args.out}"
