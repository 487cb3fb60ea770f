"""AST: parity with transformers after `salsa.convert ast`; the JAX front end against librosa."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax.numpy as jnp  # noqa: E402

from salsa import bundle  # noqa: E402
from salsa.convert import __main__ as convert_cli  # noqa: E402
from salsa.models.encoders.ast import Ast, AstConfig, pooled  # noqa: E402
from salsa.models.encoders.ast_frontend import FrontendConfig, log_mel, mel_filterbank, mel_power  # noqa: E402


def test_ast_parity(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.ASTConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_mel_bins=32,
        max_length=40,
        frequency_stride=10,
        time_stride=8,
    )
    ref = transformers.ASTModel(cfg).eval()
    ref.save_pretrained(tmp_path / "hf")
    assert convert_cli.main(["ast", "--src", str(tmp_path / "hf"), "--out", str(tmp_path / "b")]) == 0
    model = bundle.from_bundle(str(tmp_path / "b"), "ast", Ast, AstConfig)
    mel = np.random.default_rng(0).normal(size=(2, 40, 32)).astype(np.float32)
    with torch.no_grad():
        out = ref(torch.tensor(mel))
    tokens = model(jnp.asarray(mel))
    err_tokens = np.abs(np.asarray(tokens) - out.last_hidden_state.numpy()).max()
    err_pooled = np.abs(np.asarray(pooled(tokens)) - out.pooler_output.numpy()).max()
    print(f"AST max |error|: tokens {err_tokens:.2e}, pooled {err_pooled:.2e}")
    assert err_tokens < 1e-4 and err_pooled < 1e-4
    assert model.patch_grid(tokens, 40).shape == (2, 2, 4, 32)
    # Shorter inputs (sync snippets) resize the time positions instead of failing.
    assert model(jnp.asarray(mel[:, :24])).shape == (2, 2 + 2 * 2, 32)


def test_frontend_matches_librosa():
    librosa = pytest.importorskip("librosa")
    c = FrontendConfig()
    np.testing.assert_allclose(
        mel_filterbank(16000, 512, 128), librosa.filters.mel(sr=16000, n_fft=512, n_mels=128).T, atol=1e-6
    )
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 10667).astype(np.float32)
    ref = librosa.feature.melspectrogram(
        y=audio, sr=16000, n_fft=512, hop_length=160, win_length=400, center=False, n_mels=128
    ).T
    ours = np.asarray(mel_power(jnp.asarray(audio), c))
    assert ours.shape == ref.shape == (c.num_frames(10667), 128) == (64, 128)
    rel = np.abs(ours - ref).max() / ref.max()
    print(f"front end vs librosa: max relative error {rel:.1e}")
    assert rel < 1e-4
    assert log_mel(jnp.zeros((3, 16000))).shape == (3, 97, 128)
