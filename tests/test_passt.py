"""PaSST: parity with hear21passt after `salsa.convert passt`; the JAX front end against hear21passt's
AugmentMelSTFT; the protocol's 10 s clip; the converter's refusals."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if importlib.util.find_spec("hear21passt") is None:
    pytest.skip("hear21passt is not installed", allow_module_level=True)

import jax.numpy as jnp  # noqa: E402

from salsa import bundle, cli  # noqa: E402
from salsa.convert import ConvertError  # noqa: E402
from salsa.convert import __main__ as convert_cli  # noqa: E402
from salsa.convert.passt import UNUSED, config_from_weights, params_from_weights  # noqa: E402
from salsa.models.encoders.vit import VitConfig  # noqa: E402
from salsa.models.evaluators import passt_frontend  # noqa: E402
from salsa.models.evaluators.passt import Passt, PasstConfig, fit_clip  # noqa: E402
from tests.evaluator_audio import kaldi_mel_banks_torch, realistic_audio  # noqa: E402

SR = 32000


def _stand_ins() -> dict[str, types.ModuleType]:
    """hear21passt imports timm (only to download pretrained files) and torchaudio (for the mel filters
    and training-time masking); both pull a different torch. For those that do not import here,
    stand-ins that do what the reference needs at inference with random weights."""
    out = {}
    try:
        importlib.import_module("timm.models._hub")
    except Exception:
        hub = types.ModuleType("timm.models._hub")
        hub.download_cached_file = None  # only used for pretrained=True
        out |= {"timm": types.ModuleType("timm"), "timm.models": types.ModuleType("timm.models")}
        out["timm.models._hub"] = hub
    try:
        importlib.import_module("torchaudio.compliance.kaldi")
    except Exception:
        ta, compliance, kaldi, transforms = (types.ModuleType(n) for n in ("torchaudio", "c", "k", "t"))
        kaldi.get_mel_banks = kaldi_mel_banks_torch
        compliance.kaldi, ta.compliance, ta.transforms = kaldi, compliance, transforms
        # training-time masking only; eval mode never calls it
        transforms.FrequencyMasking = transforms.TimeMasking = lambda *a, **k: torch.nn.Identity()
        out |= {"torchaudio": ta, "torchaudio.compliance": compliance, "torchaudio.compliance.kaldi": kaldi}
        out["torchaudio.transforms"] = transforms
    return out


def reference():
    """(hear21passt.models.passt, hear21passt.models.preprocess); the stand-ins live in sys.modules
    only while these import (the modules keep their own references), so no other test sees them."""
    names = ("hear21passt.models.passt", "hear21passt.models.preprocess")
    if not all(n in sys.modules for n in names):
        stand_ins = _stand_ins()
        sys.modules.update(stand_ins)
        try:
            for n in names:
                importlib.import_module(n)
        finally:
            for n in stand_ins:
                del sys.modules[n]
    return tuple(sys.modules[n] for n in names)


def _reference_mel():
    """The front end of hear21passt.base.get_basic_model (the av-benchmark protocol's), in eval mode."""
    preprocess = reference()[1]
    mel = preprocess.AugmentMelSTFT(
        n_mels=128, sr=SR, win_length=800, hopsize=320, n_fft=1024, freqm=48, timem=192, htk=False,
        fmin=0.0, fmax=None, norm=1, fmin_aug_range=10, fmax_aug_range=2000,
    )  # fmt: skip
    return mel.eval()


def _reference_net(**kw):
    """A randomly initialised PaSST as hear21passt builds the protocol's passt_s_swa_p16_128_ap476
    (distilled, 16x16 patches at stride 10, 128 x 998 input grid); `kw` shrinks it for fast tests."""
    passt = reference()[0]
    torch.manual_seed(0)
    args = dict(
        img_size=(128, 998), patch_size=16, stride=(10, 10), in_chans=1, num_classes=527, distilled=True
    )
    net = passt.PaSST(**{**args, **kw}).eval()
    with torch.no_grad():  # the head is zero-initialised; give every tensor a visible value
        g = torch.Generator().manual_seed(1)
        for name, p in net.named_parameters():
            if name.startswith("head") or "norm" in name:
                p.copy_(
                    (1.0 if p.ndim == 1 and name.endswith("weight") else 0.0)
                    + 0.1 * torch.randn(p.shape, generator=g)
                )
    return net


def _run_reference(mel, net, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        logits, embedding = net(mel(torch.tensor(audio)).unsqueeze(1))
    return embedding.numpy(), logits.numpy()


def _convert(net, tmp_path) -> Passt:
    torch.save(net.state_dict(), tmp_path / "passt.pt")
    argv = ["passt", "--src", str(tmp_path / "passt.pt"), "--out", str(tmp_path / "b")]
    assert cli.run(convert_cli.main, argv) == 0
    meta = bundle.read(tmp_path / "b", "passt").meta
    assert meta["sha256"] == hashlib.sha256((tmp_path / "passt.pt").read_bytes()).hexdigest()
    return bundle.from_bundle(str(tmp_path / "b"), "passt", Passt, PasstConfig)


def _assert_close(name: str, got, want) -> None:
    got = np.asarray(got)
    err = np.abs(got - want).max()
    print(f"PaSST {name}: max |error| {err:.2e}, relative {err / np.abs(want).max():.2e}")
    assert got.shape == want.shape and err <= 1e-4 * np.abs(want).max()


def test_frontend_matches_hear21passt():
    audio = realistic_audio(SR, 10.0)
    with torch.no_grad():
        want = _reference_mel()(torch.tensor(audio)).numpy()  # (batch, mels, frames)
    got = np.asarray(passt_frontend.log_mel(jnp.asarray(audio)))
    assert got.shape == (2, 1000, 128) and want.shape == (2, 128, 1000)
    err = np.abs(got - want.swapaxes(1, 2))
    print(f"PaSST front end: max |error| {err.max():.2e}, mean {err.mean():.1e}, range {np.ptp(want):.1f}")
    # float32 FFTs: the error is a fraction of the loud bins' energy, so it shows in the quietest mel
    # bins (log of ~1e-5): a few 1e-4 (0.2 % of their power); everywhere else far smaller.
    assert err.max() <= 1e-3 and np.percentile(err, 99.9) <= 1e-4 and err.mean() <= 1e-5


def test_small_passt_parity_through_the_converter(tmp_path):
    """A 2-block, 128-wide PaSST on the protocol's 10 s input: every tensor the converter maps takes
    part in the forward pass, so a wrong transpose or split shows here in the default suite."""
    net = _reference_net(embed_dim=128, depth=2, num_heads=2)
    audio = realistic_audio(SR, 10.0)
    want_embedding, want_logits = _run_reference(_reference_mel(), net, audio)
    model = _convert(net, tmp_path)
    assert model.config.vit.heads == 2 and model.config.max_frames == 998
    got = model.embed_clips(jnp.asarray(audio))
    _assert_close("small embedding", got["embedding"], want_embedding)
    _assert_close("small logits", got["logits"], want_logits)


def test_checkpoint_keys_map_onto_the_model():
    """Every tensor of the full-size reference's state dict but the distillation head lands on a
    parameter of the right shape (shapes only: no forward pass)."""
    net = reference()[0].PaSST(img_size=(128, 998), stride=(10, 10), distilled=True, num_classes=527)
    w = {k: np.broadcast_to(np.float32(0), v.shape) for k, v in net.state_dict().items()}
    c = config_from_weights(w, "x.pt")
    assert c == PasstConfig()
    params = params_from_weights(w, c)
    bundle.check_shapes(bundle.abstract(Passt, c), params)
    qkv = sum(k.endswith("attn.qkv.weight") or k.endswith("attn.qkv.bias") for k in w)
    # each qkv becomes q, k, v; cls_token and dist_token become one (2, width) parameter
    assert len(bundle.flatten(params)) == len(w) - len(UNUSED) + 2 * qkv - 1


def test_protocol_clip_is_ten_seconds():
    c = PasstConfig()
    assert c.clip_samples == 320000 and c.frontend.num_frames(c.clip_samples) == 1000
    assert c.grid(1000) == (12, 99) and c.grid() == (12, 99)
    eight = np.ones((1, 8 * SR), np.float32)
    padded = np.asarray(fit_clip(eight, c.clip_samples))
    assert padded.shape == (1, 320000) and padded[0, : 8 * SR].all() and not padded[0, 8 * SR :].any()
    long = np.arange(12 * SR, dtype=np.float32)[None]
    assert np.array_equal(np.asarray(fit_clip(long, c.clip_samples))[0], long[0, :320000])
    small = PasstConfig(
        vit=VitConfig(width=64, depth=1, mlp_dim=64, heads=1, eps=1e-6, gelu_approximate=False)
    )
    with pytest.raises(ValueError, match="fit_clip"):  # 11 s: past the positions the model was trained with
        bundle.abstract(Passt, small).from_log_mel(jnp.zeros((1, 1100, 128)))


@pytest.mark.slow  # ~1 min on a shared CPU: the 86M-parameter ViT-B built, saved, converted, run twice
def test_passt_parity(tmp_path):
    net = _reference_net()
    audio = realistic_audio(SR, 8.0)  # the protocol: first 8 s, padded to 10 s
    padded = np.asarray(fit_clip(audio, PasstConfig().clip_samples))
    want_embedding, want_logits = _run_reference(_reference_mel(), net, padded)
    model = _convert(net, tmp_path)
    assert model.config == PasstConfig()
    got = model.embed_clips(jnp.asarray(audio))
    _assert_close("embedding", got["embedding"], want_embedding)
    _assert_close("logits", got["logits"], want_logits)


def test_missing_and_wrong_files_are_one_line(tmp_path, capsys):
    out = tmp_path / "b"
    assert cli.run(convert_cli.main, ["passt", "--src", str(tmp_path / "nope.pt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--src" in err and "passt-s-f128-p16-s10-ap.476-swa.pt" in err
    torch.save({"cls_token": torch.zeros(1, 1, 64)}, tmp_path / "other.pt")
    assert cli.run(convert_cli.main, ["passt", "--src", str(tmp_path / "other.pt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--src" in err and "dist_token" in err
    assert not out.exists()
    # A position grid another front end would need (8 frequency rows, not the 12 of 128 mels) is refused.
    zeros = {
        "cls_token": (1, 1, 128), "dist_token": (1, 1, 128), "freq_new_pos_embed": (1, 128, 8, 1),
        "time_new_pos_embed": (1, 128, 1, 99), "head.1.weight": (527, 128),
        "blocks.0.attn.qkv.weight": (384, 128), "blocks.0.mlp.fc1.weight": (512, 128),
        "patch_embed.proj.weight": (128, 1, 16, 16),
    }  # fmt: skip
    with pytest.raises(ConvertError, match="--src 'x.pt': 8 frequency patch rows.*gives 12"):
        config_from_weights({k: np.zeros(v, np.float32) for k, v in zeros.items()}, "x.pt")
