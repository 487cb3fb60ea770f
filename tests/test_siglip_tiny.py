"""Tiny SigLIP towers on the synthetic world: caption tokenizer, the `siglip` task and its export, its
audio term (captions learned against the clips' log-mel spectrograms; weight 0 is the towers alone), and
(slow) image -> caption retrieval on held-out clips after a short training run."""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs.siglip_tiny import get_config
from data_pipelines.synthetic import WorldConfig
from data_pipelines.synthetic.captioned import CaptionedClips, build_tokenizer, encode
from salsa import bundle
from salsa.errors import UserError
from salsa.inference import encoders
from salsa.models.encoders.mel_tower import SiglipWithAudio
from salsa.models.encoders.siglip2 import Siglip, SiglipConfig
from salsa.objectives.siglip_loss import siglip_loss
from salsa.training import loop, tasks
from salsa.training.tasks.siglip import SiglipTask, retrieval_top1

pytest.importorskip("tokenizers")


def test_caption_tokenizer_round_trip(tmp_path):
    captions = ["a metal ball bounces twice, as rain falls outside", "a wooden block slides, as wind blows"]
    tok = build_tokenizer(captions)
    tok.save(str(tmp_path / "tokenizer.json"))
    ids = encode(tok, captions + ["A METAL drum"], 12)
    # The feature functions read the saved file the same way: <pad> = 0 fills, unknown words are <unk>.
    np.testing.assert_array_equal(
        encoders.tokenize(str(tmp_path / "tokenizer.json"), captions + ["A METAL drum"], 12), ids
    )
    assert ids.shape == (3, 12) and ids[0, 10] == 0 and ids[0, 5] == tok.token_to_id(",")
    assert list(ids[2, :3]) == [tok.token_to_id("a"), tok.token_to_id("metal"), 1]


def _small(audio_weight: float, clips: int = 4):
    config = get_config()
    config.batch_size, config.data.clips, config.data.world.seconds = clips, clips, 2.0
    config.data.world.hidden_acoustics, config.data.world.hidden_caption_fraction = True, 0.5
    config.audio.weight = audio_weight
    return config


def test_siglip_task_trains_and_exports(tmp_path):
    """Two steps on four clips with the audio tower; the export is a bundle the feature functions load,
    with its tokenizer, holding the image and text towers only (the same parameters as without audio)."""
    assert tasks.get("siglip") is SiglipTask
    config = _small(audio_weight=1.0)
    config.total_steps, config.log_every, config.checkpoint_every = 2, 1, 2
    logged = []
    loop.train(config, str(tmp_path), hooks=[lambda s, m: logged.append(m)])
    assert len(logged) == 2 and all(np.isfinite(m["loss"]) for m in logged)
    assert all(0.0 <= m["audio_top1"] <= 1.0 and np.isfinite(m["audio_loss"]) for m in logged)
    out = tmp_path / "export"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "params.npz", "tokenizer.json"]
    assert json.loads((out / "config.json").read_text())["kind"] == "siglip2"
    with nnx.use_eager_sharding(False):
        towers = Siglip(SiglipTask(config).model_config, nnx.Rngs(0))
    assert sorted(np.load(out / "params.npz").files) == sorted(bundle.flatten(bundle.params_of(towers)))
    model = bundle.from_bundle(str(out), "siglip2", Siglip, SiglipConfig)
    clips = CaptionedClips(WorldConfig(**dict(config.data.world)), config.data.seed, 2)
    ids = encoders.tokenize(str(out / "tokenizer.json"), clips.captions, model.config.text_len)
    assert (ids != 1).all()  # the training captions' words are all in the vocabulary
    assert encoders.text(model, ids).shape == (2, 64)
    assert encoders.semantic(model, clips.frames[0][:3]).shape == (3, 64)


def test_audio_weight_zero_is_the_towers_alone():
    """Weight 0: no audio tower, no audio in the batches; the towers start from the same weights and give
    the same image-caption loss as the image-caption term of a model with the audio tower."""
    plain, audio = SiglipTask(_small(0.0)), SiglipTask(_small(1.0))
    with nnx.use_eager_sharding(False):
        m0, m1 = plain.create_model(nnx.Rngs(0)), audio.create_model(nnx.Rngs(0))
    assert isinstance(m0, Siglip) and isinstance(m1, SiglipWithAudio)
    p0, p1 = bundle.params_of(m0), bundle.params_of(m1.siglip)
    assert jax.tree.structure(p0) == jax.tree.structure(p1)
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, p0, p1)))
    b0, b1 = next(plain.dataset(0, 1)), next(audio.dataset(0, 1))
    assert sorted(b0) == ["image", "tokens"] and sorted(b1) == ["audio", "image", "tokens"]
    np.testing.assert_array_equal(b0["image"], b1["image"])
    assert b1["audio"].shape[:1] == (4,) and b1["audio"].shape[2] == audio.config.audio.mels
    key, step = jax.random.key(0), np.int32(0)
    loss0, metrics0 = plain.loss(m0, None, b0, key, step)
    loss1, metrics1 = audio.loss(m1, None, b1, key, step)
    assert "audio_loss" not in metrics0
    np.testing.assert_allclose(float(loss0), float(metrics1["image_loss"]), rtol=1e-6)
    np.testing.assert_allclose(float(loss1), float(loss0 + metrics1["audio_loss"]), rtol=1e-6)


def test_misworded_captions_are_negatives_of_the_sound():
    """In a world with hidden acoustics each row also brings its caption with one hidden property named
    wrong: the same visible words, not the row's caption, and in the vocabulary. The audio term counts
    them as negatives of every clip's sound (and the image term leaves them out: the picture cannot tell
    them apart). `audio.misworded=False`, the default, leaves them out of the batches."""
    config = _small(1.0)
    config.audio.misworded = True
    task = SiglipTask(config)
    batch = next(task.dataset(0, 1))
    tokens, wrong = batch["tokens"], batch["misworded"]
    assert wrong.shape == tokens.shape and (wrong != 1).all()
    assert all((w != t).any() and w[0] == t[0] for w, t in zip(wrong, tokens, strict=True))
    with nnx.use_eager_sharding(False):
        model = task.create_model(nnx.Rngs(0))
    _, metrics = task.loss(model, None, batch, jax.random.key(0), np.int32(0))
    towers, audio = model.siglip, model.audio
    a, t, w = audio(batch["audio"]), towers.embed_texts(tokens), towers.embed_texts(wrong)
    same = np.all(tokens[:, None] == tokens[None], axis=-1)
    labels = np.concatenate([np.where(same, 1.0, -1.0), -np.ones_like(same, float)], axis=1)
    expected = siglip_loss(a, jnp.concatenate([t, w]), audio.log_temperature[...], audio.bias[...], labels)
    np.testing.assert_allclose(metrics["audio_loss"], expected, rtol=1e-5)
    images = towers.embed_images(batch["image"].astype(np.float32) / 127.5 - 1.0)
    image_loss = siglip_loss(
        images, t, towers.log_temperature[...], towers.bias[...], np.where(same, 1.0, -1.0)
    )
    np.testing.assert_allclose(metrics["image_loss"], image_loss, rtol=1e-5)
    config.audio.misworded = False
    assert "misworded" not in next(SiglipTask(config).dataset(0, 1))
    config.audio.misworded, config.audio.weight = True, 0.0  # no audio term: it would change nothing
    with pytest.raises(UserError, match="audio.misworded needs the audio term"):
        SiglipTask(config)


def test_audio_tower_learns_caption_embeddings():
    """The audio tower learns to place clips by their log-mel spectrograms: 40 Adam steps of the sigmoid
    loss against 8 distinct fixed caption embeddings (a trained text tower's stand-in; a fresh one gives
    near-identical embeddings for every caption) cut the loss five-fold and lift audio -> caption retrieval
    to most of the batch."""
    task = SiglipTask(_small(1.0, clips=8))
    with nnx.use_eager_sharding(False):
        tower = task.create_model(nnx.Rngs(0)).audio
    mel = np.asarray(next(task.dataset(0, 1))["audio"])
    captions = np.linalg.qr(np.random.default_rng(0).normal(size=(64, 8)))[0].T  # 8 orthonormal rows
    opt = nnx.Optimizer(tower, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def step(tower, opt):
        def loss(t):
            return siglip_loss(t(mel), captions, t.log_temperature[...], t.bias[...])

        value, grads = nnx.value_and_grad(loss)(tower)
        opt.update(tower, grads)
        return value

    def top1(tower):
        return float(np.mean(np.argmax(np.asarray(tower(mel)) @ captions.T, axis=1) == np.arange(8)))

    before = top1(tower)
    first = float(step(tower, opt))
    for _ in range(39):
        last = float(step(tower, opt))
    print(f"audio-caption loss {first:.3f} -> {last:.3f}, top-1 {before:.3f} -> {top1(tower):.3f}")
    assert last < 0.2 * first and top1(tower) >= 0.75


@pytest.mark.slow
def test_tiny_siglip_retrieves_captions(tmp_path):
    config = get_config()
    start = time.perf_counter()
    loop.train(config, str(tmp_path))
    minutes = (time.perf_counter() - start) / 60
    out = str(tmp_path / "export")
    model = bundle.from_bundle(out, "siglip2", Siglip, SiglipConfig)
    held = CaptionedClips(WorldConfig(**dict(config.data.world)), seed=12345, count=200)
    images = np.stack([f[f.shape[0] // 2] for f in held.frames])
    tokens = encoders.tokenize(out + "/tokenizer.json", held.captions, model.config.text_len)
    top1, chance = retrieval_top1(model, images, tokens)
    print(f"image -> caption top-1, 200 held-out clips: {top1:.3f} (chance {chance:.3f}), {minutes:.1f} min")
    assert top1 >= 2 * chance
