"""The generator network: shapes, conditioning paths, padding, RoPE in time."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from salsa import testing
from salsa.inference import checkpoint
from salsa.models.generator import rope
from salsa.models.generator.model import Generator, GeneratorConfig
from salsa.training.tasks.generator import conditions
from tests.conftest import feature_batch, perturbed_generator


def _call(model, batch, ref=None, drop=None, t=0.3):
    b, ta = batch["latent_mask"].shape
    ref = jnp.zeros((b, ta), bool) if ref is None else ref
    return model(batch["latents"], jnp.full((b,), t), jnp.zeros((b,)), conditions(batch), ref, drop)


def test_fresh_model_predicts_zero_velocity(tiny_config):
    with nnx.use_eager_sharding(False):
        model = Generator(GeneratorConfig.from_config(tiny_config), nnx.Rngs(0))
    batch = feature_batch(tiny_config, 2, jax.random.key(0))
    out = _call(model, batch)
    assert out.shape == batch["latents"].shape
    np.testing.assert_array_equal(out, 0.0)


def test_padding_does_not_leak_into_valid_tokens(tiny_config):
    model = perturbed_generator(tiny_config)
    batch = feature_batch(tiny_config, 2, jax.random.key(0), seconds=1.7)
    out = _call(model, batch)
    noisy = dict(batch)
    for name in ("latents", "semantic", "sync"):
        noise = 100 * jax.random.normal(jax.random.key(7), batch[name].shape)
        noisy[name] = jnp.where(
            batch[f"{name[:-1] if name == 'latents' else name}_mask"][..., None], batch[name], noise
        )
    out2 = _call(model, noisy)
    valid = batch["latent_mask"]
    np.testing.assert_allclose(out[valid], out2[valid], atol=1e-5)


def test_every_condition_and_the_reference_flag_change_the_output(tiny_config):
    model = perturbed_generator(tiny_config)
    batch = feature_batch(tiny_config, 2, jax.random.key(0))
    base = _call(model, batch)
    for name in ("text", "semantic", "sync"):
        dropped = _call(model, batch, drop={name: jnp.ones((2,), bool)})
        assert float(jnp.abs(dropped - base).max()) > 1e-3, name
    ref = jnp.zeros_like(batch["latent_mask"]).at[:, 10:20].set(True)
    assert float(jnp.abs(_call(model, batch, ref=ref) - base).max()) > 1e-3


def test_a_flow_matching_generator_takes_every_step_at_the_flow_level(tiny_config):
    """A generator trained without self-consistency rows (objective.sc_fraction 0, the flow-only
    baseline) saw only d = 0: asked for a step of 1/8, it answers at d = 0, as the same weights trained
    as a shortcut model do not."""
    batch = feature_batch(tiny_config, 2, jax.random.key(0))
    cond, ref, t = conditions(batch), jnp.zeros_like(batch["latent_mask"]), jnp.full((2,), 0.3)
    moved = {}
    for sc_fraction in (0.25, 0.0):
        config = tiny_config.copy_and_resolve_references()
        config.objective.sc_fraction = sc_fraction
        model = perturbed_generator(config)
        flow, eighth = (model(batch["latents"], t, jnp.full((2,), d), cond, ref) for d in (0.0, 0.125))
        moved[sc_fraction] = float(jnp.abs(eighth - flow).max())
    assert moved[0.25] > 1e-3
    assert moved[0.0] == 0.0


def test_sync_features_act_locally_in_time(tiny_config):
    """Changing sync frames near 1 s moves the output near 1 s far more than near 3 s."""
    model = perturbed_generator(tiny_config)
    batch = feature_batch(tiny_config, 1, jax.random.key(0))
    fps, rate = tiny_config.video.sync_fps, tiny_config.audio.sample_rate / tiny_config.audio.hop
    changed = dict(batch, sync=batch["sync"].at[:, int(1.0 * fps) : int(1.1 * fps)].add(5.0))
    diff = jnp.abs(_call(model, changed) - _call(model, batch)).mean(-1)[0]
    # Attention spreads some change everywhere; the adaLN path must dominate at the edited time.
    assert diff[int(1.05 * rate)] > 3 * diff[int(2.9 * rate)]


def test_rope_phase_matches_for_audio_and_visual_tokens_at_the_same_instant():
    rate = 44100 / 1024  # the paper's latent rate
    fps = 8.0  # semantic frames
    # i * 1024 / 44100 = j / 8 first holds again at 256 s: audio token 11025, visual frame 2048.
    audio = rope.angles(rope.positions(11026, rate, rate), 64)
    visual = rope.angles(rope.positions(2049, fps, rate), 64)
    np.testing.assert_array_equal(audio[11025], visual[2048])
    np.testing.assert_array_equal(audio[0], visual[0])
    assert not np.allclose(audio[11024], visual[2048])


def test_the_attention_implementation_is_checked_when_the_config_is_read(tiny_config):
    tiny_config.model.attention = "flash"
    with pytest.raises(ValueError, match=r"model.attention='flash' must be one of xla, cudnn"):
        GeneratorConfig.from_config(tiny_config)
    tiny_config.model.attention = "cudnn"  # cuDNN's fused kernel computes in bf16/f16 only
    with pytest.raises(ValueError, match=r"model.attention='cudnn' needs model.dtype bfloat16"):
        GeneratorConfig.from_config(tiny_config)


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN attention runs on GPU only")
def test_cudnn_attention_agrees_with_xla_on_padded_rows(tiny_config):
    tiny_config.model.dtype = "bfloat16"
    batch = feature_batch(tiny_config, 2, jax.random.key(0), seconds=1.7)
    outs = {}
    for attention in ("xla", "cudnn"):
        tiny_config.model.attention = attention
        outs[attention] = _call(perturbed_generator(tiny_config), batch)
    valid = batch["latent_mask"]
    scale = float(jnp.abs(outs["xla"][valid]).max())
    np.testing.assert_allclose(outs["cudnn"][valid], outs["xla"][valid], atol=0.02 * scale)


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="the fallback is for machines without cuDNN")
def test_a_checkpoint_trained_with_cudnn_attention_loads_with_xla_attention_off_gpu(tiny_config, tmp_path):
    tiny_config.model.update(dtype="bfloat16", attention="cudnn")
    components = checkpoint.load(testing.random_pipeline(str(tmp_path), tiny_config))
    assert components.config.model.attention == "xla"
    assert {block.attention for block in [*components.generator.joint, *components.generator.dit]} == {"xla"}
