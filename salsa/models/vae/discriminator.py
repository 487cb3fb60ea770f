"""Multi-scale STFT discriminator (EnCodec's, used by Stable Audio): one 2-D conv net per STFT
resolution over (frames, frequency) with real and imaginary parts of every audio channel as inputs."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.objectives.stft_losses import stft

NAMES = ("conv_kernel", "conv_kernel", "conv_in", "conv_out")


def _conv(c_in, c_out, kernel, rngs, stride=(1, 1), dilation=(1, 1)) -> nnx.Conv:
    pad = [((k - 1) * d // 2, (k - 1) * d // 2) for k, d in zip(kernel, dilation, strict=True)]
    return nnx.Conv(
        c_in,
        c_out,
        kernel,
        strides=stride,
        padding=pad,
        kernel_dilation=dilation,
        kernel_init=nnx.with_partitioning(nnx.initializers.lecun_normal(), NAMES),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("conv_out",)),
        rngs=rngs,
    )


class STFTDiscriminator(nnx.Module):
    """(B, samples, C) -> logits (B, frames', freq') and the feature maps of every layer."""

    def __init__(self, n_fft: int, audio_channels: int, filters: int, rngs: nnx.Rngs):
        self.n_fft = n_fft
        dilations = (1, 2, 4)
        self.convs = nnx.List(
            [_conv(2 * audio_channels, filters, (3, 9), rngs)]
            + [_conv(filters, filters, (3, 9), rngs, stride=(1, 2), dilation=(d, 1)) for d in dilations]
            + [_conv(filters, filters, (3, 3), rngs)]
        )
        self.out = _conv(filters, 1, (3, 3), rngs)

    def __call__(self, audio: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        spec = stft(audio, self.n_fft, self.n_fft // 4)  # (B, C, frames, freq)
        x = jnp.concatenate([spec.real, spec.imag], axis=1)
        x = jnp.moveaxis(x, 1, -1)  # channels last: (B, frames, freq, 2C)
        features = []
        for conv in self.convs:
            x = jax.nn.leaky_relu(conv(x), 0.2)
            features.append(x)
        return self.out(x)[..., 0], features


class MultiScaleSTFTDiscriminator(nnx.Module):
    def __init__(self, n_ffts: Sequence[int], audio_channels: int, filters: int, rngs: nnx.Rngs):
        self.discriminators = nnx.List([STFTDiscriminator(n, audio_channels, filters, rngs) for n in n_ffts])

    def __call__(self, audio: jax.Array) -> tuple[list[jax.Array], list[list[jax.Array]]]:
        """Per resolution: logits and feature maps."""
        outs = [d(audio) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]
