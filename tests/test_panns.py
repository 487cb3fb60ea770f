"""PANNs CNN14: parity with panns-inference after `salsa.convert panns`; the JAX front end against
torchlibrosa's; the converter's refusals."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchlibrosa = pytest.importorskip("torchlibrosa")

import jax.numpy as jnp  # noqa: E402

from salsa import bundle, cli  # noqa: E402
from salsa.convert import __main__ as convert_cli  # noqa: E402
from salsa.convert.panns import config_from_weights  # noqa: E402
from salsa.models.evaluators.panns import PRESETS, Cnn14, PannsConfig  # noqa: E402
from tests.evaluator_audio import realistic_audio  # noqa: E402


def reference_models():
    """panns_inference.models without running the package's __init__, which downloads a label file."""
    if "panns_inference.models" not in sys.modules:
        spec = importlib.util.find_spec("panns_inference")
        if spec is None:
            pytest.skip("panns-inference is not installed")
        package = types.ModuleType("panns_inference")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules.setdefault("panns_inference", package)
    return importlib.import_module("panns_inference.models")


def _randomise_norms(model) -> None:
    """BatchNorm statistics unlike their defaults (bn0's like real dB values), so each one is checked."""
    g = torch.Generator().manual_seed(1)
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(
                -40 + 10 * torch.randn(n, generator=g) if name == "bn0" else 0.1 * torch.randn(n, generator=g)
            )
            m.running_var.copy_((400.0 if name == "bn0" else 1.0) * (0.5 + torch.rand(n, generator=g)))
            m.weight.data.copy_(1 + 0.1 * torch.randn(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))


def _reference(preset: PannsConfig):
    c = preset
    torch.manual_seed(0)
    ref = reference_models().Cnn14(c.sample_rate, c.window, c.hop, c.mel_bins, c.fmin, c.fmax, c.classes)
    with torch.no_grad():
        _randomise_norms(ref)
    return ref.eval()


@pytest.mark.parametrize("name", ["32k", "16k"])
def test_frontend_matches_torchlibrosa(name):
    from torchlibrosa.stft import LogmelFilterBank, Spectrogram

    c = PRESETS[name]
    spec = Spectrogram(n_fft=c.window, hop_length=c.hop, win_length=c.window, freeze_parameters=True)
    logmel = LogmelFilterBank(
        sr=c.sample_rate, n_fft=c.window, n_mels=c.mel_bins, fmin=c.fmin, fmax=c.fmax, top_db=None
    )
    audio = realistic_audio(c.sample_rate, 1.3)
    with torch.no_grad():
        want = logmel(spec(torch.tensor(audio)))[:, 0].numpy()
    got = np.asarray(Cnn14.log_mel(bundle.abstract(Cnn14, c), jnp.asarray(audio)))
    assert got.shape == want.shape == (2, audio.shape[1] // c.hop + 1, 64)
    err = np.abs(got - want).max()
    print(f"PANNs {name} front end: max |error| {err:.2e} dB over a {np.ptp(want):.0f} dB range")
    assert err < 1e-4 * np.abs(want).max() + 2e-3  # float32 DFT as a conv vs an FFT, near the dB floor
    with pytest.raises(ValueError, match="too few for CNN14"):
        Cnn14.from_log_mel(bundle.abstract(Cnn14, c), jnp.zeros((1, 31, 64)))
    # The converter recognises the front end from the filterbank the checkpoint stores.
    w = {"logmel_extractor.melW": logmel.melW.detach().numpy(), "fc_audioset.weight": np.zeros((527, 1))}
    assert config_from_weights(w, "x.pth") == c


def test_checkpoint_keys_map_onto_the_model():
    """Every tensor of the reference's state dict lands on a parameter of the right shape (shapes only,
    no forward pass, so this runs in the default suite)."""
    from salsa.convert.panns import params_from_weights

    c = PRESETS["32k"]
    ref = reference_models().Cnn14(c.sample_rate, c.window, c.hop, c.mel_bins, c.fmin, c.fmax, c.classes)
    w = {k: np.broadcast_to(np.float32(0), v.shape) for k, v in ref.state_dict().items()}
    params = params_from_weights(w)
    bundle.check_shapes(bundle.abstract(Cnn14, c), params)
    used = {"logmel_extractor.melW", "spectrogram_extractor.stft.conv_real.weight"}
    used |= {"spectrogram_extractor.stft.conv_imag.weight"} | {
        k for k in w if k.endswith("num_batches_tracked")
    }
    assert len(bundle.flatten(params)) == len(w) - len(used)


@pytest.mark.slow  # ~30 s on a shared CPU: an 80M-parameter network built, saved and run twice
def test_cnn14_parity(tmp_path):
    c = PRESETS["16k"]  # the av-benchmark protocol's front end; the network is the same at 32 kHz
    ref = _reference(c)
    # Like the released 16 kHz file, the checkpoint holds numpy arrays beside the model's tensors.
    checkpoint = {"model": ref.state_dict(), "iteration": 0, "statistics": np.arange(3, dtype=np.int64)}
    torch.save(checkpoint, tmp_path / "Cnn14_16k.pth")
    argv = ["panns", "--src", str(tmp_path / "Cnn14_16k.pth"), "--out", str(tmp_path / "b")]
    assert cli.run(convert_cli.main, argv) == 0
    model = bundle.from_bundle(str(tmp_path / "b"), "panns", Cnn14, PannsConfig)
    assert model.config == c
    meta = bundle.read(tmp_path / "b", "panns").meta
    assert meta["sha256"] == hashlib.sha256((tmp_path / "Cnn14_16k.pth").read_bytes()).hexdigest()

    audio = realistic_audio(c.sample_rate, 3.0)
    with torch.no_grad():
        want = ref(torch.tensor(audio))
    got = model(jnp.asarray(audio))
    for key, ours in (
        ("embedding", got["embedding"]),
        ("clipwise_output", 1 / (1 + np.exp(-np.asarray(got["logits"])))),
    ):
        w, o = want[key].numpy(), np.asarray(ours)
        err = np.abs(o - w).max()
        print(f"CNN14 {key}: max |error| {err:.2e}, relative {err / np.abs(w).max():.2e}")
        assert o.shape == w.shape and err <= 1e-4 * np.abs(w).max()
    logits = torch.special.logit(want["clipwise_output"].double()).numpy()
    err = np.abs(np.asarray(got["logits"]) - logits).max()
    print(f"CNN14 logits: max |error| {err:.2e}, relative {err / np.abs(logits).max():.2e}")
    assert err <= 1e-4 * np.abs(logits).max()


def test_missing_and_wrong_files_are_one_line(tmp_path, capsys):
    out = tmp_path / "b"
    assert cli.run(convert_cli.main, ["panns", "--src", str(tmp_path / "nope.pth"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--src" in err and "Cnn14_16k_mAP=0.438.pth" in err
    torch.save({"model": {"fc1.weight": torch.zeros(3, 3)}}, tmp_path / "other.pth")
    assert cli.run(convert_cli.main, ["panns", "--src", str(tmp_path / "other.pth"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--src" in err and "melW" in err
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    assert cli.run(convert_cli.main, ["panns", "--src", str(tmp_path / "junk.pth"), "--out", str(out)]) == 2
    assert "not a torch weights file" in capsys.readouterr().err and not out.exists()
