"""VGGish (Hershey et al. 2017) in Flax NNX: the AudioSet VGG whose 128-d embedding of each 0.96 s
example the field's FD_VGG uses.

log-mel example (96 frames, 64 mels; vggish_frontend.py) -> VGG: 3x3 conv + ReLU with 64, 128, 256x2,
512x2 channels, 2x2 max pooling after the 1st, 2nd, 4th and 6th -> flatten (time, mel, channels) ->
4096 -> 4096 -> 128. Layout (examples, time, mel, channels).

Three readings of "the VGGish embedding", all from one forward pass:
- `__call__`: the last layer before its ReLU, what the av-benchmark protocol (after audioldm_eval) takes
  and concatenates over a clip's examples for FD;
- relu(that): the released VGGish's embedding (torchvggish with postprocess=False);
- `postprocess(relu(that), pca)`: the released AudioSet features, PCA-whitened, clipped to [-2, 2] and
  quantised to 0..255 (torchvggish's default); the PCA arrays come with the bundle when converted with
  --pca.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.models.evaluators import vggish_frontend

HIGHEST = jax.lax.Precision.HIGHEST
LAYERS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")  # "M": 2x2 max pooling
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0


@dataclasses.dataclass(frozen=True)
class VggishConfig:
    frames: int = vggish_frontend.EXAMPLE_FRAMES
    mel_bins: int = vggish_frontend.MEL_BINS
    hidden: int = 4096
    embedding: int = 128

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VggishConfig:
        return cls(**d)


def max_pool(x: jax.Array) -> jax.Array:
    b, t, f, c = x.shape
    return x[:, : t // 2 * 2, : f // 2 * 2].reshape(b, t // 2, 2, f // 2, 2, c).max((2, 4))


class Vggish(nnx.Module):
    def __init__(self, config: VggishConfig, rngs: nnx.Rngs):
        self.config = config
        convs, cin = [], 1
        for v in LAYERS:
            if v != "M":
                convs.append(nnx.Conv(cin, v, (3, 3), padding=((1, 1), (1, 1)), precision=HIGHEST, rngs=rngs))
                cin = v
        self.convs = nnx.List(convs)
        flat = (config.frames // 16) * (config.mel_bins // 16) * cin
        self.fc1 = nnx.Linear(flat, config.hidden, precision=HIGHEST, rngs=rngs)
        self.fc2 = nnx.Linear(config.hidden, config.hidden, precision=HIGHEST, rngs=rngs)
        self.fc3 = nnx.Linear(config.hidden, config.embedding, precision=HIGHEST, rngs=rngs)

    def __call__(self, examples: jax.Array) -> jax.Array:
        """(examples, 96, 64) log-mel -> (examples, 128), before the last ReLU."""
        x, convs = examples[..., None], iter(self.convs)
        for v in LAYERS:
            x = max_pool(x) if v == "M" else jax.nn.relu(next(convs)(x))
        x = x.reshape(x.shape[0], -1)
        return self.fc3(jax.nn.relu(self.fc2(jax.nn.relu(self.fc1(x)))))

    def embed(self, audio: jax.Array) -> jax.Array:
        """(batch, samples) at 16 kHz -> (batch, examples, 128) per 0.96 s example, before the last ReLU."""
        ex = vggish_frontend.examples(audio)
        return self(ex.reshape(-1, *ex.shape[-2:])).reshape(*ex.shape[:-2], -1)


def postprocess(embeddings: jax.Array, eigen_vectors: jax.Array, means: jax.Array) -> jax.Array:
    """The released AudioSet features from relu'd embeddings (..., 128): PCA whitening
    eigen_vectors @ (e - means), clipped to [-2, 2], quantised to the integers 0..255 (as float)."""
    pca = jnp.einsum("ij,...j->...i", eigen_vectors, embeddings - means, precision=HIGHEST)
    clipped = jnp.clip(pca, QUANTIZE_MIN, QUANTIZE_MAX)
    return jnp.round((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN)))
