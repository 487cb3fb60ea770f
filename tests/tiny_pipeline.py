"""A tiny pipeline checkpoint from random-weight components, for tests of generation mechanics.

Generator: configs/tiny.py; VAE preset 'tiny' (16 kHz mono, hop 256, as configs/vae_tiny.py); SigLIP
and sync variant 'tiny'; a word-level tokenizer.json built with `tokenizers`. Weights are random
(drawn with numpy at each parameter's shape, every one non-zero, so outputs depend on every input):
nothing here is trained and the audio is meaningless as sound, but every shape, rate, window and
splice is the real one. Drawing with numpy instead of the modules' initializers keeps this instant.
"""

from __future__ import annotations

import os

import numpy as np
from flax import nnx

from configs.tiny import generator_config
from salsa import bundle
from salsa.inference import checkpoint
from salsa.models.encoders import siglip2 as siglip_lib
from salsa.models.encoders import sync as sync_lib
from salsa.models.generator.model import Generator
from salsa.models.vae.model import VAE, preset

WORDS = ["<pad>", "<unk>", "rain", "on", "a", "tin", "roof", "glass", "wood", "metal", "bounce"]


def random_params(cls, config, seed: int) -> dict:
    """Parameters for `cls(config)`: kernels N(0, 1/fan_in), scales/gains near 1, the rest near 0."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: cls(config, nnx.Rngs(0)))
    rng = np.random.default_rng(seed)

    def draw(tree):
        out = {}
        for k, v in tree.items():
            if isinstance(v, dict):
                out[k] = draw(v)
                continue
            shape = tuple(v.shape)
            x = rng.standard_normal(shape).astype(np.float32)
            if len(shape) >= 2:
                x /= np.sqrt(np.prod(shape[:-1]))
            elif k in ("scale", "g"):
                x = 1.0 + 0.05 * x
            else:
                x = 0.05 * x
            out[k] = x
        return out

    return draw(nnx.state(abstract, nnx.Param).to_pure_dict())


def tokenizer_file(path: str) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(path)
    return path


def components(root: str, config=None) -> dict[str, str]:
    """Writes the VAE, SigLIP and sync bundles and a tokenizer under `root`; returns their paths."""
    config = config or generator_config()
    os.makedirs(root, exist_ok=True)
    vae_config = preset("tiny", audio_channels=config.audio.channels, sample_rate=config.audio.sample_rate)
    stats = {
        "mean": np.zeros(vae_config.latent_dim, np.float32),
        "std": np.full(vae_config.latent_dim, 0.5, np.float32),
    }
    paths = {name: os.path.join(root, name) for name in ("vae", "siglip", "sync")}
    vae_params = random_params(VAE, vae_config, 1)
    vae_params["decoder"]["conv2"]["g"] *= (
        0.01  # the last layer: sound mostly within [-1, 1], as 16-bit files need
    )
    bundle.save_vae(paths["vae"], vae_config, vae_params, stats)
    sig = siglip_lib.variant("tiny")
    bundle.save(paths["siglip"], "siglip2", sig.to_dict(), random_params(siglip_lib.Siglip, sig, 2))
    syn = sync_lib.variant("tiny")
    bundle.save(paths["sync"], "sync", syn.to_dict(), random_params(sync_lib.SyncModel, syn, 3))
    paths["tokenizer"] = tokenizer_file(os.path.join(root, "tokenizer.json"))
    return paths


def build(root: str, config=None, seed: int = 0) -> str:
    """The component bundles under `root` and the pipeline checkpoint at root/ckpt (returned)."""
    config = config or generator_config()
    parts = components(root, config)
    out = os.path.join(root, "ckpt")
    checkpoint.save(out, config, random_params(Generator, config, seed), **parts)
    return out
