"""VAE training: per-group gradients in the shared step, and vae_tiny learning on the synthetic world."""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs.vae_tiny import get_config
from data_pipelines.audio.crops import SyntheticAudio
from salsa import bundle
from salsa.models.vae import model as vae_lib
from salsa.objectives.stft_losses import multi_resolution_stft_loss, stft
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


def test_vae_task_grads_through_the_shared_step_equal_direct_grads():
    """The shared step's per-group gradients of the VAE task (random weights; the tiny variant cut to one
    block and one STFT resolution to keep compilation short; GAN terms on) equal jax.grad of that group's
    own loss, for every parameter matched by its path: the VAE's from the generator loss, the
    discriminator's from the discriminator loss."""
    from salsa.training.step import group_labels
    from salsa.training.tasks.vae import VaeTask

    c = get_config()
    c.vae.overrides = {"multiples": (2,), "strides": (4,), "latent_dim": 4}
    c.crop_samples, c.disc.filters, c.disc.n_ffts, c.loss.stft_n_ffts = 256, 4, (64,), (64,)
    c.loss.adversarial, c.loss.feature_matching = 0.1, 5.0  # vae_tiny has none; Stable Audio's weights
    task = VaeTask(c)
    # Seed 3: no discriminator pre-activation lies within 1e-6 of leaky ReLU's kink (seed 0 has one at
    # 3e-10), where the float rounding of two differently fused programs would pick different slopes.
    with nnx.use_eager_sharding(False):
        model = task.create_model(nnx.Rngs(3))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = params.to_pure_dict(), rest.to_pure_dict()
    audio = SyntheticAudio(1, 0, 2.0, 16000, 1)[0]
    batch = {"audio": jnp.asarray(np.stack([audio[16000:16256], audio[20000:20256]]))}
    key, step = jax.random.key(3), jnp.int32(c.loss.adversarial_start)  # adversarial terms switched on

    def loss_fn(p):
        return task.loss(nnx.merge(graphdef, p, rest), None, batch, key, step=step)

    labels = group_labels(task, params)
    shared = jax.jit(lambda p: grouped_value_and_grad(loss_fn, p, labels)[1])(params)
    groups = ("gen", "disc")
    direct = jax.jit(lambda p: {g: jax.grad(lambda q, g=g: loss_fn(q)[0][g])(p) for g in groups})(params)

    def by_path(tree):
        return {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}

    shared, labels = by_path(shared), by_path(labels)
    direct = {g: by_path(t) for g, t in direct.items()}
    assert set(shared) == set(labels) == set(direct["gen"]) == set(direct["disc"])
    assert {labels[k] for k in labels if k.startswith("['disc']")} == {"disc"}
    assert {labels[k] for k in labels if k.startswith("['vae']")} == {"gen"}
    for group in ("gen", "disc"):
        paths = [k for k in shared if labels[k] == group]
        assert sum(float(jnp.sum(jnp.abs(direct[group][k]))) for k in paths) > 0  # both losses reach
        for k in paths:
            want = np.asarray(direct[group][k])
            np.testing.assert_allclose(
                shared[k], want, rtol=1e-4, atol=1e-6 * float(np.abs(want).max() + 1e-12), err_msg=k
            )


def test_vae_task_leaves_the_discriminator_out_before_adversarial_start():
    """Before loss.adversarial_start the task is in phase 0: the loss is MRSTFT + onset flux + KL alone
    (the discriminator is not run, its loss and gradients are exactly zero); from that step on, phase 1."""
    from salsa.objectives import onset_flux, stft_losses
    from salsa.training.tasks.vae import VaeTask

    c = get_config()
    c.vae.overrides = {"multiples": (2,), "strides": (4,), "latent_dim": 4}
    c.crop_samples, c.disc.filters, c.disc.n_ffts, c.loss.stft_n_ffts = 256, 4, (64,), (64,)
    start = c.loss.adversarial_start
    assert [VaeTask(c).phase(s) for s in (0, start, start + 5)] == [0, 0, 0]  # vae_tiny: GAN weights 0
    c.loss.adversarial, c.loss.feature_matching = 0.1, 5.0
    task = VaeTask(c)
    assert [task.phase(s) for s in (0, start - 1, start, start + 5)] == [0, 0, 1, 1]
    with nnx.use_eager_sharding(False):
        model = task.create_model(nnx.Rngs(0))
    audio = jnp.asarray(np.random.default_rng(0).standard_normal((2, 256, 1)).astype(np.float32) * 0.1)
    key = jax.random.key(1)
    losses, metrics = task.loss(model, None, {"audio": audio}, key, step=0, phase=0)
    recon, kl = model.vae(audio, key)
    flux = onset_flux.onset_flux_loss(recon, audio, 16000)
    assert c.loss.onset_flux > 0 and float(flux) > 0 and float(metrics["onset_flux"]) == float(flux)
    want = c.loss.stft * stft_losses.multi_resolution_stft_loss(recon, audio, (64,)) + c.loss.kl * kl
    np.testing.assert_allclose(losses["gen"], want + c.loss.onset_flux * flux, rtol=1e-6)
    assert float(losses["disc"]) == 0.0 and float(metrics["feature_matching"]) == 0.0
    on, _ = task.loss(model, None, {"audio": audio}, key, step=start, phase=1)
    assert float(on["disc"]) > 0.0 and float(on["gen"]) != float(losses["gen"])


def _small_tiny_config(steps: int, adversarial_start: int):
    """vae_tiny (16 kHz mono, loudest-of-4 crops, onset flux) cut to two blocks (hop 32) and short crops,
    at a constant rate (a cosine over a few steps barely moves), with Stable Audio's GAN terms from
    `adversarial_start` (vae_tiny has none) so that the trainer's second phase is exercised."""
    c = get_config()
    c.vae.overrides = {"multiples": (2, 4), "strides": (4, 8)}
    c.crop_samples = 2048
    c.total_steps = steps
    c.log_every = steps
    c.checkpoint_every = steps
    c.optim.schedule = "constant"
    c.loss.adversarial, c.loss.feature_matching = 0.1, 5.0
    c.loss.adversarial_start = adversarial_start
    c.disc.filters = 4
    c.disc.n_ffts = (256, 128)
    c.data.clips = 64
    c.stats_clips = 2
    return c


@pytest.mark.parametrize("source_strides", [(4, 8), (2, 8)])
def test_init_bundle_starts_the_vae_from_the_bundle(tmp_path, source_strides):
    """config.init_bundle (fine-tuning a bundle, or sao43 from converted sao weights): the train state's VAE
    has every layer the bundle has with the same shapes; the layers it cannot fill (here the two whose
    kernels follow the first stride) and the discriminator keep their fresh initialisation."""
    from salsa import sharding
    from salsa.training import state as state_lib
    from salsa.training.tasks.vae import VaeTask

    c = _small_tiny_config(1, 0)
    geometry = dataclasses.replace(VaeTask(c).vae_config, strides=source_strides)
    source = bundle.flatten(bundle.params_of(bundle.build(vae_lib.VAE, geometry, seed=7)))
    bundle.save_vae(tmp_path / "init", geometry, bundle.unflatten(source))
    c.init_bundle = str(tmp_path / "init")
    task = VaeTask(c)
    tx, _ = task.optimizer()
    spec = state_lib.spec(task, tx, c, sharding.make_mesh(dict(c.mesh)))
    got = bundle.flatten(jax.device_get(state_lib.create(task, tx, c, spec).params))
    plain = _small_tiny_config(1, 0)
    fresh = bundle.flatten(jax.device_get(state_lib.create(VaeTask(plain), tx, plain, spec).params))
    kept = [] if source_strides == (4, 8) else ["vae/decoder/block/1/conv_t1", "vae/encoder/block/0/conv1"]
    for k, v in got.items():
        from_bundle = k.startswith("vae/") and k.rsplit("/", 1)[0] not in kept
        assert np.array_equal(v, source[k[4:]] if from_bundle else fresh[k]), k


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


@nnx.jit
def _scores(model, audio):
    """Reconstruction of the latent means against `audio` (B, samples, 1): the MRSTFT loss, SI-SDR (dB) and
    the correlation of onset envelopes (positive spectral flux of log magnitudes, 32 ms frames, 8 ms hop),
    each averaged over the batch."""
    recon = model.decode(model.encode(audio)[0])
    x, y = audio[..., 0], recon[..., 0]
    target = jnp.sum(x * y, -1, keepdims=True) / jnp.sum(x * x, -1, keepdims=True) * x
    si_sdr = 10 * jnp.log10(jnp.sum(target**2, -1) / jnp.sum((y - target) ** 2, -1))

    def onsets(a):
        log_mag = jnp.log(jnp.abs(stft(a, 512, 128))[:, 0] + 1e-5)
        flux = jnp.sum(jax.nn.relu(jnp.diff(log_mag, axis=1)), -1)
        return flux - jnp.mean(flux, -1, keepdims=True)

    fx, fy = onsets(audio), onsets(recon)
    corr = jnp.sum(fx * fy, -1) / jnp.sqrt(jnp.sum(fx * fx, -1) * jnp.sum(fy * fy, -1))
    mrstft = multi_resolution_stft_loss(recon, audio, (512, 256, 128, 64))
    return mrstft, jnp.mean(si_sdr), jnp.mean(corr)


def _recon_stft(model, audio):
    return float(_scores(model, audio)[0])


def _events(model, n=12):
    """Onset F1 (±50 ms) and material accuracy of the reconstructions (latent means) of n whole 2 s clips of
    a held-out world seed against the clips' ground-truth events: what the generator can at best reach."""
    from data_pipelines.synthetic import WorldConfig, make_clip, material_probe
    from salsa.metrics import onsets

    world = WorldConfig(seconds=2.0, sample_rate=16000, channels=1, height=16, width=16, fps=4.0)
    clips = [make_clip(world, 12345, i) for i in range(n)]
    audio = jnp.asarray(np.stack([c.audio for c in clips]))
    recon = np.asarray(nnx.jit(lambda m, a: m.decode(m.encode(a)[0]))(model, audio))
    pooled = onsets.pool_events(
        [
            onsets.clip_events(r, 16000, c.annotation, probe=material_probe.fit(16000))
            for r, c in zip(recon, clips, strict=True)
        ]
    )
    return pooled["onsets"]["f1"], pooled["material_accuracy"]


def _train_and_compare(tmp_path, config, events: bool = True) -> tuple[list[float], list[float]]:
    """Trains through salsa.train; returns held-out [MRSTFT, SI-SDR, onset-envelope corr, onset F1,
    material accuracy] before and after (the last two NaN unless `events`), and prints both."""
    from salsa.training.tasks.vae import VaeTask

    held_out = _held_out(config)
    with nnx.use_eager_sharding(False):
        initial = VaeTask(config).create_model(nnx.Rngs(jax.random.fold_in(jax.random.key(config.seed), 0)))

    def measure(model):
        scores = [float(x) for x in _scores(model, held_out)]
        return scores + (list(_events(model)) if events else [math.nan, math.nan])

    before = measure(initial.vae)
    start = time.perf_counter()
    loop.train(config, str(tmp_path))
    minutes = (time.perf_counter() - start) / 60
    trained, stats = bundle.vae_model(tmp_path / "vae")
    after = measure(trained)
    print(
        f"vae (hop {trained.config.hop}) through salsa.train, {config.total_steps} steps "
        f"(GAN terms from step {config.loss.adversarial_start}; {minutes:.1f} min), held-out: "
        f"MRSTFT {before[0]:.3f} -> {after[0]:.3f}, SI-SDR {before[1]:.1f} -> {after[1]:.1f} dB, "
        f"onset-envelope correlation {before[2]:.2f} -> {after[2]:.2f}, "
        f"onset F1 {before[3]:.2f} -> {after[3]:.2f}, material accuracy {before[4]:.2f} -> {after[4]:.2f}"
    )
    assert stats is not None and stats["std"].shape == (trained.config.latent_dim,)
    return before, after


def test_vae_tiny_trains_and_exports_through_the_trainer(tmp_path):
    """vae_tiny through salsa.train with the GAN terms on (the discriminator's parameter group trained
    beside the codec's) lowers the held-out reconstruction loss and exports a bundle with latent
    statistics: MRSTFT 3.284 -> 2.779 (0.85x) in 30 steps. The GAN terms are on from the first step, one
    compilation of the train step instead of two (200 -> 148 CPU s); the trainer's switch of phase at
    loss.adversarial_start is tests/test_phases.py's, the task's phases the test above."""
    before, after = _train_and_compare(tmp_path, _small_tiny_config(30, 0), events=False)
    assert after[0] < 0.9 * before[0]


@pytest.mark.slow  # ~12 min on 2 idle cores
def test_vae_tiny_learns_through_the_trainer(tmp_path):
    """The vae_tiny recipe (no GAN terms), cut to 800 steps: the held-out MRSTFT ends far below its
    initial value and the reconstructions keep the world's impacts where they were (onset F1; the untrained
    codec's output has none) and of the right material."""
    config = get_config()
    config.total_steps = 800
    config.log_every, config.checkpoint_every, config.stats_clips = 100, 800, 8
    before, after = _train_and_compare(tmp_path, config)
    assert after[0] < 0.6 * before[0]
    assert after[3] > 0.6 and after[4] > 0.6


@pytest.mark.slow  # ~50 s; the direct (trainer-free) reference for the test above
def test_tiny_vae_fits_synthetic_audio():
    """The tiny geometry learns: 60 Adam steps of MRSTFT + KL on a fixed synthetic batch (16 kHz mono)."""
    import optax

    config = vae_lib.variant("tiny", sample_rate=16000, audio_channels=1)
    model = bundle.build(vae_lib.VAE, config)
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
