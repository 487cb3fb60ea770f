"""SigLIP 2 towers: parity with transformers after `salsa.convert siglip2`, preprocessing, tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax.numpy as jnp  # noqa: E402

from salsa import bundle, cli  # noqa: E402
from salsa.convert import __main__ as convert_cli  # noqa: E402
from salsa.models.encoders.siglip2 import Siglip, SiglipConfig, naflex_size, preprocess, preprocess_naflex  # noqa: E402

TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
TEXT = dict(TOWER, vocab_size=100, max_position_embeddings=12)


def _load(out) -> Siglip:
    return bundle.from_bundle(str(out), "siglip2", Siglip, SiglipConfig)


def _check(ref, model, images_torch, images_ours, ids, **vision_kw):
    with torch.no_grad():
        v = ref.vision_model(pixel_values=images_torch, **vision_kw)
        t = ref.text_model(input_ids=torch.tensor(ids))
    pooled, tokens = model.image(jnp.asarray(images_ours))
    errs = {
        "image_tokens": np.abs(np.asarray(tokens) - v.last_hidden_state.numpy()).max(),
        "image_pooled": np.abs(np.asarray(pooled) - v.pooler_output.numpy()).max(),
        "text_pooled": np.abs(np.asarray(model.text(jnp.asarray(ids))) - t.pooler_output.numpy()).max(),
    }
    print({k: f"{e:.2e}" for k, e in errs.items()})
    assert max(errs.values()) < 1e-4, errs


def test_siglip_parity(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.SiglipConfig(
        vision_config=dict(TOWER, image_size=32, patch_size=8), text_config=dict(TEXT, projection_size=24)
    )
    ref = transformers.SiglipModel(cfg).eval()
    ref.save_pretrained(tmp_path / "hf")
    assert (
        cli.run(convert_cli.main, ["siglip2", "--src", str(tmp_path / "hf"), "--out", str(tmp_path / "b")])
        == 0
    )
    model = _load(tmp_path / "b")
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    ids = rng.integers(0, 100, (2, 12))
    _check(ref, model, torch.tensor(images).permute(0, 3, 1, 2), images, ids)
    assert float(model.bias[...]) == pytest.approx(float(ref.logit_bias.detach()))


def test_siglip2_naflex_parity(tmp_path):
    if not hasattr(transformers, "Siglip2Model"):
        pytest.skip("this transformers has no Siglip2Model")
    torch.manual_seed(1)
    cfg = transformers.Siglip2Config(
        vision_config=dict(TOWER, num_patches=16, patch_size=8), text_config=dict(TEXT, projection_size=32)
    )
    ref = transformers.Siglip2Model(cfg).eval()
    ref.save_pretrained(tmp_path / "hf")
    cli.run(convert_cli.main, ["siglip2", "--src", str(tmp_path / "hf"), "--out", str(tmp_path / "b")])
    model = _load(tmp_path / "b")
    rng = np.random.default_rng(1)
    images = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    patches = images.reshape(2, 4, 8, 4, 8, 3).transpose(0, 1, 3, 2, 4, 5).reshape(2, 16, 192)
    ids = rng.integers(0, 100, (2, 12))
    _check(
        ref,
        model,
        torch.tensor(patches),
        images,
        ids,
        pixel_attention_mask=torch.ones(2, 16, dtype=torch.long),
        spatial_shapes=torch.tensor([[4, 4], [4, 4]]),
    )


def test_convert_bad_source_exits_2(tmp_path, capsys):
    assert (
        cli.run(convert_cli.main, ["siglip2", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "b")])
        == 2
    )
    assert "config.json" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_preprocess_range_and_size():
    frames = np.random.default_rng(0).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)
    x = np.asarray(preprocess(jnp.asarray(frames), 32))
    assert x.shape == (3, 32, 32, 3) and x.min() >= -1.1 and x.max() <= 1.1


def test_naflex_size_matches_processor():
    pil = pytest.importorskip("transformers.models.siglip2.image_processing_pil_siglip2")
    for h, w, p, n in [
        (720, 1280, 16, 256),
        (480, 640, 16, 256),
        (1080, 1920, 16, 1024),
        (32, 32, 8, 16),
        (100, 37, 16, 64),
        (24, 4000, 16, 256),
    ]:
        assert naflex_size(h, w, p, n) == pil.get_image_size_for_max_num_patches(h, w, p, n), (h, w, p, n)
    assert naflex_size(720, 1280, 16, 256) == (192, 336)  # 12 x 21 patches: the aspect ratio kept
    frames = np.zeros((2, 720, 1280, 3), np.uint8)
    assert preprocess_naflex(jnp.asarray(frames), 16).shape == (2, 192, 336, 3)


def test_siglip2_naflex_non_square_parity(tmp_path):
    """A 3 x 5 patch image (one padded patch on the reference side) against Siglip2Model."""
    if not hasattr(transformers, "Siglip2Model"):
        pytest.skip("this transformers has no Siglip2Model")
    torch.manual_seed(2)
    cfg = transformers.Siglip2Config(
        vision_config=dict(TOWER, num_patches=16, patch_size=8), text_config=dict(TEXT, projection_size=32)
    )
    ref = transformers.Siglip2Model(cfg).eval()
    ref.save_pretrained(tmp_path / "hf")
    cli.run(convert_cli.main, ["siglip2", "--src", str(tmp_path / "hf"), "--out", str(tmp_path / "b")])
    model = _load(tmp_path / "b")
    images = np.random.default_rng(2).uniform(-1, 1, (1, 24, 40, 3)).astype(np.float32)
    patches = images.reshape(1, 3, 8, 5, 8, 3).transpose(0, 1, 3, 2, 4, 5).reshape(1, 15, 192)
    patches = np.concatenate([patches, np.zeros((1, 1, 192), np.float32)], axis=1)
    mask = torch.tensor([[1] * 15 + [0]])
    with torch.no_grad():
        v = ref.vision_model(
            pixel_values=torch.tensor(patches),
            pixel_attention_mask=mask,
            spatial_shapes=torch.tensor([[3, 5]]),
        )
    pooled, tokens = model.image(jnp.asarray(images))
    np.testing.assert_allclose(np.asarray(tokens), v.last_hidden_state.numpy()[:, :15], atol=1e-4)
    np.testing.assert_allclose(np.asarray(pooled), v.pooler_output.numpy(), atol=1e-4)
