"""VAE training: per-group gradients in the shared step, and vae_tiny learning on the synthetic world."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.vae_tiny import get_config
from data_pipelines.audio.crops import SyntheticAudio
from salsa.models import vae as vae_lib
from salsa.models import vae_bundle
from salsa.objectives.stft_losses import multi_resolution_stft_loss
from salsa.training import loop
from salsa.training.step import grouped_value_and_grad


def test_each_group_learns_from_its_own_loss_only():
    params = {"gen": {"w": jnp.array([1.0, 2.0])}, "disc": {"w": jnp.array([3.0])}}
    labels = {"gen": {"w": "gen"}, "disc": {"w": "disc"}}

    def loss_fn(p):
        shared = jnp.sum(p["gen"]["w"]) * p["disc"]["w"][0]  # both losses depend on both groups
        return {"gen": shared**2, "disc": -shared + 10 * p["gen"]["w"][0]}, {"shared": shared}

    (losses, aux), grads = grouped_value_and_grad(loss_fn, params, labels)
    s = 9.0
    np.testing.assert_allclose(aux["shared"], s)
    np.testing.assert_allclose(grads["gen"]["w"], [2 * s * 3.0, 2 * s * 3.0])  # d gen_loss / d gen
    np.testing.assert_allclose(grads["disc"]["w"], [-3.0])  # d disc_loss / d disc; gen's 10·w0 ignored
    with pytest.raises(ValueError, match="no loss"):
        grouped_value_and_grad(lambda p: ({"gen": loss_fn(p)[0]["gen"]}, {}), params, labels)


def _small_tiny_config(steps: int, adversarial_start: int):
    c = get_config()  # 16 kHz mono, loudest-of-4 crops
    c.crop_samples = 2048
    c.total_steps = steps
    c.log_every = steps
    c.checkpoint_every = steps
    c.loss.adversarial_start = adversarial_start
    c.disc.filters = 4
    c.disc.n_ffts = (256, 128)
    c.data.clips = 64
    c.stats_clips = 2
    return c


def _held_out(config, n=4, samples=8192):
    """The loudest `samples`-long window of each of n clips of another world seed: the start of every clip
    is silent (objects still falling), where an untrained decoder's near-silent output already scores well."""
    source = SyntheticAudio(n, 12345, 2.0, config.audio.sample_rate, config.audio.channels)
    crops = []
    for i in range(n):
        audio = source[i]
        starts = range(0, len(audio) - samples + 1, samples // 4)
        crops.append(max((audio[s : s + samples] for s in starts), key=lambda a: float(np.sum(a * a))))
    return jnp.asarray(np.stack(crops))


def _recon_stft(model, audio):
    mean, _ = model.encode(audio)
    return float(multi_resolution_stft_loss(model.decode(mean), audio, (512, 256, 128, 64)))


def _train_and_compare(tmp_path, steps: int, adversarial_start: int) -> tuple[float, float]:
    from salsa.training.tasks.vae import VaeTask

    config = _small_tiny_config(steps, adversarial_start)
    held_out = _held_out(config)
    with nnx.use_eager_sharding(False):
        initial = VaeTask(config).create_model(nnx.Rngs(jax.random.fold_in(jax.random.key(config.seed), 0)))
    before = _recon_stft(initial.vae, held_out)
    start = time.perf_counter()
    loop.train(config, str(tmp_path))
    minutes = (time.perf_counter() - start) / 60
    trained, stats = vae_bundle.load_model(tmp_path / "vae")
    after = _recon_stft(trained, held_out)
    print(
        f"vae_tiny through salsa.train, held-out MRSTFT: {before:.3f} -> {after:.3f} after {steps} steps "
        f"(GAN terms from step {adversarial_start}; {minutes:.1f} min)"
    )
    assert stats is not None and stats["std"].shape == (16,)
    return before, after


def test_vae_tiny_learns_through_the_trainer(tmp_path):
    before, after = _train_and_compare(tmp_path, steps=30, adversarial_start=25)
    assert after < 0.85 * before


@pytest.mark.slow  # ~6.5 min on 2 shared cores
def test_vae_tiny_learns_longer(tmp_path):
    before, after = _train_and_compare(tmp_path, steps=200, adversarial_start=150)
    assert after < 0.75 * before


@pytest.mark.slow  # ~50 s; the direct (trainer-free) reference for the test above
def test_tiny_vae_fits_synthetic_audio():
    """The tiny geometry learns: 60 Adam steps of MRSTFT + KL on a fixed synthetic batch (16 kHz mono)."""
    import optax

    config = vae_lib.preset("tiny", sample_rate=16000, audio_channels=1)
    model = vae_bundle.build(config)
    source = SyntheticAudio(4, 0, 2.0, 16000, 1)
    audio = jnp.asarray(np.stack([source[i][:4096] for i in range(4)]))
    opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, key):
        def loss(model):
            recon, kl = model(audio, key)
            return multi_resolution_stft_loss(recon, audio, (512, 256, 128, 64)) + 1e-4 * kl

        value, grads = nnx.value_and_grad(loss)(model)
        opt.update(model, grads)
        return value

    before = _recon_stft(model, audio)
    for i in range(60):
        step(model, opt, jax.random.key(i))
    after = _recon_stft(model, audio)
    print(f"tiny VAE reconstruction MRSTFT on a fixed batch: {before:.3f} -> {after:.3f} after 60 steps")
    assert after < 0.75 * before
