"""One decoded clip -> one feature record (data_pipelines/features/records.py): the four encoders.

Each encoder works in fixed-size windows (salsa.inference.windows, through salsa.inference.encoders and
salsa.inference.codec), so memory is bounded by the clip's decoded frames and audio and every chunk
size compiles once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from data_pipelines.extract.components import Components
from data_pipelines.extract.sources import Media
from salsa.inference import codec as vae_codec
from salsa.inference import encoders


def record(
    components: Components, media: Media, clip_id: str, duration: float, chunks: Any, dtype: str = "float32"
) -> dict:
    """The record of a trimmed clip (see sources.trim): normalised VAE latents, SigLIP semantic frames,
    sync frames (neither for audio without video), and the caption's SigLIP text embedding when there are
    a caption and a tokenizer; the encoders compute in `dtype` (salsa.inference.encoders)."""
    latents = vae_codec.encode(components.vae, media.audio, int(chunks.vae_frames))
    out = {
        "id": clip_id,
        "duration": float(duration),
        "latents": vae_codec.normalize(latents, components.stats).astype(np.float32),
        "caption": media.caption,
    }
    if media.frames8 is not None:
        out["semantic"] = encoders.semantic(
            components.siglip, media.frames8, int(chunks.semantic), dtype=dtype
        )
        out["sync"] = encoders.sync(
            components.sync, media.frames24, int(chunks.sync_hop), int(chunks.sync), dtype
        )
    if media.caption and components.tokenizer is not None:
        tokens = encoders.tokenize(components.tokenizer, [media.caption], components.siglip.config.text_len)
        out["text"] = encoders.text(components.siglip, tokens, dtype)[0].astype(np.float32)
    return out
