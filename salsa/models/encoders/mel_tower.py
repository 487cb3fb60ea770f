"""A small audio tower over log-mel spectrograms, a training aid for SigLIP text towers.

The tiny SigLIP stage learns captions against the clip's sound as well as its frames (CLAP-like), so that
the text tower keeps the words naming what only the sound reveals (the synthetic world's hidden
acoustics). `MelTower`: (batch, frames, mels) -> conv layers over time (mels as channels, each but the
first halving the frames) -> mean and max over time -> LayerNorm -> linear to the text embedding width,
with its own learned temperature and bias of the sigmoid loss. `SiglipWithAudio` holds the SigLIP towers
and the audio tower as one trained model; only its `siglip` part is exported.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.models.encoders.siglip2 import Siglip
from salsa.models.encoders.vit import l2_normalize
from salsa.models.layers import dense


@dataclasses.dataclass(frozen=True)
class MelTowerConfig:
    mels: int = 32  # input bands
    width: int = 64  # channels of every conv layer
    depth: int = 3  # conv layers
    kernel: int = 5  # conv kernel, in frames
    out: int = 64  # embedding width (the text tower's text_proj)


def _conv(c_in: int, c_out: int, kernel: int, stride: int, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(
        c_in,
        c_out,
        (kernel,),
        strides=(stride,),
        padding="SAME",
        kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, None, "embed")),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)),
        rngs=rngs,
    )


class MelTower(nnx.Module):
    def __init__(self, c: MelTowerConfig, rngs: nnx.Rngs):
        self.config = c
        chans = [c.mels] + [c.width] * c.depth
        self.convs = nnx.List(
            [_conv(chans[i], chans[i + 1], c.kernel, 1 if i == 0 else 2, rngs) for i in range(c.depth)]
        )
        self.norm = nnx.LayerNorm(2 * c.width, rngs=rngs)
        self.head = dense(2 * c.width, c.out, ("embed", None), rngs)
        # As the SigLIP pair's (Zhai et al. 2023): t = 10, b = -10; a task may set another bias.
        self.log_temperature = nnx.Param(jnp.full((), math.log(10.0)))
        self.bias = nnx.Param(jnp.full((), -10.0))

    def __call__(self, mel: jax.Array) -> jax.Array:
        """mel (batch, frames, mels) -> L2-normalised (batch, out)."""
        x = mel
        for conv in self.convs:
            x = jax.nn.gelu(conv(x))
        pooled = jnp.concatenate([x.mean(axis=1), x.max(axis=1)], axis=-1)
        return l2_normalize(self.head(self.norm(pooled)))


class SiglipWithAudio(nnx.Module):
    """The SigLIP towers (`siglip`) and an audio tower (`audio`) trained beside them; the exported model
    is `siglip` alone."""

    def __init__(self, siglip: Siglip, audio: MelTower):
        self.siglip = siglip
        self.audio = audio
