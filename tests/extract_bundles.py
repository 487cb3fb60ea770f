"""Random-weight component bundles of the tiny geometry, for testing extraction mechanics.

The weights are random (nothing is trained or downloaded): features are deterministic functions of the
clips with the right shapes and rates, which is all the extraction tests and the throughput benchmark need.
"""

from __future__ import annotations

import os

from salsa import bundle
from salsa.inference.codec import latent_stats
from salsa.models.encoders import siglip2
from salsa.models.encoders import sync as sync_lib
from salsa.models.vae import model as vae_lib
from salsa.models.vae.model import VAE

CAPTION_WORDS = (
    "a an the of on and with in glass metal rubber wood ball box cube bounces bounce hits hit floor wall "
    "ceiling rolls roll slides slide rain wind hum room quiet small large object objects against each other"
)


def tokenizer(path: str) -> str:
    """A word-level tokenizer.json (pad id 0) over the synthetic world's caption words, made offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<unk>": 1}
    for word in CAPTION_WORDS.split():
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(path)
    return path


def make(folder: str, seed: int = 0) -> dict[str, str]:
    """Writes vae/, siglip/, sync/ and tokenizer.json into `folder`; returns their paths by component."""
    from data_pipelines.synthetic.clip import make_clip
    from data_pipelines.synthetic.config import WorldConfig

    os.makedirs(folder, exist_ok=True)
    paths = {n: os.path.join(folder, n) for n in ("vae", "siglip", "sync")}
    config = vae_lib.preset("tiny", sample_rate=16000, audio_channels=1)  # configs/vae_tiny.py
    vae = bundle.build(VAE, config, seed=seed)
    world = WorldConfig(seconds=2.0, height=16, width=16, sample_rate=16000, channels=1)
    stats = latent_stats(vae, [make_clip(world, 99, i).audio for i in range(2)])
    bundle.save_vae(paths["vae"], config, bundle.params_of(vae), stats, meta={"weights": "random"})
    siglip_config = siglip2.variant("tiny")
    siglip = bundle.build(siglip2.Siglip, siglip_config, seed)
    bundle.save(paths["siglip"], "siglip2", siglip_config.to_dict(), bundle.params_of(siglip))
    sync_config = sync_lib.variant("tiny")
    sync = bundle.build(sync_lib.SyncModel, sync_config, seed)
    bundle.save(paths["sync"], "sync", sync_config.to_dict(), bundle.params_of(sync))
    paths["tokenizer"] = tokenizer(os.path.join(folder, "tokenizer.json"))
    return paths
