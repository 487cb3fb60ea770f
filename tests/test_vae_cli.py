"""The conversion and codec command lines: round trips, the length rule, statistics, and bad input
(exit code 2, one line, no output file)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from salsa import bundle as bundles
from salsa import cli, codec
from salsa.convert import __main__ as convert_main
from salsa.models.vae import model as vae_lib

SMALL = vae_lib.VAEConfig(
    encoder_channels=4, decoder_channels=4, latent_dim=4, multiples=(1, 2), strides=(2, 4), audio_channels=2
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("vae") / "bundle"
    params = bundles.params_of(bundles.build(vae_lib.VAE, SMALL, seed=3))
    bundles.save_vae(path, SMALL, params)
    return str(path)


def test_encode_decode_round_trip_any_rate_and_channels(bundle, tmp_path):
    wav, npy, out = tmp_path / "in.wav", tmp_path / "z.npy", tmp_path / "out.wav"
    mono_22k = np.sin(np.linspace(0, 200, 2205)).astype(np.float32) * 0.5  # 0.1 s, mono, 22.05 kHz
    soundfile.write(wav, mono_22k, 22050)
    assert codec.main(["encode", "--checkpoint", bundle, str(wav), str(npy), "--chunk-frames", "64"]) == 0
    z = np.load(npy)
    frames = -(-4410 // SMALL.hop)  # resampled to 44.1 kHz
    assert z.shape == (frames, 4) and z.dtype == np.float32
    assert codec.main(["decode", "--checkpoint", bundle, str(npy), str(out)]) == 0
    audio, rate = soundfile.read(out)
    assert rate == 44100 and audio.shape == (frames * SMALL.hop, 2)


def test_stats_then_normalized_round_trip(bundle, tmp_path):
    # a private copy: stats rewrite the bundle
    config, params, _, _ = bundles.load_vae(bundle)
    path = str(tmp_path / "b")
    bundles.save_vae(path, config, params)
    wav, npy = tmp_path / "in.wav", tmp_path / "z.npy"
    soundfile.write(wav, np.zeros((800, 2), np.float32), 44100)
    assert cli.run(codec.main, ["encode", "--checkpoint", path, str(wav), str(npy), "--normalize"]) == 2
    assert not npy.exists()
    args = ["stats", "--checkpoint", path, "--data", "synthetic", "--clips", "2", "--seconds", "2"]
    assert codec.main(args) == 0
    _, _, stats, meta = bundles.load_vae(path)
    assert stats["mean"].shape == (4,) and (stats["std"] > 0).all() and meta["stats_clips"] == 2
    assert codec.main(["encode", "--checkpoint", path, str(wav), str(npy)]) == 0
    raw = np.load(npy)
    assert codec.main(["encode", "--checkpoint", path, str(wav), str(npy), "--normalize"]) == 0
    np.testing.assert_allclose(np.load(npy), (raw - stats["mean"]) / stats["std"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "case",
    ["missing_input", "not_audio", "bad_latents", "wrong_channels", "bad_extension", "not_a_bundle"],
)
def test_bad_input_exits_2_without_output(bundle, tmp_path, case, capsys):
    out_npy, out_wav = tmp_path / "o.npy", tmp_path / "o.wav"
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    np.save(tmp_path / "z3.npy", np.zeros((5, 3), np.float32))
    np.save(tmp_path / "z.npy", np.zeros((5, 4), np.float32))
    argv = {
        "missing_input": ["encode", "--checkpoint", bundle, str(tmp_path / "nope.wav"), str(out_npy)],
        "not_audio": ["encode", "--checkpoint", bundle, str(junk), str(out_npy)],
        "bad_latents": ["decode", "--checkpoint", bundle, str(junk), str(out_wav)],
        "wrong_channels": ["decode", "--checkpoint", bundle, str(tmp_path / "z3.npy"), str(out_wav)],
        "bad_extension": ["decode", "--checkpoint", bundle, str(tmp_path / "z.npy"), str(tmp_path / "o.mp3")],
        "not_a_bundle": ["encode", "--checkpoint", str(tmp_path), str(junk), str(out_npy)],
    }[case]
    assert cli.run(codec.main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith((".o", "o."))]
    assert leftovers == []


def test_convert_cli_diffusers_folder_and_sao43(tmp_path):
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    ref = diffusers.AutoencoderOobleck(
        encoder_hidden_size=8,
        downsampling_ratios=[2, 4],
        channel_multiples=[1, 2],
        decoder_channels=8,
        decoder_input_channels=4,
        audio_channels=1,
        sampling_rate=16000,
    )
    ref.save_pretrained(tmp_path / "hf")  # config.json + diffusion_pytorch_model.safetensors
    assert (
        convert_main.main(["vae", "--src", str(tmp_path / "hf"), "--out", str(tmp_path / "b"), "--sao43"])
        == 0
    )
    config, _, _, meta = bundles.load_vae(tmp_path / "b")
    assert config.strides == (1, 4) and config.sample_rate == 16000 and config.audio_channels == 1
    assert meta["sao43_initialised"] == ["decoder/block/1/conv_t1", "encoder/block/0/conv1"]
    # the real entry point, on bad input
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    argv = ["vae", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "c")]
    bad = subprocess.run(
        [sys.executable, "-m", "salsa.convert", *argv], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "no such file" in bad.stderr and not (tmp_path / "c").exists()


def test_a_vae_bundle_of_the_older_layout_still_loads_and_errors_name_file_and_array(bundle, tmp_path):
    """Users converted VAEs before the one bundle format: vae.json (config, stats as lists, meta) +
    params.npz must keep loading, statistics included; a wrong-size statistic names stats.npz."""
    import json
    import shutil

    config, params, _, _ = bundles.load_vae(bundle)
    old = tmp_path / "old"
    old.mkdir()
    shutil.copyfile(os.path.join(bundle, "params.npz"), old / "params.npz")
    stats = {"mean": [0.5] * 4, "std": [2.0] * 4}
    doc = {"config": config.to_dict(), "stats": stats, "meta": {"source": "x"}}
    (old / "vae.json").write_text(json.dumps(doc))
    again, again_params, got, meta = bundles.load_vae(old)
    assert again == config and meta == {"source": "x"}
    np.testing.assert_array_equal(got["std"], np.full(4, 2.0, np.float32))
    for k, v in bundles.flatten(params).items():
        np.testing.assert_array_equal(bundles.flatten(again_params)[k], v)
    wav, npy = tmp_path / "in.wav", tmp_path / "z.npy"
    soundfile.write(wav, np.zeros((800, 2), np.float32), 44100)
    assert codec.main(["encode", "--checkpoint", str(old), str(wav), str(npy), "--normalize"]) == 0
    new = tmp_path / "new"
    bundles.save_vae(new, config, params, {"mean": np.zeros(3), "std": np.ones(4)})
    assert sorted(os.listdir(new)) == ["config.json", "params.npz", "stats.npz"]
    with pytest.raises(bundles.BundleError, match=r"stats\.npz: array 'mean' must have 4 entries"):
        bundles.load_vae(new)
