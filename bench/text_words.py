"""How far a pipeline's text tower moves a caption when the words naming its hidden acoustics are added.

    python -m bench.text_words [--pipeline=runs/tiny/generator/pipeline] [--clips=32]

The text experiment of salsa.evaluate asks whether "heard through a muffled microphone" changes the
generated sound. The generator can only answer if the text feature changes first. For the first `clips`
held-out clips (the evaluation's, in the checkpoint's training world) this embeds each caption without
and with its hidden-acoustics words (data_pipelines.synthetic.acoustics.captions) through the
checkpoint's SigLIP text tower, L2-normalised as the generator's MLP receives it, and compares the mean
distance between the two with the mean distance between different clips' captions. It does the same
for a tower of the same config with fresh random weights, which shows what training did to the words.

Prints one table; writes bench/results/text_words.json (--out).
"""

from __future__ import annotations

import numpy as np
from absl import app, flags
from flax import nnx

from data_pipelines.synthetic import acoustics
from data_pipelines.synthetic.heldout import hidden_settings
from salsa import io
from salsa.evaluation import generation
from salsa.inference import encoders
from salsa.inference import pipeline as pipeline_lib
from salsa.models.encoders.siglip2 import Siglip

_PIPELINE = flags.DEFINE_string("pipeline", "runs/tiny/generator/pipeline", "pipeline checkpoint")
_CLIPS = flags.DEFINE_integer("clips", 32, "held-out clips (the evaluation's default: 32)")
_OUT = flags.DEFINE_string("out", "bench/results/text_words.json", "JSON results")


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


def main(argv: list[str]) -> None:
    del argv
    p = pipeline_lib.load(_PIPELINE.value)
    world = hidden_settings(p.config.data.get("world"))
    if not world["hidden_acoustics"]:
        raise app.UsageError(f"{_PIPELINE.value}: its training world has no hidden acoustics to name")
    if p.tokenizer is None:
        raise app.UsageError(f"{_PIPELINE.value}: the checkpoint has no tokenizer.json")
    clips = generation.test_clips(p, "test", range(_CLIPS.value), float(p.config.window_s), world)
    pairs = [acoustics.captions(c.annotation) for c in clips]
    with nnx.use_eager_sharding(False):
        fresh = Siglip(p.siglip.config, rngs=nnx.Rngs(0))
    towers = {"trained": p.siglip, "untrained": fresh}
    rows = {name: distances(tower, p.tokenizer, pairs) for name, tower in towers.items()}
    print(f"{len(pairs)} test captions; mean L2 distance of normalised text embeddings")
    print("| tower | + hidden words | between clips | ratio |\n|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['words']:.4f} | {r['clips']:.4f} | {r['ratio']:.3f} |")
    io.write_json(_OUT.value, {"pipeline": _PIPELINE.value, "clips": len(pairs), "example": pairs[0], **rows})


if __name__ == "__main__":
    app.run(main)
