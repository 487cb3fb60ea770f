"""The generator's three conditioning signals from trained/converted encoders, for clips of any length.

    semantic(siglip, frames at 8 fps (T8, H, W, 3) uint8)  -> (T8, width)    SigLIP image embedding per frame
    text(siglip, token ids (N, text_len))                   -> (N, text_proj) SigLIP text embeddings
    sync(sync_model, frames at 24 fps (T24, H, W, 3) uint8)  -> (T24, width)   continuous sync features

Frames are encoded in fixed-size batches (salsa.inference.windows) so one compiled function serves every
length; on a model replicated over several devices (salsa.inference.placement) each batch is split
across them.

`dtype` is the encoders' compute dtype (a config's `features.encoder_dtype`, `compute_dtype(config)`):
"float32", or "bfloat16" on TPU/GPU, where every layer casts its weights and input to it inside the
compiled function (the weights stay float32 in memory), every matmul runs in it and the features come
back float32. Extraction and inference read the same config field, so a generator is trained on
features made as they will be at inference.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from salsa import io
from salsa.errors import UserError
from salsa.inference import placement, windows
from salsa.inference.module_jit import module_jit
from salsa.models.encoders.siglip2 import Siglip, preprocess, preprocess_naflex
from salsa.models.encoders.sync import SyncModel

DTYPES = ("float32", "bfloat16")


def compute_dtype(config) -> str:
    """A generator or extraction config's encoder compute dtype (`features.encoder_dtype`; float32 for
    configs and extractions from before the field)."""
    dtype = config.features.get("encoder_dtype", "float32")
    if dtype not in DTYPES:
        raise UserError(f"features.encoder_dtype is {dtype!r}; it must be one of {', '.join(DTYPES)}.")
    return dtype


def computing_in(model, dtype: str):
    """A copy of `model` whose layers compute in `dtype`: each layer with a compute dtype (Linear, Conv,
    Embed, LayerNorm) casts its float32 weights and its input to it, as the generator's layers do with
    `model.dtype`; LayerNorm keeps float32 statistics. For use inside a jitted function."""
    if dtype == "float32":
        return model
    copy = nnx.merge(*nnx.split(model))
    for _, layer in nnx.iter_modules(copy):
        if hasattr(layer, "dtype"):
            layer.dtype = jnp.dtype(dtype)
    return copy


@module_jit(static_argnums=(2, 3, 4))
def _image_chunk(
    model: Siglip, frames: jax.Array, size: int, max_patches: int | None, dtype: str
) -> jax.Array:
    if max_patches:
        x = preprocess_naflex(frames, model.config.patch, max_patches)
    else:
        x = preprocess(frames, size)
    return computing_in(model, dtype).image(x)[0].astype(jnp.float32)


def semantic(
    model: Siglip, frames: np.ndarray, chunk: int = 32, max_patches: int | None = None, dtype: str = "float32"
) -> np.ndarray:
    """SigLIP image embeddings (un-normalised MAP-head outputs, as the paper's v_s) of each frame.

    Frames are resized square to the model's image_size; `max_patches` (NaFlex checkpoints, e.g. 256)
    keeps their aspect ratio instead (`siglip2.preprocess_naflex`)."""
    out, size = [], model.config.image_size
    for part, count in windows.batches(frames, chunk):
        feats = _image_chunk(model, placement.place(part, model), size, max_patches, dtype)
        out.append(np.asarray(feats)[:count])
    return np.concatenate(out) if out else np.zeros((0, model.config.image.width), np.float32)


@module_jit(static_argnums=2)
def _text(model: Siglip, tokens: jax.Array, dtype: str) -> jax.Array:
    return computing_in(model, dtype).text(tokens).astype(jnp.float32)


def text(model: Siglip, tokens: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """(N, text_len) token ids (see `tokenize`) -> (N, text_proj) text features."""
    return np.asarray(_text(model, placement.place(tokens, model), dtype))


def tokenizer_from(path: str):
    """The `tokenizers.Tokenizer` in the tokenizer.json at `path` (a local path or a URL)."""
    from tokenizers import Tokenizer

    with io.open_file(path) as f:
        return Tokenizer.from_str(f.read())


def tokenize(tokenizer_file: str, texts: list[str], length: int) -> np.ndarray:
    """Token ids (N, length) from the user's `tokenizer.json` (Hugging Face `tokenizers` format): cut or
    padded with the tokenizer's pad token (id 0 if it names none), as SigLIP was trained."""
    tok = tokenizer_from(tokenizer_file)
    pad = tok.padding["pad_id"] if tok.padding else (tok.token_to_id("<pad>") or 0)
    ids = np.full((len(texts), length), pad, np.int32)
    for i, t in enumerate(texts):
        e = tok.encode(t).ids[:length]
        ids[i, : len(e)] = e
    return ids


@module_jit(static_argnums=2)
def _sync_windows(model: SyncModel, windows: jax.Array, dtype: str) -> jax.Array:
    video = windows.astype(jnp.float32) / 255.0
    return computing_in(model, dtype).video_features(video).astype(jnp.float32)


def sync(
    model: SyncModel, frames: np.ndarray, hop: int = 8, chunk: int = 8, dtype: str = "float32"
) -> np.ndarray:
    """(T24, H, W, 3) uint8 at 24 fps -> (T24, width): overlapping snippet windows (hop frames apart),
    each frame's feature the mean over the windows that contain it, so the sequence is continuous.
    Clips shorter than one snippet are padded with their last frame and cut back."""
    win = model.config.snippet_frames
    n = frames.shape[0]
    if n == 0:
        raise ValueError("sync features need at least one frame.")
    if n < win:
        frames = np.concatenate([frames, np.repeat(frames[-1:], win - n, axis=0)])
    total = np.zeros((frames.shape[0], model.config.video.spatial.width), np.float32)
    count = np.zeros((frames.shape[0], 1), np.float32)
    starts = np.asarray(windows.starts(frames.shape[0], win, hop))
    for group, real in windows.batches(starts, chunk):
        batch = placement.place(np.stack([frames[s : s + win] for s in group]), model)
        feats = np.asarray(_sync_windows(model, batch, dtype))
        for s, f in zip(group[:real], feats[:real], strict=True):
            total[s : s + win] += f
            count[s : s + win] += 1
    return (total / count)[:n]
