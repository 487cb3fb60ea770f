"""Random-weight bundles and pipeline checkpoints, for tests and benchmarks of the mechanics.

Random pipeline (`random_pipeline`): the generator of the config given (configs/generator.py's
`get_config("tiny")` in the tests), a word-level tokenizer.json built with `tokenizers`, and the component
bundles of a geometry: 'tiny', VAE variant 'tiny' at the config's rate and channels (hop 256, as
configs/vae_tiny.py), SigLIP and sync variant 'tiny'; or 'full', the paper's (sao43 VAE, SigLIP 2 So400m,
the base sync model) for the small and large generators. Weights are drawn with numpy at each
parameter's shape, every one non-zero, so outputs depend on every input; drawing them instead of running
the modules' initializers keeps this instant. Extraction bundles: the tiny geometry at 16 kHz mono
(configs/extract_tiny.py) from the modules' own initializers, with the VAE's latent statistics measured
on two synthetic clips; `extraction_configs("full")` names the paper's geometry, which bench/extract.py
builds at random weights to measure throughput. Nothing here is trained: the sound is meaningless, but
every shape, rate, window and splice is the real one, which is all the tests and the benchmarks need.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

import ml_collections
import numpy as np
from flax import nnx

from salsa import bundle
from salsa.inference import checkpoint
from salsa.models.encoders import siglip2 as siglip_lib
from salsa.models.encoders import sync as sync_lib
from salsa.models.generator.model import Generator, GeneratorConfig
from salsa.models.vae import model as vae_lib

PIPELINE_WORDS = ("rain", "on", "a", "tin", "roof", "glass", "wood", "metal", "bounce")
CAPTION_WORDS = (
    "a an the of on and with in glass metal rubber wood ball box cube bounces bounce hits hit floor wall "
    "ceiling rolls roll slides slide rain wind hum room quiet small large object objects against each other"
)


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


def word_tokenizer(path: str, words: Iterable[str]) -> str:
    """Writes a word-level tokenizer.json over `words` (pad id 0, <unk> 1, then the words in order, each
    once) to `path`, offline; returns `path`."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<unk>": 1}
    for word in words:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(path)
    return path


def random_components(root: str, config: ml_collections.ConfigDict, geometry: str = "tiny") -> dict[str, str]:
    """Writes random-weight VAE, SigLIP and sync bundles and a tokenizer under `root` for the generator
    `config`; returns their paths by component. `geometry` 'tiny': VAE variant tiny at the config's rate
    and channels, SigLIP and sync variant tiny; 'full': the paper's sao43 VAE, SigLIP 2 So400m and the
    base sync model (`extraction_configs("full")`, ~5.9 GB of float32 weights, SigLIP's 4.3), for
    configs/generator.py's small and large."""
    os.makedirs(root, exist_ok=True)
    vae_config, sig, syn = extraction_configs(geometry)
    if geometry == "tiny":
        vae_config = dataclasses.replace(
            vae_config, audio_channels=config.audio.channels, sample_rate=config.audio.sample_rate
        )
    stats = {
        "mean": np.zeros(vae_config.latent_dim, np.float32),
        "std": np.full(vae_config.latent_dim, 0.5, np.float32),
    }
    paths = {name: os.path.join(root, name) for name in ("vae", "siglip", "sync")}
    vae_params = random_params(vae_lib.VAE, vae_config, 1)
    vae_params["decoder"]["conv2"]["g"] *= (
        0.01  # the last layer: sound mostly in [-1, 1], as 16-bit files need
    )
    bundle.save_vae(paths["vae"], vae_config, vae_params, stats)
    bundle.save(paths["siglip"], "siglip2", sig.to_dict(), random_params(siglip_lib.Siglip, sig, 2))
    bundle.save(paths["sync"], "sync", syn.to_dict(), random_params(sync_lib.SyncModel, syn, 3))
    paths["tokenizer"] = word_tokenizer(os.path.join(root, "tokenizer.json"), PIPELINE_WORDS)
    return paths


def random_pipeline(
    root: str, config: ml_collections.ConfigDict, seed: int = 0, geometry: str = "tiny"
) -> str:
    """The component bundles of `geometry` (`random_components`) under `root` and a pipeline checkpoint
    of the generator `config` at root/ckpt (returned)."""
    parts = random_components(root, config, geometry)
    out = os.path.join(root, "ckpt")
    checkpoint.save(out, config, random_params(Generator, GeneratorConfig.from_config(config), seed), **parts)
    return out


def extraction_configs(size: str = "tiny") -> tuple:
    """(VAE, SigLIP, sync) configs of an extraction geometry: 'tiny' (configs/extract_tiny.py: VAE variant
    tiny at 16 kHz mono, SigLIP and sync variant tiny) or 'full' (configs/extract.py: the sao43 VAE of
    configs/vae_sao43.py at 44.1 kHz stereo, SigLIP 2 So400m, the sync model of configs/sync.py)."""
    if size == "tiny":
        vae = vae_lib.variant("tiny", sample_rate=16000, audio_channels=1)  # configs/vae_tiny.py
        return vae, siglip_lib.variant("tiny"), sync_lib.variant("tiny")
    if size == "full":
        return vae_lib.variant("sao43"), siglip_lib.variant("so400m"), sync_lib.variant("base")
    raise ValueError(f"extraction size {size!r} is not known; use 'tiny' or 'full'.")


def extraction_bundles(folder: str, seed: int = 0) -> dict[str, str]:
    """Writes vae/, siglip/, sync/ and tokenizer.json of the tiny extraction geometry into `folder`;
    returns their paths by component (the keys of an extraction config's `components`)."""
    from data_pipelines.synthetic.clip import make_clip
    from data_pipelines.synthetic.config import WorldConfig
    from salsa.inference.codec import latent_stats

    os.makedirs(folder, exist_ok=True)
    paths = {n: os.path.join(folder, n) for n in ("vae", "siglip", "sync")}
    config, siglip_config, sync_config = extraction_configs("tiny")
    vae = bundle.build(vae_lib.VAE, config, seed=seed)
    world = WorldConfig(seconds=2.0, height=16, width=16, sample_rate=16000, channels=1)
    stats = latent_stats(vae, [make_clip(world, 99, i).audio for i in range(2)])
    bundle.save_vae(paths["vae"], config, bundle.params_of(vae), stats, meta={"weights": "random"})
    siglip = bundle.build(siglip_lib.Siglip, siglip_config, seed)
    bundle.save(paths["siglip"], "siglip2", siglip_config.to_dict(), bundle.params_of(siglip))
    sync = bundle.build(sync_lib.SyncModel, sync_config, seed)
    bundle.save(paths["sync"], "sync", sync_config.to_dict(), bundle.params_of(sync))
    paths["tokenizer"] = word_tokenizer(os.path.join(folder, "tokenizer.json"), CAPTION_WORDS.split())
    return paths


FIELD_BUNDLES = ("passt", "panns", "vggish", "imagebind", "synchformer")


def field_bundles(
    folder: str, small: bool = True, seed: int = 0, names: Iterable[str] = FIELD_BUNDLES
) -> dict[str, str]:
    """Random-weight PaSST, PANNs CNN14 (16 kHz), VGGish, ImageBind and Synchformer bundles (those of
    `names`) under folder/passt, /panns, /vggish, /imagebind, /synchformer, the layout `python -m
    salsa.evaluate --weights folder` reads; returns their paths by name. `small`: a 1-block, 32-wide
    PaSST of 2 s clips with 16 classes, a VGGish of 32 hidden units, an ImageBind of 1-block, 32-wide
    towers on 32 x 32 images with 16-d embeddings and a Synchformer of 1-block, 32-wide parts on 32 x 32
    frames (synchformer.tiny(): the protocol's segments, windows and 21 classes); CNN14's widths are
    fixed, its 16 kHz preset is used either way. Otherwise the protocol's shapes (ImageBind's two towers
    alone are 2.9 GB then, Synchformer 0.9 GB)."""
    from salsa.models.encoders.vit import VitConfig
    from salsa.models.evaluators.imagebind import ImageBind, ImageBindConfig
    from salsa.models.evaluators.panns import PRESETS, Cnn14
    from salsa.models.evaluators.passt import Passt, PasstConfig
    from salsa.models.evaluators.synchformer import Synchformer, SynchformerConfig, tiny
    from salsa.models.evaluators.vggish import Vggish, VggishConfig

    vit = VitConfig(width=32, depth=1, mlp_dim=64, heads=2, eps=1e-6, gelu_approximate=False)
    configs = {
        "passt": (
            Passt,
            PasstConfig(vit=vit, max_frames=198, clip_seconds=2.0, classes=16) if small else PasstConfig(),
        ),
        "panns": (Cnn14, PRESETS["16k"]),
        "vggish": (Vggish, VggishConfig(hidden=32) if small else VggishConfig()),
        "imagebind": (
            ImageBind,
            ImageBindConfig(vision=vit, audio=vit, out_dim=16, image_size=32, patch=16)
            if small
            else ImageBindConfig(),
        ),
        "synchformer": (Synchformer, tiny() if small else SynchformerConfig()),
    }
    names = tuple(names)
    unknown = set(names) - set(configs)
    if unknown:
        raise ValueError(f"names {sorted(unknown)}: no such field bundle; choose from {FIELD_BUNDLES}.")
    paths = {}
    for i, (name, (cls, config)) in enumerate(configs.items()):
        if name not in names:
            continue
        paths[name] = os.path.join(folder, name)
        params = random_params(cls, config, seed + i)
        if name == "panns":
            _live_cnn14(params, np.random.default_rng(seed))
        meta = {"source": "random weights (salsa.testing.field_bundles)", "sha256": None}
        bundle.save(paths[name], name, config.to_dict(), params, meta=meta)
    return paths


def _live_cnn14(params: dict, rng: np.random.Generator) -> None:
    """Random CNN14 weights whose outputs depend on the input: BatchNorm statistics of the right sign and
    scale (bn0's like real dB levels), He-scaled kernels through the ReLUs."""

    def walk(tree: dict, name: str) -> None:
        if "var" in tree:
            n = tree["var"].shape[0]
            first = name == "norm0"
            tree["mean"] = (
                -40 + 10 * rng.standard_normal(n) if first else 0.1 * rng.standard_normal(n)
            ).astype(np.float32)
            tree["var"] = ((400.0 if first else 1.0) * (0.5 + rng.random(n))).astype(np.float32)
            return
        for k, v in tree.items():
            if isinstance(v, dict):
                walk(v, str(k))
            elif k == "kernel":
                tree[k] = v * np.float32(np.sqrt(2.0))

    walk(params, "")
