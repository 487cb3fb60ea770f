"""The Oobleck VAE against diffusers' AutoencoderOobleck, stable-audio-tools key layouts, and the chunked
codec's exactness and length rule."""

from __future__ import annotations

import numpy as np
import pytest

from salsa import bundle
from salsa.convert import vae as convert
from salsa.inference import codec as vae_codec
from salsa.inference import windows
from salsa.models.vae import model as vae_lib

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

SMALL = dict(
    encoder_hidden_size=16,
    downsampling_ratios=[2, 4],
    channel_multiples=[1, 2],
    decoder_channels=16,
    decoder_input_channels=8,
    audio_channels=2,
)


@pytest.fixture(scope="module")
def reference():
    """A small diffusers AutoencoderOobleck with every parameter perturbed away from its init."""
    torch.manual_seed(0)
    model = diffusers.AutoencoderOobleck(**SMALL).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("alpha", "beta")):  # zero at init: exp() = 1 would hide a layout error
                p.copy_(0.3 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif name.endswith("weight_g"):
                p.mul_(torch.exp(0.2 * torch.randn_like(p)))
    return model


def _sat_state_dict(sd: dict) -> dict:
    """The diffusers state dict renamed to stable-audio-tools' nn.Sequential layout (the inverse of
    diffusers' scripts/convert_stable_audio.py), with Snake parameters as (C,) and a full-model prefix."""
    n = len(SMALL["downsampling_ratios"])
    out = {}
    for key, v in sd.items():
        parts = key.split(".")
        part, rest = parts[0], parts[1:]
        if rest[0] == "conv1":
            idx, tail = 0, rest[1:]
        elif rest[0] == "snake1":
            idx, tail = n + 1, rest[1:]
        elif rest[0] == "conv2":
            idx, tail = n + 2, rest[1:]
        else:
            idx = int(rest[1]) + 1
            sub = rest[2]
            order = (
                ["res_unit1", "res_unit2", "res_unit3", "snake1", "conv1"]
                if part == "encoder"
                else ["snake1", "conv_t1", "res_unit1", "res_unit2", "res_unit3"]
            )
            tail = ["layers", str(order.index(sub))]
            if sub.startswith("res_unit"):
                tail += ["layers", str(["snake1", "conv1", "snake2", "conv2"].index(rest[3]))] + rest[4:]
            else:
                tail += rest[3:]
        if tail[-1] in ("alpha", "beta"):
            v = v.reshape(-1)
        out[".".join(["pretransform.model", part, "layers", str(idx), *tail])] = v
    out["model.model.unrelated.weight"] = np.zeros(3, np.float32)  # diffusion weights are skipped
    return out


def _compare(model, reference, steps: int = 40, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    hop = model.config.hop
    audio = (0.5 * rng.standard_normal((1, 2, steps * hop))).astype(np.float32)
    z = rng.standard_normal((1, SMALL["decoder_input_channels"], steps)).astype(np.float32)
    with torch.no_grad():
        mean_ref = reference.encode(torch.from_numpy(audio)).latent_dist.mean.numpy()
        audio_ref = reference.decode(torch.from_numpy(z)).sample.numpy()
    mean, _ = model.encode(audio.transpose(0, 2, 1))
    decoded = model.decode(z.transpose(0, 2, 1))
    return (
        float(np.abs(np.asarray(mean) - mean_ref.transpose(0, 2, 1)).max()),
        float(np.abs(np.asarray(decoded) - audio_ref.transpose(0, 2, 1)).max()),
    )


def test_parity_with_diffusers(reference, tmp_path):
    sd = {k: v.numpy() for k, v in reference.state_dict().items()}
    config, params = convert.convert_state_dict(sd)
    assert config.strides == (2, 4) and config.latent_dim == 8 and config.multiples == (1, 2)
    bundle.save_vae(tmp_path / "b", config, params)
    model, stats = bundle.vae_model(tmp_path / "b")
    assert stats is None
    err_mean, err_audio = _compare(model, reference)
    print(f"parity max |error|: latent mean {err_mean:.2e}, decoded audio {err_audio:.2e}")
    assert err_mean < 1e-4 and err_audio < 1e-4


def test_stable_audio_tools_layout_converts_identically(reference):
    sd = {k: v.numpy() for k, v in reference.state_dict().items()}
    _, from_diffusers = convert.convert_state_dict(sd)
    config, from_sat = convert.convert_state_dict(_sat_state_dict(sd))
    a, b = bundle.flatten(from_diffusers), bundle.flatten(from_sat)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert config.hop == 8


def test_folded_weights_convert_to_the_same_function(reference):
    sd = {k: v.numpy() for k, v in reference.state_dict().items()}
    folded = {}
    for k, v in sd.items():
        if k.endswith("weight_v"):
            g = sd[k[: -len("weight_v")] + "weight_g"]
            folded[k[: -len("_v")]] = g * v / np.sqrt((v**2).sum(axis=(1, 2), keepdims=True))
        elif not k.endswith("weight_g"):
            folded[k] = v
    config, params = convert.convert_state_dict(folded)
    err_mean, err_audio = _compare(bundle.materialize(vae_lib.VAE, config, params), reference)
    assert err_mean < 1e-4 and err_audio < 1e-4


def test_not_an_autoencoder_is_refused():
    with pytest.raises(convert.ConvertError, match="encoder"):
        convert.convert_state_dict({"model.weight": np.zeros(3, np.float32)})


def test_variants_geometry():
    assert vae_lib.variant("sao").hop == 2048 and round(vae_lib.variant("sao").latent_rate, 1) == 21.5
    sao43 = vae_lib.variant("sao43")
    assert sao43.hop == 1024 and round(sao43.latent_rate, 2) == 43.07 and sao43.latent_dim == 64
    with pytest.raises(ValueError, match="variant"):
        vae_lib.variant("nope")
    with pytest.raises(ValueError, match="strides"):
        vae_lib.VAEConfig(strides=(3, 4), multiples=(1, 2))


def test_sao43_reuses_every_unchanged_layer():
    small = vae_lib.VAEConfig(
        encoder_channels=4, decoder_channels=4, latent_dim=4, multiples=(1, 2), strides=(2, 4)
    )
    small43 = vae_lib.VAEConfig(
        encoder_channels=4, decoder_channels=4, latent_dim=4, multiples=(1, 2), strides=(1, 4)
    )
    src = bundle.flatten(_params(small, 1))
    params, kept = convert.transplant(_params(small43, 2), bundle.unflatten(src))
    assert kept == ["decoder/block/1/conv_t1", "encoder/block/0/conv1"]
    flat = bundle.flatten(params)
    assert all(np.array_equal(flat[k], src[k]) for k in flat if k.rsplit("/", 1)[0] not in kept)


def _params(config, seed):
    from flax import nnx

    return nnx.state(bundle.build(vae_lib.VAE, config, seed=seed), nnx.Param).to_pure_dict()


@pytest.mark.parametrize("samples", [1, 8 * 37 + 3, 8 * 101 - 5])
def test_chunked_equals_whole_and_length_rule(reference, samples):
    sd = {k: v.numpy() for k, v in reference.state_dict().items()}
    model = bundle.materialize(vae_lib.VAE, *convert.convert_state_dict(sd))
    hop, radius = model.config.hop, vae_lib.receptive_radius(model.config)
    audio = np.random.default_rng(samples).uniform(-0.5, 0.5, (samples, 2)).astype(np.float32)
    whole = vae_codec.encode(model, audio, chunk_frames=10_000)
    chunked = vae_codec.encode(model, audio, chunk_frames=7)
    frames = -(-samples // hop)
    assert whole.shape == chunked.shape == (frames, 8)
    np.testing.assert_allclose(chunked, whole, atol=2e-5)
    if samples > 8 * 100:  # several windows with interior seams: their context is what makes them agree
        assert frames > 7 + 2 * radius[0] and frames > 5 + 2 * radius[1]
    out_whole = vae_codec.decode(model, whole, chunk_frames=10_000)
    out_chunked = vae_codec.decode(model, whole, chunk_frames=5)
    assert out_whole.shape == out_chunked.shape == (frames * hop, 2)
    np.testing.assert_allclose(out_chunked, out_whole, atol=2e-5)


def test_windows_tile_the_clip():
    for total in (1, 5, 17, 64):
        spans = list(windows.spans(total, 4, 3))
        assert [a for _, _, a, _ in spans] == list(range(0, total, 4))
        assert spans[-1][3] == total
        for start, end, a, b in spans:
            assert 0 <= start <= a < b <= end <= total and end - start == min(total, 10)
