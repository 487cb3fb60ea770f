"""How well the tiny sync model's video tower can place impacts when it is told where they are.

    python -m bench.sync_ceiling [--size=32] [--clips=1024] [--steps=1500] [--shutter=0.5] \
        [--overrides="{'video': {'patch': 8}, 'temporal_layers': 2}"] \
        [--compare=default=runs/tiny/sync/export]

The video tower of configs/sync_tiny.py's model (its `train_video_backbone` overrides, plus `--overrides`
as config.sync.overrides takes them) gets a linear head, and both train on where impacts start. The loss
is a per-frame logistic loss on 16-frame snippets of `clips` 4 s training clips at `size` pixels. The
world is the tiny pipeline's (hidden acoustics; its shutter unless --shutter says otherwise). Then
bench.sync_timing's frame probe runs on the tower's features of 240 held-out test clips of the same
world: exact frame overall and by ambience.

The tower is supervised by the ground truth. So its exact frame bounds what any objective of the sync
stage could reach with the same picture and tower. A contrastive tower near it is limited by its input,
not by its loss. `--compare` measures sync bundles beside it (bench.sync_timing.measure).

Prints one table; writes bench/results/sync_ceiling.json (--out).
"""

from __future__ import annotations

import ast
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags
from flax import nnx

from bench import sync_timing
from data_pipelines.synthetic import WorldConfig, make_clip
from salsa import io
from salsa.models.encoders.sync import SyncModel, variant


class Detector(nnx.Module):
    """A sync model whose per-frame video features feed a linear impact-frame logit."""

    def __init__(self, sync: SyncModel, rngs: nnx.Rngs):
        self.sync = sync
        self.head = nnx.Linear(sync.config.video.spatial.width, 1, rngs=rngs)

    def __call__(self, video: jax.Array) -> jax.Array:
        """video (batch, frames, H, W, 3) in [0, 1] -> (batch, frames) logits."""
        return self.head(self.sync.video_features(video))[..., 0]


@nnx.jit
def _step(model: Detector, optimizer: nnx.Optimizer, video: jax.Array, labels: jax.Array) -> jax.Array:
    def loss_fn(m):
        return optax.sigmoid_binary_cross_entropy(m(video), labels).mean()

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def train(
    size: int,
    clips: int,
    steps: int,
    overrides: dict | None = None,
    batch: int = 16,
    seed: int = 0,
    world: dict | None = None,
) -> tuple[SyncModel, list[float]]:
    """The supervised tower and its training loss every step, on clips of `world` (world_settings
    fields; default the tiny pipeline's, sync_timing.WORLD)."""
    overrides = {"train_video_backbone": True, **(overrides or {})}
    video = {**overrides.pop("video", {}), "image_size": size}
    config = variant("tiny", **overrides, video=video)
    world = WorldConfig(
        seconds=4.0, height=size, width=size, sample_rate=16000, channels=1, **(world or sync_timing.WORLD)
    )
    rendered = [make_clip(world, 0, i) for i in range(clips)]
    frames = np.stack([c.frames for c in rendered])
    labels = np.stack(
        [sync_timing.impact_frames(c.annotation, c.frames.shape[0], world.fps) for c in rendered]
    ).astype(np.float32)
    with nnx.use_eager_sharding(False):
        model = Detector(SyncModel(config, nnx.Rngs(seed)), nnx.Rngs(seed + 1))
    optimizer = nnx.Optimizer(
        model, optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(5e-4)), wrt=nnx.Param
    )
    rng = np.random.default_rng(seed)
    win = config.snippet_frames
    losses = []
    for _ in range(steps):
        which = rng.integers(clips, size=batch)
        starts = rng.integers(frames.shape[1] - win + 1, size=batch)
        video = np.stack([frames[c, s : s + win] for c, s in zip(which, starts, strict=True)])
        target = np.stack([labels[c, s : s + win] for c, s in zip(which, starts, strict=True)])
        losses.append(float(_step(model, optimizer, jnp.asarray(video, jnp.float32) / 255.0, target)))
    return model.sync, losses


def main(argv: list[str]) -> None:
    del argv
    overrides = ast.literal_eval(_OVERRIDES.value) if _OVERRIDES.value else {}
    start = time.time()
    world = {**sync_timing.WORLD, "shutter": _SHUTTER.value}
    model, losses = train(_SIZE.value, _CLIPS.value, _STEPS.value, overrides, world=world)
    rows = {
        "supervised": {
            "clips": _CLIPS.value,
            "steps": _STEPS.value,
            "overrides": overrides,
            "shutter": _SHUTTER.value,
            "loss_first_last_100": [float(np.mean(losses[:100])), float(np.mean(losses[-100:]))],
            "seconds": time.time() - start,
            **sync_timing.probe(model, 240, world),
        }
    }
    for item in filter(None, _COMPARE.value.split(",")):
        name, path = item.split("=", 1)
        rows[name] = {"sync": path, **sync_timing.measure(path, 240, world)}
    print(
        f"impact frames: the tiny sync video tower supervised ({_STEPS.value} steps on {_CLIPS.value} clips)"
    )
    print(sync_timing.table(rows))
    io.write_json(_OUT.value, rows)


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _SIZE = flags.DEFINE_integer("size", 32, "frame size in pixels (the world renders at it)")
    _CLIPS = flags.DEFINE_integer("clips", 1024, "4 s training clips of the world (seed 0)")
    _STEPS = flags.DEFINE_integer("steps", 1500, "training steps of 16 snippets")
    _SHUTTER = flags.DEFINE_float(
        "shutter",
        sync_timing.WORLD["shutter"],
        "the world's shutter, training and probe clips (default the tiny pipeline's)",
    )
    _OVERRIDES = flags.DEFINE_string("overrides", "", "SyncConfig overrides, a Python dict literal")
    _COMPARE = flags.DEFINE_string(
        "compare", "", "NAME=DIR of sync bundles measured beside it, comma-separated"
    )
    _OUT = flags.DEFINE_string("out", "bench/results/sync_ceiling.json", "JSON results")
    app.run(main)
