"""The tiny VAE's training computation on this machine: loss and gradient of a batch, by part, with the
transposed convolutions' weight gradient as written (`oobleck.full_convolution`, one matmul per tap)
and as XLA's CPU convolution computes it (autodiff of the convolution).

    JAX_PLATFORMS=cpu python -m bench.vae_step [--batch=8] [--crop=4096] [--repeats=20]

The tiny VAE of configs/vae_tiny.py (16 kHz mono, its initial weights); the loss is the stage's own
(`VaeTask.loss`: MRSTFT, onset flux, KL; its GAN terms are off). Median ms over `repeats` calls after
compilation. Prints one table; writes bench/results/vae_step.json (--out).
"""

from __future__ import annotations

import time
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from configs import vae_tiny
from salsa.io import write_json
from salsa.models.vae import oobleck
from salsa.training.tasks.vae import VAEGAN, VaeTask


def _median_ms(fn, *args) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(_REPEATS.value):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _rows(task: VaeTask, model: VAEGAN, audio: jax.Array) -> dict[str, float]:
    graph, params = nnx.split(model)
    key = jax.random.key(0)

    def loss(params):  # the stage's own loss before the adversarial phase (its configs' only phase)
        return task.loss(nnx.merge(graph, params), None, {"audio": audio}, key, 0, phase=0)[0]["gen"]

    latents = model.vae.encode(audio)[0]

    def encoder(params):
        return jnp.sum(nnx.merge(graph, params).vae.encode(audio)[0] ** 2)

    def decoder(params):
        return jnp.sum(nnx.merge(graph, params).vae.decode(latents) ** 2)

    return {
        "loss and gradient": _median_ms(jax.jit(jax.value_and_grad(loss)), params),
        "encoder forward and backward": _median_ms(jax.jit(jax.value_and_grad(encoder)), params),
        "decoder forward and backward": _median_ms(jax.jit(jax.value_and_grad(decoder)), params),
    }


def main(argv):
    del argv
    task = VaeTask(vae_tiny.get_config())
    with nnx.use_eager_sharding(False):
        model = task.create_model(nnx.Rngs(0))
    rng = np.random.default_rng(0)
    shape = (_BATCH.value, _CROP.value, task.vae_config.audio_channels)
    audio = jnp.asarray(rng.normal(0, 0.1, shape), jnp.float32)
    args = (task, model, audio)
    ours = _rows(*args)
    # autodiff of the convolution itself, XLA computing the weight gradient
    with mock.patch.object(oobleck, "full_convolution", oobleck._convolve_full):
        theirs = _rows(*args)
    print(f"tiny VAE, batch {_BATCH.value} x {_CROP.value} samples, median of {_REPEATS.value} calls (ms)")
    print("| part | XLA's weight gradient | one matmul per tap | ratio |")
    print("|---|---|---|---|")
    for name in ours:
        print(f"| {name} | {theirs[name]:.1f} | {ours[name]:.1f} | {theirs[name] / ours[name]:.2f} |")
    write_json(
        _OUT.value,
        {
            "batch": _BATCH.value,
            "crop": _CROP.value,
            "repeats": _REPEATS.value,
            "ms": {"xla_weight_gradient": theirs, "matmul_weight_gradient": ours},
        },
    )


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _BATCH = flags.DEFINE_integer("batch", 8, "crops per batch (the stage's: 8)")
    _CROP = flags.DEFINE_integer("crop", 4096, "samples per crop (the stage's: 4096)")
    _REPEATS = flags.DEFINE_integer("repeats", 20, "timed calls per row")
    _OUT = flags.DEFINE_string("out", "bench/results/vae_step.json", "JSON results")
    app.run(main)
