"""Synchformer (DeSync): the protocol's numbers and windows, the mel front end against librosa (set up as
torchaudio's MelSpectrogram, which the reference uses), every shape of the released geometry, the
divided attention against a loop, and the converter's key-by-key round trip and refusals. No package
ships Synchformer's model code, so the numerical check against the released file is pending it
(docs/metrics.md)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from salsa import bundle, cli
from salsa.convert import ConvertError
from salsa.convert import __main__ as convert_cli
from salsa.convert.synchformer import UNUSED, convert, key_layout, params_from_weights
from salsa.models.evaluators import synchformer_frontend as fe
from salsa.models.evaluators.synchformer import (
    DividedAttention,
    Synchformer,
    SynchformerConfig,
    desync,
    offset_grid,
    offset_seconds,
    tiny,
)
from tests.evaluator_audio import realistic_audio

F = fe.SynchformerFrontend()


def test_protocol_segments_windows_and_offset_grid():
    frames, samples = fe.clip_lengths(F)
    assert (frames, samples) == (200, 128000)  # the first 8 s at 25 fps / 16 kHz
    assert fe.num_segments(frames, F.segment_frames, F.frame_step) == 24
    assert fe.num_segments(samples, F.segment_samples, F.sample_step) == 24
    assert F.segment_seconds == F.segment_samples / F.sample_rate == 0.64
    assert F.window_seconds == pytest.approx(4.8)
    assert fe.window_starts(24, F) == (0, 10)  # first and last 4.8 s: 0-4.8 s and 3.2-8 s
    assert fe.window_starts(14, F) == (0, 0)
    # what each window reads: frames 0-119 / 80-199 at 25 fps, samples 0-76 799 / 51 200-127 999
    assert fe.window_spans(24, F) == [((0, 120), (0, 76800)), ((80, 200), (51200, 128000))]
    assert fe.clip_lengths(F, 5.44) == (136, 87040)  # int(rate * seconds), as av-benchmark
    with pytest.raises(ValueError, match="14"):
        fe.window_starts(13, F)
    grid = offset_grid()
    np.testing.assert_allclose(grid, np.arange(-10, 11) * 0.2, atol=1e-6)
    assert grid[10] == 0.0
    assert SynchformerConfig().joint_length == 198  # [OFF, 14 x 8 video, MOD, 14 x 6 audio]


def test_desync_is_the_mean_absolute_offset_of_the_first_and_last_window():
    logits = np.zeros((3, 2, 21), np.float32)
    for clip, (first, last) in enumerate([(10, 10), (12, 7), (0, 20)]):
        logits[clip, 0, first] = logits[clip, 1, last] = 1.0
    np.testing.assert_allclose(offset_seconds(logits), [[0, 0], [0.4, -0.6], [-2, 2]], atol=1e-6)
    np.testing.assert_allclose(desync(logits), [0.0, 0.5, 2.0], atol=1e-6)


def test_log_mel_matches_torchaudio_melspectrogram_setup():
    librosa = pytest.importorskip("librosa")
    audio = realistic_audio(16000, 1.0, batch=2)[:, : F.segment_samples]
    ours = np.asarray(fe.log_mel(jnp.asarray(audio)))
    assert ours.shape == (2, 66, 128)
    # torchaudio.transforms.MelSpectrogram(16000, n_fft=1024, win_length=400, hop_length=160, n_mels=128)
    ref = librosa.feature.melspectrogram(
        y=audio, sr=16000, n_fft=1024, win_length=400, hop_length=160, window="hann", center=True,
        pad_mode="reflect", power=2.0, n_mels=128, htk=True, norm=None,
    )  # fmt: skip
    ref = (np.log(np.swapaxes(ref, -1, -2) + 1e-6) - F.mean) / (2 * F.std)
    assert ref.shape == (2, 65, 128)
    np.testing.assert_allclose(ours[:, :65], ref, atol=2e-4)
    np.testing.assert_allclose(ours[:, 65], -F.mean / (2 * F.std), atol=1e-6)  # zero pad after the log


def test_front_end_shapes_and_pixels():
    audio = realistic_audio(16000, 1.6, batch=1)  # 25 600 samples: 4 segments of 10 240 every 5 120
    assert fe.audio_segments(audio).shape == (1, 4, 66, 128)
    small = fe.SynchformerFrontend(image_size=32)
    frames = np.random.default_rng(0).integers(0, 256, (1, 40, 36, 48, 3), dtype=np.uint8)
    assert fe.video_segments(frames, small).shape == (1, 4, 16, 32, 32, 3)
    square = frames[:, :2, :32, :32]
    np.testing.assert_allclose(fe.video_pixels(square, small), square / 127.5 - 1.0, atol=1e-6)
    assert fe.center_crop_offset(298, 224) == 37
    with pytest.raises(ValueError, match="RGB"):
        fe.video_pixels(np.zeros((2, 32, 32)), small)


def _shallow(c: SynchformerConfig) -> SynchformerConfig:
    """The released widths, heads and grids with one block per part (every block alike: the shapes of
    one are the shapes of all; tracing the 27-block model takes ~20 s here)."""
    one = {name: dataclasses.replace(getattr(c, name), depth=1) for name in ("video", "audio", "joint")}
    return dataclasses.replace(c, **one)


@pytest.fixture(scope="module")
def released_shallow():
    return bundle.abstract(Synchformer, _shallow(SynchformerConfig()))


def _shapes_of(model) -> dict:
    graph, state = nnx.split(model)

    def shape(part, *shapes):
        def run(st, *x):
            return getattr(nnx.merge(graph, st), part)(*x)

        return jax.eval_shape(run, state, *(jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes)).shape

    return {
        "video": shape("video", (1, 2, 16, 224, 224, 3)),
        "audio": shape("audio", (1, 2, 66, 128)),
        "offset": shape("offset", (2, 14, 8, 768), (2, 14, 6, 768)),
    }


def test_released_geometry_shapes(released_shallow):
    assert _shapes_of(released_shallow) == {
        "video": (1, 2, 8, 768),
        "audio": (1, 2, 6, 768),
        "offset": (2, 21),
    }


@pytest.mark.slow  # ~45 s on the shared 2-core box: tracing the 237 M-parameter model twice
def test_released_geometry_shapes_at_full_depth():
    model = bundle.abstract(Synchformer, SynchformerConfig())
    assert _shapes_of(model) == {"video": (1, 2, 8, 768), "audio": (1, 2, 6, 768), "offset": (2, 21)}
    zeros = {k: np.broadcast_to(np.float32(0), s) for k, s in key_layout().items()}
    bundle.check_shapes(model, params_from_weights(zeros, SynchformerConfig()))


def test_divided_attention_matches_a_loop_over_groups():
    frames, n, w, heads = 3, 4, 8, 2
    attn = bundle.build(lambda c, rngs: DividedAttention(w, heads, rngs), None)
    x = jax.random.normal(jax.random.key(0), (2, 1 + frames * n, w))
    q, k, v = (np.asarray(f(x)).reshape(2, -1, heads, w // heads) for f in (attn.q, attn.k, attn.v))

    def attend(qi, ki, vi):  # (len, heads, d)
        s = np.einsum("qhd,khd->hqk", qi, ki) / np.sqrt(w // heads)
        p = np.exp(s - s.max(-1, keepdims=True))
        return np.einsum("hqk,khd->qhd", p / p.sum(-1, keepdims=True), vi)

    for along_time in (True, False):
        ref = np.zeros_like(q)
        for b in range(2):
            ref[b, :1] = attend(q[b, :1], k[b], v[b])
            for g in range(n if along_time else frames):
                idx = 1 + (np.arange(frames) * n + g if along_time else g * n + np.arange(n))
                keys = np.concatenate([[0], idx])
                ref[b, idx] = attend(q[b, idx], k[b, keys], v[b, keys])
        ref = np.asarray(attn.out(jnp.asarray(ref.reshape(2, -1, w))))
        got = nnx.jit(lambda m, x, t=along_time: m(x, frames, t))(attn, x)  # one compilation, not one per op
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # ~3 min on the shared 2-core box (eager JAX, two 8 s / 4.8 s clips)
def test_offsets_per_window_follow_the_protocol():
    model = bundle.build(Synchformer, tiny())
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (1, 200, 32, 32, 3), dtype=np.uint8)
    audio = realistic_audio(16000, 8.0, batch=1)
    logits = np.asarray(model.offset_logits(video, audio))
    assert logits.shape == (1, 2, 21)
    # the last window is the clip's last 4.8 s (3.2-8 s) on its own; a 4.8 s clip is one window, twice
    last = np.asarray(model.offset_logits(video[:, 80:], audio[:, 51200:]))
    np.testing.assert_allclose(last[:, 0], logits[:, 1], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(last[:, 1], last[:, 0])
    assert not np.allclose(logits[:, 0], logits[:, 1], atol=1e-3)  # the first window differs
    with pytest.raises(ValueError, match="14"):
        model.offsets(video[:, :100], audio[:, :64000])


def _tagged_state_dict(config: SynchformerConfig) -> dict:
    """The transcribed layout with every value unique: tensor i holds i * 2**17 + 0, 1, 2, ..."""
    out = {}
    for i, (key, shape) in enumerate(key_layout(config).items()):
        size = int(np.prod(shape))
        assert size < 2**17
        out[key] = (i * 2**17 + np.arange(size, dtype=np.float64)).astype(np.float32).reshape(shape)
    return out


def _save(tmp_path, sd: dict, name: str = "synchformer_state_dict.pth") -> str:
    import torch

    path = str(tmp_path / name)
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, path)
    return path


def test_converter_round_trip_key_by_key(tmp_path):
    pytest.importorskip("torch")
    c = tiny()
    sd = _tagged_state_dict(c)
    out = str(tmp_path / "bundle")
    convert(_save(tmp_path, sd), out, c)
    _, config, params = bundle.load(out, "synchformer")
    leaves = bundle.flatten(params)
    # every source tensor but the unused 2D patch embedding lands once, whole, and nothing else is there
    index = {i: key for i, key in enumerate(key_layout(c))}
    seen: dict[str, list] = {}
    for path, leaf in leaves.items():
        tags = np.asarray(leaf, np.float64).ravel()
        for i in np.unique(tags // 2**17).astype(int):
            seen.setdefault(index[i], []).append(path)
    assert set(seen) == set(sd) - set(UNUSED)
    counted = np.concatenate([np.asarray(v, np.float64).ravel() for v in leaves.values()])
    assert len(counted) == len(np.unique(counted)) == sum(sd[k].size for k in seen)
    # and where each should: spot checks of every kind of mapping
    w, v = c.video.width, "vfeat_extractor."
    p = params
    qkv = sd[f"{v}blocks.0.timeattn.qkv.weight"]
    np.testing.assert_array_equal(p["video"]["blocks"][0]["time_attn"]["k"]["kernel"], qkv[w : 2 * w].T)
    np.testing.assert_array_equal(
        p["video"]["blocks"][0]["space_attn"]["out"]["bias"], sd[f"{v}blocks.0.attn.proj.bias"]
    )
    np.testing.assert_array_equal(p["video"]["blocks"][0]["norm3"]["scale"], sd[f"{v}blocks.0.norm3.weight"])
    np.testing.assert_array_equal(
        p["video"]["patch_embed"]["kernel"], sd[f"{v}patch_embed_3d.proj.weight"].transpose(2, 3, 4, 1, 0)
    )
    np.testing.assert_array_equal(p["video"]["time_pos"], sd[f"{v}temp_embed"][0])
    in_proj = sd[f"{v}spatial_attn_agg.self_attn.in_proj_weight"]
    np.testing.assert_array_equal(
        p["video"]["space_pool"]["block"]["attn"]["v"]["kernel"], in_proj[2 * w :].T
    )
    np.testing.assert_array_equal(
        p["video"]["space_pool"]["block"]["mlp"]["fc2"]["kernel"], sd[f"{v}spatial_attn_agg.linear2.weight"].T
    )
    e = "afeat_extractor.ast.embeddings."
    np.testing.assert_array_equal(p["audio"]["ast"]["cls"][1], sd[f"{e}distillation_token"][0, 0])
    np.testing.assert_array_equal(
        p["audio"]["ast"]["encoder"]["blocks"][0]["mlp"]["fc1"]["kernel"],
        sd["afeat_extractor.ast.encoder.layer.0.intermediate.dense.weight"].T,
    )
    np.testing.assert_array_equal(
        p["audio"]["freq_pool"]["cls"], sd["afeat_extractor.freq_attn_agg.cls_token"][0]
    )
    np.testing.assert_array_equal(
        p["offset"]["encoder"]["blocks"][0]["attn"]["q"]["kernel"],
        sd["transformer.blocks.0.attn.query.weight"].T,
    )
    np.testing.assert_array_equal(p["offset"]["head"]["kernel"], sd["transformer.off_head.weight"].T)
    np.testing.assert_array_equal(p["offset"]["pos"], sd["transformer.pos_emb_cfg.pos_emb"][0])
    model = bundle.from_bundle(out, "synchformer", Synchformer, SynchformerConfig)
    assert model.config == c


def test_released_layout_fits_the_released_model(released_shallow):
    layout = key_layout()
    assert len(layout) == 513
    # 905.8 MiB of float32: the 907 MB file MMAudio releases (plus torch's per-tensor bookkeeping)
    assert sum(int(np.prod(s)) for s in layout.values()) * 4 / 2**20 == pytest.approx(905.8, abs=0.1)
    shallow = _shallow(SynchformerConfig())
    zeros = {k: np.broadcast_to(np.float32(0), s) for k, s in key_layout(shallow).items()}
    assert set(key_layout(shallow)) < set(layout)  # blocks 0 of each part: a subset, the same shapes
    assert all(layout[k] == s for k, s in key_layout(shallow).items())
    bundle.check_shapes(released_shallow, params_from_weights(zeros, shallow))


def test_converter_refusals(tmp_path, capsys):
    pytest.importorskip("torch")
    missing = str(tmp_path / "nope.pth")
    argv = ["synchformer", "--src", missing, "--out", str(tmp_path / "o")]
    assert cli.run(convert_cli.main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--src" in err and "synchformer_state_dict.pth" in err
    c = tiny()
    sd = _tagged_state_dict(c)
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    off_head = "transformer.off_head.weight"
    cases = {
        str(text): "not a torch weights file",
        _save(tmp_path, {k: v for k, v in sd.items() if k != off_head}, "a.pth"): f"lacks '{off_head}'",
        _save(
            tmp_path, sd | {"transformer.pos_emb_cfg.pos_emb": np.zeros((1, 197, 32), np.float32)}, "b.pth"
        ): ("pos_emb has shape"),
        _save(tmp_path, sd | {"transformer.extra": np.zeros(3, np.float32)}, "c.pth"): "unexpected tensors",
    }
    for src, message in cases.items():
        out = tmp_path / f"out_{len(message)}"
        with pytest.raises(ConvertError, match=message) as e:
            convert(src, str(out), c)
        assert "--src" in str(e.value) and "synchformer_state_dict.pth" in str(e.value)
        assert not out.exists()
