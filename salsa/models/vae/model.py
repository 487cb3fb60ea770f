"""The audio VAE (paper A.5): Oobleck encoder -> diagonal Gaussian bottleneck -> Oobleck decoder.

Presets:
  sao    Stable Audio Open's released geometry: strides 2,4,4,8,8 (hop 2048, 21.5 Hz at 44.1 kHz).
  sao43  the paper's 43 Hz variant: the first encoder block's downsampling and the last decoder block's
         upsampling become stride 1 (hop 1024, 43.07 Hz); every other layer keeps its shape, so it is
         initialised from converted `sao` weights (salsa.convert vae --sao43).
  tiny   a few thousand parameters' worth of channels that trains on the synthetic world on CPU.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.errors import UserError
from salsa.models.vae import oobleck


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    sample_rate: int = 44100
    audio_channels: int = 2
    latent_dim: int = 64
    encoder_channels: int = 128
    decoder_channels: int = 128
    multiples: tuple[int, ...] = (1, 2, 4, 8, 16)
    strides: tuple[int, ...] = (2, 4, 4, 8, 8)

    def __post_init__(self):
        if len(self.multiples) != len(self.strides):
            raise ValueError(
                f"VAE multiples {self.multiples} and strides {self.strides} must have the same length."
            )
        if self.audio_channels not in (1, 2):
            raise ValueError(f"VAE audio_channels must be 1 or 2, got {self.audio_channels}.")
        for s in self.strides:
            oobleck.resample_geometry(s)

    @property
    def hop(self) -> int:
        """Audio samples per latent frame."""
        return math.prod(self.strides)

    @property
    def latent_rate(self) -> float:
        return self.sample_rate / self.hop

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown VAE config fields {sorted(unknown)}; known: {sorted(known)}.")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


VARIANTS = {
    "sao": VAEConfig(),
    "sao43": VAEConfig(strides=(1, 4, 4, 8, 8)),
    "tiny": VAEConfig(
        latent_dim=16, encoder_channels=8, decoder_channels=8, multiples=(2, 4, 8, 8), strides=(2, 4, 4, 8)
    ),
}


def variant(name: str, **overrides) -> VAEConfig:
    """A named geometry, optionally with fields replaced (e.g. audio_channels=1 for mono)."""
    if name not in VARIANTS:
        raise UserError(f"unknown VAE variant {name!r}; known: {', '.join(VARIANTS)}.")
    return dataclasses.replace(VARIANTS[name], **overrides)


def gaussian(moments: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Encoder output (..., 2·D) -> (mean, std), std = softplus(scale) + 1e-4 (Stable Audio's)."""
    mean, scale = jnp.split(moments, 2, axis=-1)
    return mean, jax.nn.softplus(scale) + 1e-4


def kl_divergence(mean: jax.Array, std: jax.Array) -> jax.Array:
    """KL(N(mean, std²) || N(0, 1)) summed over channels, averaged over everything else."""
    var = std * std
    return jnp.mean(jnp.sum(mean * mean + var - jnp.log(var) - 1.0, axis=-1))


class VAE(nnx.Module):
    def __init__(self, config: VAEConfig, rngs: nnx.Rngs):
        self.config = config
        c = config
        self.encoder = oobleck.Encoder(
            c.audio_channels, c.encoder_channels, c.multiples, c.strides, 2 * c.latent_dim, rngs
        )
        self.decoder = oobleck.Decoder(
            c.latent_dim, c.decoder_channels, c.multiples, c.strides, c.audio_channels, rngs
        )

    def encode(self, audio: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(B, T·hop, audio_channels) -> mean, std, each (B, T, latent_dim)."""
        return gaussian(self.encoder(audio))

    def decode(self, latents: jax.Array) -> jax.Array:
        """(B, T, latent_dim) -> (B, T·hop, audio_channels)."""
        return self.decoder(latents)

    def __call__(self, audio: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Reconstruction of a sampled latent and the KL term; audio length a multiple of hop."""
        mean, std = self.encode(audio)
        z = mean + std * jax.random.normal(key, mean.shape, mean.dtype)
        return self.decode(z), kl_divergence(mean, std)


def receptive_radius(config: VAEConfig) -> tuple[int, int]:
    """(encoder, decoder) context in latent frames on each side beyond which an output frame cannot see.

    Counts every layer's one-sided reach in input samples (encoder) or latent frames (decoder), so that
    chunks overlapping by this much reproduce the whole-clip result (salsa.inference.codec).
    """
    res = 3 * (1 + 3 + 9)  # three residual units: kernel 7, dilations 1, 3, 9
    enc, scale = 3, 1  # first conv, kernel 7
    for s in config.strides:
        kernel, pad = oobleck.resample_geometry(s)
        enc += res * scale + max(pad, kernel - 1 - pad) * scale
        scale *= s
    enc += 1 * scale  # last conv, kernel 3
    dec, scale = 3.0, 1  # in latent frames; first conv kernel 7
    for s in reversed(config.strides):
        kernel, pad = oobleck.resample_geometry(s)
        dec += math.ceil(kernel / s) / scale
        scale *= s
        dec += res / scale
    dec += 3 / scale
    return math.ceil(enc / config.hop), math.ceil(dec)
