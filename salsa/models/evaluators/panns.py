"""PANNs CNN14 (Kong et al. 2020) in Flax NNX: the AudioSet tagger whose 2048-d embedding and 527
logits the field's FD, KL and IS use.

waveform -> log-mel in dB (panns_frontend.py) -> BatchNorm over the mel bins -> six blocks of two
3x3 conv + BatchNorm + ReLU (64 ... 2048 channels), 2x2 average pooling after the first five -> mean
over frequency -> max + mean over time -> fc1 + ReLU (the embedding) -> fc_audioset (the logits; the
released model's clipwise output is their sigmoid). Inference only: every BatchNorm holds its running
statistics as parameters, so a bundle carries them. Layout is (batch, time, mel, channels).

Two released front ends share these weights' shapes: 32 kHz (1024-point FFT, hop 320, 50-14000 Hz;
CNN14 as published) and 16 kHz (512-point FFT, hop 160, 50-8000 Hz; the "Cnn14_16k" file, which the
av-benchmark protocol uses). `PRESETS` names both.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.models.evaluators import panns_frontend

HIGHEST = jax.lax.Precision.HIGHEST  # metrics must not depend on the accelerator's default matmul precision
CHANNELS = (64, 128, 256, 512, 1024, 2048)


@dataclasses.dataclass(frozen=True)
class PannsConfig:
    sample_rate: int = 32000
    window: int = 1024  # FFT and window length, samples
    hop: int = 320
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    classes: int = 527
    eps: float = 1e-5  # BatchNorm's

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PannsConfig:
        return cls(**d)


PRESETS = {
    "32k": PannsConfig(),
    "16k": PannsConfig(sample_rate=16000, window=512, hop=160, fmax=8000.0),
}


class FrozenNorm(nnx.Module):
    """BatchNorm at inference over the last axis: (x - mean) / sqrt(var + eps) * scale + bias."""

    def __init__(self, n: int, eps: float):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((n,)))
        self.bias = nnx.Param(jnp.zeros((n,)))
        self.mean = nnx.Param(jnp.zeros((n,)))
        self.var = nnx.Param(jnp.ones((n,)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return (x - self.mean[...]) * jax.lax.rsqrt(self.var[...] + self.eps) * self.scale[...] + self.bias[
            ...
        ]


def _conv(cin: int, cout: int, rngs: nnx.Rngs) -> nnx.Conv:
    return nnx.Conv(cin, cout, (3, 3), padding=((1, 1), (1, 1)), use_bias=False, precision=HIGHEST, rngs=rngs)


def avg_pool(x: jax.Array, size: int) -> jax.Array:
    """Non-overlapping `size` x `size` average pooling over (time, mel), remainders dropped."""
    if size == 1:
        return x
    b, t, f, c = x.shape
    t, f = t // size, f // size
    return x[:, : t * size, : f * size].reshape(b, t, size, f, size, c).mean((2, 4))


class ConvBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, eps: float, rngs: nnx.Rngs):
        self.conv1 = _conv(cin, cout, rngs)
        self.norm1 = FrozenNorm(cout, eps)
        self.conv2 = _conv(cout, cout, rngs)
        self.norm2 = FrozenNorm(cout, eps)

    def __call__(self, x: jax.Array, pool: int) -> jax.Array:
        x = jax.nn.relu(self.norm1(self.conv1(x)))
        x = jax.nn.relu(self.norm2(self.conv2(x)))
        return avg_pool(x, pool)


class Cnn14(nnx.Module):
    def __init__(self, config: PannsConfig, rngs: nnx.Rngs):
        self.config = config
        self.norm0 = FrozenNorm(config.mel_bins, config.eps)
        ins = (1,) + CHANNELS[:-1]
        self.blocks = nnx.List(
            [ConvBlock(i, o, config.eps, rngs) for i, o in zip(ins, CHANNELS, strict=True)]
        )
        self.fc1 = nnx.Linear(CHANNELS[-1], CHANNELS[-1], precision=HIGHEST, rngs=rngs)
        self.fc_audioset = nnx.Linear(CHANNELS[-1], config.classes, precision=HIGHEST, rngs=rngs)

    def log_mel(self, audio: jax.Array) -> jax.Array:
        """(batch, samples) at config.sample_rate -> (batch, frames, mel_bins) in dB."""
        c = self.config
        return panns_frontend.log_mel(audio, c.sample_rate, c.window, c.hop, c.mel_bins, c.fmin, c.fmax)

    def from_log_mel(self, mel: jax.Array) -> dict[str, jax.Array]:
        """(batch, frames, mel_bins) in dB -> {"embedding": (batch, 2048), "logits": (batch, classes)};
        at least 32 frames (five 2x2 poolings)."""
        need = 2 ** (len(self.blocks) - 1)
        if mel.shape[-2] < need:
            seconds = need * self.config.hop / self.config.sample_rate
            raise ValueError(
                f"{mel.shape[-2]} log-mel frames are too few for CNN14: it needs {need} ({seconds:.2f} s)."
            )
        x = self.norm0(mel)[..., None]
        for i, block in enumerate(self.blocks):
            x = block(x, pool=2 if i < len(self.blocks) - 1 else 1)
        x = x.mean(axis=2)  # over mel: (batch, time, 2048)
        x = x.max(axis=1) + x.mean(axis=1)
        embedding = jax.nn.relu(self.fc1(x))
        return {"embedding": embedding, "logits": self.fc_audioset(embedding)}

    def __call__(self, audio: jax.Array) -> dict[str, jax.Array]:
        """(batch, samples) waveform at config.sample_rate -> {"embedding": (batch, 2048), "logits":
        (batch, classes)}; the released clipwise probabilities are sigmoid(logits)."""
        return self.from_log_mel(self.log_mel(audio))
