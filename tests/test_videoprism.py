"""VideoPrism: the released-layout .npz loader reproduces a module's outputs; other grids and lengths."""

from __future__ import annotations

import jax
import numpy as np

from salsa import bundle, cli
from salsa.convert import __main__ as convert_cli
from salsa.convert import videoprism_npz
from salsa.models.encoders.videoprism import VideoPrism, VideoPrismConfig, variant


def test_npz_loader_reproduces_outputs(tmp_path):
    config = variant("tiny", num_frames=4)
    model = bundle.build(VideoPrism, config, seed=3)
    flat = videoprism_npz.to_npz(config, bundle.params_of(model))
    assert flat["params/spatial_encoder/transformers_stack/x_layers/self_attention/query/w"].shape == (
        2,
        64,
        2,
        32,
    )
    np.savez(tmp_path / "vp.npz", **flat)
    assert (
        cli.run(
            convert_cli.main, ["videoprism", "--src", str(tmp_path / "vp.npz"), "--out", str(tmp_path / "b")]
        )
        == 0
    )
    loaded = bundle.from_bundle(str(tmp_path / "b"), "videoprism", VideoPrism, VideoPrismConfig)
    assert loaded.config == config
    video = jax.random.uniform(jax.random.key(0), (2, 4, 32, 32, 3))
    want, got = model(video), loaded(video)
    assert want.shape == (2, 4, 16, 64)
    err = float(np.abs(np.asarray(want) - np.asarray(got)).max())
    print(f"VideoPrism .npz round trip max |error| {err:.1e}")
    assert err < 1e-5


def test_other_sizes_and_lengths():
    model = bundle.build(VideoPrism, variant("tiny"))
    assert model(jax.numpy.zeros((1, 7, 48, 40, 3))).shape == (1, 7, 30, 64)


def test_bad_npz_exits_2(tmp_path, capsys):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    assert (
        cli.run(
            convert_cli.main, ["videoprism", "--src", str(tmp_path / "x.npz"), "--out", str(tmp_path / "b")]
        )
        == 2
    )
    assert "params/" in capsys.readouterr().err and not (tmp_path / "b").exists()
