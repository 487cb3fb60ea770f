"""VGGish: parity with torchvggish after `salsa.convert vggish` (with and without its PCA
postprocessing); the JAX front end against torchvggish's; the converter's refusals."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvggish = pytest.importorskip("torchvggish")

import jax.numpy as jnp  # noqa: E402

from salsa import bundle, cli  # noqa: E402
from salsa.convert import __main__ as convert_cli  # noqa: E402
from salsa.models.evaluators import vggish_frontend  # noqa: E402
from salsa.models.evaluators.vggish import Vggish, VggishConfig, postprocess  # noqa: E402
from tests.evaluator_audio import realistic_audio  # noqa: E402


def test_frontend_matches_torchvggish():
    from torchvggish.vggish_input import waveform_to_examples

    audio = realistic_audio(16000, 3.3)  # 3 examples and a remainder the reference drops
    want = np.stack([waveform_to_examples(a.astype(np.float64), 16000, return_tensor=False) for a in audio])
    got = np.asarray(vggish_frontend.examples(jnp.asarray(audio)))
    assert got.shape == want.shape == (2, 3, 96, 64) and vggish_frontend.num_examples(audio.shape[1]) == 3
    err = np.abs(got - want).max()
    print(f"VGGish front end: max |error| {err:.2e} (log mel, range {want.min():.1f} .. {want.max():.1f})")
    assert err < 1e-4 * np.abs(want).max()
    with pytest.raises(ValueError, match="0.96 s"):
        vggish_frontend.examples(jnp.zeros((1, 15000)))


def _reference():
    torch.manual_seed(0)
    ref = torchvggish.torchvggish.VGG(torchvggish.torchvggish.make_layers(), postprocess=False).eval()
    g = torch.Generator().manual_seed(1)
    vectors = torch.linalg.qr(torch.randn(128, 128, generator=g, dtype=torch.float64))[0] * 40
    means = torch.rand(128, 1, generator=g, dtype=torch.float64) * 0.02
    return ref, vectors.numpy(), means.numpy()


def test_checkpoint_keys_map_onto_the_model():
    """Every tensor of the reference's state dict lands on a parameter of the right shape (shapes only,
    from torch's meta device, so this runs in the default suite)."""
    from salsa.convert.vggish import params_from_weights

    with torch.device("meta"):
        ref = torchvggish.torchvggish.VGG(torchvggish.torchvggish.make_layers(), postprocess=False)
    w = {k: np.broadcast_to(np.float32(0), v.shape) for k, v in ref.state_dict().items()}
    params = params_from_weights(w)
    bundle.check_shapes(bundle.abstract(Vggish, VggishConfig()), params)
    assert len(bundle.flatten(params)) == len(w)


@pytest.mark.slow  # ~25 s on a shared CPU: a 72M-parameter network built, saved and run twice
def test_vggish_parity(tmp_path):
    ref, vectors, means = _reference()
    torch.save(ref.state_dict(), tmp_path / "vggish.pth")
    # The released PCA file holds numpy arrays; the converter must read them without unpickling code.
    torch.save({"pca_eigen_vectors": vectors, "pca_means": means}, tmp_path / "pca.pth")
    argv = ["vggish", "--src", str(tmp_path / "vggish.pth"), "--pca", str(tmp_path / "pca.pth")]
    assert cli.run(convert_cli.main, [*argv, "--out", str(tmp_path / "b")]) == 0
    model = bundle.from_bundle(str(tmp_path / "b"), "vggish", Vggish, VggishConfig)
    pca = bundle.read(tmp_path / "b", "vggish").arrays["pca"]

    audio = realistic_audio(16000, 4.0)
    examples = vggish_frontend.examples(jnp.asarray(audio))  # (2, 4, 96, 64)
    x = torch.tensor(np.asarray(examples).reshape(-1, 1, 96, 64))
    with torch.no_grad():
        released = ref(x).numpy()  # ends in ReLU
        features = ref.features(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        before_relu = ref.embeddings[:-1](features).numpy()  # the av-benchmark protocol's embedding
    raw = np.asarray(model.embed(jnp.asarray(audio)))
    assert raw.shape == (2, 4, 128)
    for name, want, got in (("pre-ReLU", before_relu, raw), ("released", released, np.maximum(raw, 0))):
        err = np.abs(got.reshape(want.shape) - want).max()
        print(f"VGGish {name} embedding: max |error| {err:.2e}, relative {err / np.abs(want).max():.2e}")
        assert err <= 1e-4 * np.abs(want).max()

    pp = torchvggish.torchvggish.Postprocessor.__new__(torchvggish.torchvggish.Postprocessor)
    pp._pca_matrix, pp._pca_means = torch.tensor(vectors).float(), torch.tensor(means).float()
    want = pp.postprocess(torch.tensor(released)).numpy()
    got = np.asarray(postprocess(jnp.maximum(raw, 0), pca["eigen_vectors"], pca["means"])).reshape(want.shape)
    assert want.std() > 0 and np.unique(want).size > 50  # the PCA spreads the codes over 0..255
    # Quantisation: a float32 difference may flip a code sitting on a rounding boundary, never more.
    print(f"VGGish postprocessed: {np.mean(got != want):.2%} codes differ, max {np.abs(got - want).max():g}")
    assert np.abs(got - want).max() <= 1 and np.mean(got != want) < 0.01


def test_missing_and_wrong_files_are_one_line(tmp_path, capsys):
    out = tmp_path / "b"
    assert cli.run(convert_cli.main, ["vggish", "--src", str(tmp_path / "v.pth"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--src" in err and "vggish-10086976.pth" in err
    ref, _, _ = _reference()
    torch.save(ref.state_dict(), tmp_path / "v.pth")
    torch.save({"pca_means": np.zeros(128)}, tmp_path / "pca.pth")
    argv = ["vggish", "--src", str(tmp_path / "v.pth"), "--pca", str(tmp_path / "pca.pth"), "--out", str(out)]
    assert cli.run(convert_cli.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--pca" in err and "pca_eigen_vectors" in err and not out.exists()
    torch.save({"features.0.weight": torch.zeros(64, 1, 3, 3)}, tmp_path / "v.pth")
    assert cli.run(convert_cli.main, ["vggish", "--src", str(tmp_path / "v.pth"), "--out", str(out)]) == 2
    assert "lacks 'features.0.bias'" in capsys.readouterr().err and not out.exists()
