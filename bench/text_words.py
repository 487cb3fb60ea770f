"""How far a pipeline's text tower moves a caption when the words naming its hidden acoustics are added.

    python -m bench.text_words [--pipeline=runs/tiny/generator/pipeline] [--clips=32]
    python -m bench.text_words --siglip=runs/tiny/siglip/export [--clips=32]

The text experiment of salsa.evaluate asks whether "heard through a muffled microphone" changes the
generated sound. The generator can only answer if the text feature changes first. For the first `clips`
held-out clips (the evaluation's, in the checkpoint's training world) this embeds each caption without
and with its hidden-acoustics words (data_pipelines.synthetic.acoustics.captions) through the
checkpoint's SigLIP text tower, L2-normalised as the generator's MLP receives it, and compares the mean
distance between the two with the mean distance between different clips' captions. It does the same
for a tower of the same config with fresh random weights, which shows what training did to the words.

--siglip reads a SigLIP stage's export (bundle + tokenizer.json) instead of a pipeline; the world's
settings come from the stage's config.json beside it (DIR/../config.json, written by salsa.train), and
the clips are the test split's, rendered in that world.

Prints one table; writes bench/results/text_words.json (--out).
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import app, flags
from flax import nnx

from data_pipelines.synthetic import WorldConfig, acoustics, make_clip
from data_pipelines.synthetic.heldout import world_seed
from salsa import bundle, io
from salsa.evaluation import generation
from salsa.inference import encoders
from salsa.inference import pipeline as pipeline_lib
from salsa.models.encoders.siglip2 import Siglip, SiglipConfig


def distances(tower: Siglip, tokenizer: str, pairs: list[tuple[str, str]]) -> dict[str, float]:
    """Mean L2 distance between the normalised embeddings of each caption without and with its hidden
    words ("words"), and between the plain captions of different clips ("clips")."""

    def embed(texts: list[str]) -> np.ndarray:
        e = encoders.text(tower, encoders.tokenize(tokenizer, texts, tower.config.text_len))
        return e / np.linalg.norm(e, axis=-1, keepdims=True)

    plain, worded = embed([a for a, _ in pairs]), embed([b for _, b in pairs])
    between = np.linalg.norm(plain[:, None] - plain[None], axis=-1)[~np.eye(len(pairs), dtype=bool)]
    words = float(np.linalg.norm(plain - worded, axis=-1).mean())
    return {"words": words, "clips": float(between.mean()), "ratio": words / float(between.mean())}


def from_pipeline(path: str, clips: int) -> tuple[Siglip, str, list[dict]]:
    """(text tower, tokenizer.json, annotations of the evaluation's first `clips` test clips)."""
    p = pipeline_lib.load(path)
    if not generation.checkpoint_world(p)["hidden_acoustics"]:
        raise app.UsageError(f"{path}: its training world has no hidden acoustics to name")
    if p.tokenizer is None:
        raise app.UsageError(f"{path}: the checkpoint has no tokenizer.json")
    test = generation.held_out(p, clips)
    return p.siglip, p.tokenizer, [c.annotation for c in test]


def from_siglip(path: str, clips: int) -> tuple[Siglip, str, list[dict]]:
    """(text tower, tokenizer.json, annotations of the first `clips` test clips of the stage's world)."""
    tokenizer, config = os.path.join(path, "tokenizer.json"), os.path.join(path, os.pardir, "config.json")
    for f in (tokenizer, config):
        if not os.path.isfile(f):
            raise app.UsageError(f"{path}: no {os.path.normpath(f)} (a SigLIP stage's export and config)")
    with open(config) as f:
        world = json.load(f)["data"]["world"]
    if not world.get("hidden_acoustics"):
        raise app.UsageError(f"{path}: its training world has no hidden acoustics to name")
    tower = bundle.from_bundle(path, "siglip2", Siglip, SiglipConfig)
    w = WorldConfig(**world)
    return tower, tokenizer, [make_clip(w, world_seed("test"), i).annotation for i in range(clips)]


def main(argv: list[str]) -> None:
    del argv
    source = _SIGLIP.value or _PIPELINE.value
    load = from_siglip if _SIGLIP.value else from_pipeline
    trained, tokenizer, annotations = load(source, _CLIPS.value)
    pairs = [acoustics.captions(a) for a in annotations]
    with nnx.use_eager_sharding(False):
        fresh = Siglip(trained.config, rngs=nnx.Rngs(0))
    towers = {"trained": trained, "untrained": fresh}
    rows = {name: distances(tower, tokenizer, pairs) for name, tower in towers.items()}
    print(f"{len(pairs)} test captions; mean L2 distance of normalised text embeddings")
    print("| tower | + hidden words | between clips | ratio |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['words']:.4f} | {r['clips']:.4f} | {r['ratio']:.3f} |")
    key = "siglip" if _SIGLIP.value else "pipeline"
    io.write_json(_OUT.value, {key: source, "clips": len(pairs), "example": pairs[0], **rows})


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _PIPELINE = flags.DEFINE_string("pipeline", "runs/tiny/generator/pipeline", "pipeline checkpoint")
    _SIGLIP = flags.DEFINE_string("siglip", None, "a SigLIP export folder, read instead of --pipeline")
    _CLIPS = flags.DEFINE_integer("clips", 32, "held-out clips (the evaluation's default: 32)")
    _OUT = flags.DEFINE_string("out", "bench/results/text_words.json", "JSON results")
    app.run(main)
