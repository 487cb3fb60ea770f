"""Sync encoder: SigLIP loss, snippet data, the task's optimizer groups, feature shapes for any length,
and (slow) learning audio-visual timing on the synthetic world."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import generator as generator_configs
from configs import sync as sync_paper
from configs.sync_tiny import get_config
from data_pipelines.synthetic import WorldConfig, heldout
from data_pipelines.synthetic.snippets import ClipSource, SnippetSpec, ratio_ok, snippet_batch
from salsa import bundle, sharding
from salsa.errors import UserError
from salsa.inference import encoders
from salsa.metrics.sync_offset import shift_top1
from salsa.models.encoders import ast as ast_lib
from salsa.models.encoders import siglip2 as siglip_lib
from salsa.models.encoders import videoprism as vp_lib
from salsa.models.encoders.sync import SyncConfig, SyncModel, variant
from salsa.objectives.siglip_loss import siglip_loss
from salsa.training import loop
from salsa.training import state as state_lib
from salsa.training.tasks.sync import SyncTask


def test_siglip_loss_matches_eq1():
    x = jax.random.normal(jax.random.key(0), (5, 8))
    y = jax.random.normal(jax.random.key(1), (5, 8))
    t, b = jnp.log(3.0), -2.0
    logits = 3.0 * x @ y.T + b
    z = 2 * np.eye(5) - 1
    want = -np.sum(np.log(1 / (1 + np.exp(-z * np.asarray(logits))))) / 5
    np.testing.assert_allclose(siglip_loss(x, y, t, b), want, rtol=1e-5)


def test_ratio_check_and_snippets():
    assert ratio_ok(16000 * 3, 72, 16000, 24) and not ratio_ok(17000 * 3, 72, 16000, 24)
    world = WorldConfig(seconds=2.0, height=32, width=32, sample_rate=16000, channels=1)
    batch = snippet_batch(ClipSource(world, 0, 2, 0), SnippetSpec(2, 3), seed=0, step=5)
    assert batch["video"].shape == (6, 16, 32, 32, 3) and batch["audio"].shape == (6, 10667)


@pytest.fixture(scope="module")
def sync_model():
    return bundle.build(SyncModel, variant("tiny"))


@pytest.fixture(scope="module")
def siglip():
    return bundle.build(siglip_lib.Siglip, siglip_lib.variant("tiny"))


def test_task_step_and_frozen_backbone(tmp_path):
    config = get_config()
    config.sync.overrides = {}  # the paper's frozen VideoPrism (update() would merge, not replace)
    config.sync.update(videos=1, snippets=2)
    config.batch_size = 2
    config.total_steps, config.log_every, config.checkpoint_every = 2, 1, 2
    config.data.pool_clips = 1
    config.data.world.seconds = 2.0
    logged = []
    state = loop.train(config, str(tmp_path), hooks=[lambda s, m: logged.append(m)])
    assert all(np.isfinite(m["loss"]) for m in logged)
    task = SyncTask(config)
    with nnx.use_eager_sharding(False):  # initialised as salsa.training.state does
        fresh = bundle.params_of(
            task.create_model(nnx.Rngs(jax.random.fold_in(jax.random.key(config.seed), 0)))
        )
    # The frozen VideoPrism never moves; the new layers do.
    a, b = state.params["video_backbone"]["spatial_pos"], fresh["video_backbone"]["spatial_pos"]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(state.params["video_pool"]["probe"], fresh["video_pool"]["probe"])


def _backbone_bundles(tmp_path, variant_name="tiny"):
    """'videoprism' and 'ast' bundles of random-weight models (standing in for converted releases)."""
    c = variant(variant_name)
    vp, ast = bundle.build(vp_lib.VideoPrism, c.video, seed=7), bundle.build(ast_lib.Ast, c.audio, seed=8)
    bundle.save(str(tmp_path / "vp"), "videoprism", c.video.to_dict(), bundle.params_of(vp))
    bundle.save(str(tmp_path / "ast"), "ast", c.audio.to_dict(), bundle.params_of(ast))
    return bundle.params_of(vp), bundle.params_of(ast)


def test_paper_config_starts_from_backbone_bundles(tmp_path):
    """configs/sync.py (shrunk to the tiny variant) starts training from both bundles' weights."""
    vp, ast = _backbone_bundles(tmp_path)
    config = sync_paper.get_config()
    config.sync.variant = "tiny"
    config.sync.init.update(videoprism=str(tmp_path / "vp"), ast=str(tmp_path / "ast"))
    task = SyncTask(config)
    mesh = sharding.make_mesh(dict(config.mesh))
    tx, _ = task.optimizer()
    state = state_lib.create(task, tx, config, state_lib.spec(task, tx, config, mesh))  # as loop.train
    got = bundle.flatten(jax.device_get(state.params))
    want = bundle.flatten({"video_backbone": vp, "audio": ast})
    for k, v in want.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_paper_config_needs_bundles(tmp_path):
    vp, _ = _backbone_bundles(tmp_path)
    task = SyncTask(sync_paper.get_config())
    with pytest.raises(ValueError, match="config.sync.init.videoprism names no bundle"):
        task.initial_params()
    task.config.sync.init.update(videoprism=str(tmp_path / "missing"), ast=str(tmp_path / "ast"))
    with pytest.raises(ValueError, match="missing' is not a model bundle"):
        task.initial_params()
    task.config.sync.init.videoprism = str(tmp_path / "vp")  # tiny geometry, base model
    with pytest.raises(ValueError, match="another geometry than sync variant 'base'"):
        task.initial_params()


@pytest.mark.parametrize("seconds", [1.0, 7.3, 95.0])
def test_feature_shapes_and_rates(seconds, sync_model, siglip):
    t24, t8 = round(seconds * 24), round(seconds * 8)
    rng = np.random.default_rng(0)
    f24 = rng.integers(0, 256, (t24, 32, 32, 3), dtype=np.uint8)
    f8 = f24[::3][:t8]
    assert encoders.sync(sync_model, f24).shape == (t24, 64)
    assert encoders.semantic(siglip, f8).shape == (t8, 64)


def _dot_operand_dtypes(fn, model, *args) -> list[tuple[str, ...]]:
    """The operand dtypes of every matmul (dot_general) in the trace of fn(model, *args)."""
    import jax.extend as jex

    graphdef, state = nnx.split(model)
    closed = jax.make_jaxpr(lambda s, *a: fn(nnx.merge(graphdef, s), *a))(state, *args)
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                found.append(tuple(str(v.aval.dtype) for v in eqn.invars))
            for param in eqn.params.values():
                for sub in param if isinstance(param, tuple | list) else (param,):
                    if isinstance(sub, jex.core.ClosedJaxpr):
                        walk(sub.jaxpr)
                    elif isinstance(sub, jex.core.Jaxpr):
                        walk(sub)

    walk(closed.jaxpr)
    return found


def test_encoders_compute_in_the_configs_dtype(sync_model, siglip):
    """features.encoder_dtype="bfloat16" (the paper's sizes, for TPU/GPU): every matmul of the sync
    encoder and of SigLIP's image and text towers takes bfloat16 operands (none is promoted back to
    float32), and the features come back float32 within bfloat16's rounding of the float32 ones."""
    rng = np.random.default_rng(0)
    f24 = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    f8 = f24[::3]
    ids = rng.integers(0, siglip.config.vocab_size, (2, siglip.config.text_len)).astype(np.int32)
    for f32, bf16 in [
        (encoders.sync(sync_model, f24), encoders.sync(sync_model, f24, dtype="bfloat16")),
        (encoders.semantic(siglip, f8), encoders.semantic(siglip, f8, dtype="bfloat16")),
        (encoders.text(siglip, ids), encoders.text(siglip, ids, "bfloat16")),
    ]:
        assert bf16.dtype == np.float32 and bf16.shape == f32.shape
        error = np.linalg.norm(bf16 - f32) / np.linalg.norm(f32)
        assert 1e-4 < error < 0.03, error  # 0.7-1.0% on these random towers

    size = siglip.config.image_size
    bodies = [
        (lambda m, x, d: encoders._sync_windows.__wrapped__(m, x, d), sync_model, f24[None, :16]),
        (lambda m, x, d: encoders._image_chunk.__wrapped__(m, x, size, None, d), siglip, f8[:4]),
        (lambda m, x, d: encoders._text.__wrapped__(m, x, d), siglip, ids),
    ]
    for body, model, x in bodies:
        for dtype in ("float32", "bfloat16"):
            dots = _dot_operand_dtypes(lambda m, x, d=dtype, body=body: body(m, x, d), model, x)
            assert len(dots) > 10 and set(dots) == {(dtype, dtype)}, (dtype, set(dots))


def test_encoder_dtype_per_size_and_a_bad_one():
    assert encoders.compute_dtype(generator_configs.get_config("tiny")) == "float32"
    for size in ("small", "large"):
        assert encoders.compute_dtype(generator_configs.get_config(size)) == "bfloat16"
    old = generator_configs.get_config("tiny")
    del old.features["encoder_dtype"]  # a checkpoint's config from before the field
    assert encoders.compute_dtype(old) == "float32"
    old.features.encoder_dtype = "float16"
    with pytest.raises(UserError, match="encoder_dtype is 'float16'; it must be one of float32, bfloat16"):
        encoders.compute_dtype(old)


def test_text_features_from_user_tokenizer(tmp_path, siglip):
    tokenizers = pytest.importorskip("tokenizers")
    words = ["<pad>", "<unk>", "a", "wooden", "ball", "bounces", "twice", "metal", "block", "slides"]
    tok = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>")
    )
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    ids = encoders.tokenize(
        str(tmp_path / "tokenizer.json"), ["a wooden ball bounces twice", "a metal drum"], 32
    )
    assert ids.shape == (2, 32) and list(ids[0, :6]) == [2, 3, 4, 5, 6, 0] and ids[1, 2] == 1
    assert encoders.text(siglip, ids).shape == (2, 64)


def test_sync_bundle_round_trip(tmp_path):
    config = variant("tiny")
    model = bundle.build(SyncModel, config, seed=1)
    (tmp_path / "checkpoints").mkdir()
    SyncTask(get_config()).export(bundle.params_of(model), str(tmp_path))  # as the loop calls it
    assert (tmp_path / "checkpoints").is_dir()  # the workdir's other contents stay
    loaded = bundle.from_bundle(str(tmp_path / "export"), "sync", SyncModel, SyncConfig)
    frames = np.zeros((20, 32, 32, 3), np.uint8)
    np.testing.assert_allclose(encoders.sync(model, frames), encoders.sync(loaded, frames), atol=1e-6)


def test_config_overrides_reach_the_video_backbone_by_field():
    """config.sync.overrides may change the VideoPrism and AST geometry field by field (dicts, as from
    the command line), keeping the variant's other fields."""
    config = get_config()
    config.sync.overrides = {"train_video_backbone": True, "video": {"patch": 8}, "audio": {"time_stride": 2}}
    c, tiny = SyncTask(config).model_config, variant("tiny")
    assert c.video.patch == 8 and c.video.spatial.width == 64 and c.train_video_backbone
    assert dataclasses.replace(c.video, patch=tiny.video.patch) == tiny.video
    assert (
        c.audio.time_stride == 2
        and dataclasses.replace(c.audio, time_stride=tiny.audio.time_stride) == tiny.audio
    )


@pytest.mark.slow
def test_tiny_sync_learns_timing(trained_sync):
    model, config, minutes = trained_sync  # tests/conftest.py: configs/sync_tiny.py, trained once
    world = WorldConfig(**dict(config.data.world))
    spec = SnippetSpec(1, 1, model.config.snippet_frames, model.config.snippet_samples)
    top1, chance = shift_top1(model, *heldout.shift_snippets(world, 12345, 100, spec))
    print(f"sync top-1 among time shifts: {top1:.2f} (chance {chance:.2f}), trained {minutes:.1f} min")
    assert top1 >= 2 * chance
