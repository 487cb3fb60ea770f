"""The pipeline checkpoint (save, load, assemble, export) and the Python API's window mechanics.

Components have random weights (salsa/testing.py): enough to check shapes, rates, splices and
errors, not sound quality.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from configs.tiny import get_config
from salsa import bundle, testing
from salsa import pipeline as pipeline_cli
from salsa.inference import checkpoint, long_form, pipeline
from salsa.inference import codec as vae_codec
from salsa.models.generator.model import Generator, GeneratorConfig


@pytest.fixture(scope="module")
def tiny(tiny_pipeline_dir):
    return pipeline.load(tiny_pipeline_dir)


def _frames(seconds: float, fps: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (round(seconds * fps), 32, 32, 3), dtype=np.uint8)


def test_load_restores_every_component_with_the_config_geometry(tiny, tiny_pipeline_dir, tmp_path):
    stored = bundle.load(os.path.join(tiny_pipeline_dir, "generator"), "generator")[2]
    loaded = bundle.params_of(tiny.generator)
    assert bundle.flatten(stored).keys() == bundle.flatten(loaded).keys()
    for k, v in bundle.flatten(stored).items():
        np.testing.assert_array_equal(v, bundle.flatten(loaded)[k])
    assert (tiny.sample_rate, tiny.channels) == (16000, 1)
    assert tiny.frame_sizes == ((32, 32), (32, 32))
    assert tiny.text_features("rain on a tin roof").shape == (64,)
    doc = json.loads(pathlib.Path(tiny_pipeline_dir, "pipeline.json").read_text())
    assert doc["components"] == {
        "generator": "generator",
        "vae": "vae",
        "siglip": "siglip",
        "sync": "sync",
        "tokenizer": "tokenizer.json",
    }
    # assemble from the parts (a generator bundle) gives the same checkpoint
    root = os.path.dirname(tiny_pipeline_dir)
    out = tmp_path / "assembled"
    args = ["assemble", "--generator", os.path.join(tiny_pipeline_dir, "generator"), "--out", str(out)]
    for name in ("vae", "siglip", "sync"):
        args += [f"--{name}", os.path.join(root, name)]
    assert pipeline_cli.main(args) == 0
    again = pipeline.load(out)
    assert again.tokenizer is None and again.config.to_dict() == tiny.config.to_dict()


def _broken(src: str, dst, edit) -> str:
    shutil.copytree(src, dst)
    path = pathlib.Path(dst, "pipeline.json")
    doc = json.loads(path.read_text())
    edit(doc, str(dst))
    path.write_text(json.dumps(doc))
    return str(dst)


def test_load_names_each_problem_in_one_sentence(tiny_pipeline_dir, tmp_path):
    def width(doc, d):
        doc["generator_config"]["model"]["width"] = 128

    def sync_dim(doc, d):
        doc["generator_config"]["features"]["sync_dim"] = 32

    def no_stats(doc, d):
        pathlib.Path(d, "vae", "stats.npz").unlink()

    def truncated(doc, d):
        pathlib.Path(d, "generator", "params.npz").write_bytes(b"PK\x03\x04 broken")

    cases = {
        str(tmp_path / "missing"): "no such checkpoint folder",
        str(tmp_path): "no pipeline.json",
        _broken(tiny_pipeline_dir, tmp_path / "w", width): "Generator parameters do not match its config",
        _broken(tiny_pipeline_dir, tmp_path / "s", sync_dim): "sync width is 64 but the generator config's",
        _broken(tiny_pipeline_dir, tmp_path / "n", no_stats): "has no latent statistics",
        _broken(tiny_pipeline_dir, tmp_path / "t", truncated): "unreadable generator bundle",
    }
    garbage = tmp_path / "garbage"
    shutil.copytree(tiny_pipeline_dir, garbage)
    (garbage / "pipeline.json").write_text("{not json")
    cases[str(garbage)] = "unreadable pipeline description"
    for path, needle in cases.items():
        with pytest.raises(pipeline.PipelineError) as e:
            pipeline.load(path)
        assert needle in str(e.value) and "\n" not in str(e.value), (path, str(e.value))


def test_export_writes_a_pipeline_or_only_the_generator(tiny_pipeline_dir, tmp_path):
    config = get_config()
    params = testing.random_params(Generator, GeneratorConfig.from_config(config), 5)
    toy = tmp_path / "toy"
    config.data.dir = str(toy / "data")
    assert checkpoint.export(config, params, str(toy)) == str(toy / "pipeline" / "generator")
    assert sorted(os.listdir(toy / "pipeline")) == ["generator"]
    root = os.path.dirname(tiny_pipeline_dir)
    (toy / "config.json").write_text("{}")  # a training workdir has its own config.json
    parts = [a for name in ("vae", "siglip", "sync") for a in (f"--{name}", os.path.join(root, name))]
    assert pipeline_cli.main(["assemble", "--generator", str(toy), *parts, "--out", str(toy / "ckpt")]) == 0
    data = tmp_path / "extracted"
    data.mkdir()
    parts = {name: os.path.join(root, name) for name in ("vae", "siglip", "sync")}
    (data / "extraction.json").write_text(
        json.dumps({"format": 1, "components": {**parts, "tokenizer": None}})
    )
    config.data.dir = str(data)
    run = tmp_path / "run"
    assert checkpoint.export(config, params, str(run)) == str(run / "pipeline")
    # features extracted on another machine: the components are not here, so the generator alone, not a
    # crash at the end of training
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "extraction.json").write_text(
        json.dumps({"format": 1, "components": {**parts, "vae": "/not/here/vae", "tokenizer": None}})
    )
    config.data.dir = str(elsewhere)
    run2 = tmp_path / "run2"
    assert checkpoint.export(config, params, str(run2)) == str(run2 / "pipeline" / "generator")
    p = pipeline.load(run / "pipeline")
    assert p.tokenizer is None
    np.testing.assert_array_equal(
        bundle.flatten(bundle.params_of(p.generator))["final/kernel"], params["final"]["kernel"]
    )


def test_windows_start_on_video_frames_and_overlap_by_the_context():
    geo = long_form.geometry(get_config())  # tiny: 2 s windows, 0.5 s context, 62.5 latent frames/s
    assert (geo.latents, geo.semantic, geo.sync, geo.step_s) == (125, 16, 48, 1.5)
    for k in range(1, 40):
        assert geo.semantic_start(k) == 12 * k and geo.sync_start(k) == 36 * k
        overlap = geo.latent_start(k - 1) + geo.latents - geo.latent_start(k)
        assert overlap in (31, 32)  # 0.5 s at 62.5 Hz, rounded either way
    odd = long_form.geometry(get_config(), window_s=2.0, context_s=0.3)
    assert odd.step_s == 1.625  # 1.7 s rounded down to whole 1/8 s
    assert geo.num_windows(3.0) == 2 and geo.num_windows(2.0) == 1
    with pytest.raises(ValueError, match="shorter than one latent frame"):
        geo.total_latents(0.01)
    with pytest.raises(ValueError, match="context from 0 s up to less than the window"):
        long_form.geometry(get_config(), window_s=1.0, context_s=1.0)


def test_stream_decoder_equals_whole_clip_decoding(tiny):
    rng = np.random.default_rng(0)
    for total in (150, 333):
        z = rng.standard_normal((total, 16)).astype(np.float32)
        dec = vae_codec.StreamDecoder(tiny.vae, chunk_frames=40)
        parts, i = [], 0
        while i < total:
            n = int(rng.integers(1, 60))
            parts.append(dec.push(z[i : i + n]))
            i += n
        parts.append(dec.finish())
        np.testing.assert_array_equal(np.concatenate(parts), vae_codec.decode(tiny.vae, z, chunk_frames=40))


def test_stream_decoder_decodes_a_clip_that_fits_one_window_once(tiny, monkeypatch):
    """push decodes the first window, and finish shifts the last window back onto that same one: a
    short clip (every evaluation clip) costs one decoder call, not two, and the same audio."""
    z = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    calls = []
    decode_window = vae_codec._decode_window
    monkeypatch.setattr(
        vae_codec, "_decode_window", lambda m, x: calls.append(x.shape) or decode_window(m, x)
    )
    dec = vae_codec.StreamDecoder(
        tiny.vae, chunk_frames=50 - 2 * vae_codec.receptive_radius(tiny.vae.config)[1]
    )
    audio = np.concatenate([dec.push(z), dec.finish()])
    assert calls == [(1, 50, 16)]
    np.testing.assert_array_equal(audio, vae_codec.decode(tiny.vae, z))


def test_inpainted_reference_is_kept_exactly_and_windows_join_seamlessly(tiny):
    """A reference placed across a window boundary comes back as its VAE round trip; the audio is the
    whole latent sequence decoded at once (no per-window edges); each window's context is the previous
    window's output exactly. With random weights the sample-level jump test of the issue cannot tell
    a seam from the noise-like sound, so the exact invariants above are what make the joins seamless."""
    sec, at = 5.0, 1.25
    rng = np.random.default_rng(1)
    ref = (0.3 * np.sin(np.arange(int(0.75 * 16000)) * 0.05)[:, None]).astype(np.float32)
    ref += 0.01 * rng.standard_normal(ref.shape).astype(np.float32)
    out = tiny.extend(_frames(sec, 8), _frames(sec, 24), reference=ref, reference_at=at, steps=1, seed=3)
    geo = long_form.geometry(tiny.config)
    hop, rate = tiny.config.audio.hop, geo.latent_rate
    assert out.latents.shape == (geo.total_latents(sec), 16) and out.audio.shape == (round(sec * 16000), 1)
    # the reference span: exactly its (normalized) VAE latents, and in audio its round trip
    z_ref = tiny.reference_latents(ref)
    a = round(at * rate)
    np.testing.assert_array_equal(out.latents[a : a + len(z_ref)], z_ref)
    trip = vae_codec.decode(tiny.vae, vae_codec.denormalize(z_ref, tiny.vae_stats))
    margin = vae_codec.receptive_radius(tiny.vae.config)[1] * hop  # beyond it the decoder sees only z_ref
    inner = slice(margin, len(z_ref) * hop - margin)
    got = out.audio[a * hop : (a + len(z_ref)) * hop]
    np.testing.assert_allclose(got[inner], trip[inner], atol=1e-3 * np.abs(trip).max())
    # decoding: equal to decoding the whole sequence in one go
    chunk = geo.latents - 2 * vae_codec.receptive_radius(tiny.vae.config)[1]  # as decode_windows
    whole = vae_codec.decode(tiny.vae, vae_codec.denormalize(out.latents, tiny.vae_stats), chunk)
    whole = whole[: len(out.audio)]
    np.testing.assert_allclose(out.audio, whole, atol=1e-4 * np.abs(whole).max())
    # window boundaries: where new latents follow the context, the jump is an ordinary one
    jumps = np.abs(np.diff(out.audio[:, 0]))
    bounds = [(geo.latent_start(k - 1) + geo.latents) * hop for k in range(1, geo.num_windows(sec))]
    inside = np.delete(jumps, [b - 1 for b in bounds])
    assert all(jumps[b - 1] <= np.percentile(inside, 99.9) for b in bounds)


def test_each_window_continues_from_the_previous_output(tiny):
    """The previous window's end is context (guided at 1, whatever the reference scale), not a reference."""
    geo = long_form.geometry(tiny.config)
    clip = tiny.clip(_frames(4, 8), _frames(4, 24), geo)
    seen = []
    real = long_form.sample_windows

    def spy(model, cond, noise, reference, reference_mask, **kw):
        out = real(model, cond, noise, reference, reference_mask, **kw)
        context = np.asarray(kw["context_mask"][0])
        seen.append((np.asarray(reference[0]), np.asarray(reference_mask[0]), context, np.asarray(out[0])))
        return out

    long_form.sample_windows = spy
    try:
        events = list(long_form.run(tiny, [clip], geo=geo, steps=1, cfg=4.0))
    finally:
        long_form.sample_windows = real
    assert [e.index for e in events] == list(range(len(seen))) and events[-1].last
    assert not seen[0][1].any() and not seen[0][2].any()
    for k in range(1, len(seen)):
        overlap = geo.latent_start(k - 1) + geo.latents - geo.latent_start(k)
        ref, mask, context, out = seen[k]
        assert context[:overlap].all() and not context[overlap:].any() and not mask.any()
        np.testing.assert_array_equal(ref[:overlap], seen[k - 1][3][-overlap:])
        np.testing.assert_array_equal(out[:overlap], seen[k - 1][3][-overlap:])  # returned bit-exact
    np.testing.assert_array_equal(np.concatenate([e.latents for e in events])[:125], seen[0][3])


def test_a_users_reference_stays_a_reference_where_it_meets_the_previous_window(tiny, monkeypatch):
    """A reference span across a window's start: its latents and the reference mask win over the
    previous window's end there; the rest of that end is context."""
    geo = long_form.geometry(tiny.config)
    start1 = geo.latent_start(1)
    span = np.full((20, tiny.config.audio.latent_dim), 7.0, np.float32)
    clip = tiny.clip(_frames(4, 8), _frames(4, 24), geo)
    clip.reference, clip.reference_start = span, start1 - 5  # 5 frames in window 0, 15 in window 1
    seen = []

    def spy(model, cond, noise, reference, reference_mask, *, context_mask=None, steps, guidance, grid):
        seen.append((np.asarray(reference[0]), np.asarray(reference_mask[0]), np.asarray(context_mask[0])))
        return np.asarray(noise)

    monkeypatch.setattr(long_form, "sample_windows", spy)
    list(long_form.run(tiny, [clip], geo=geo, steps=1, cfg=4.0))
    overlap = geo.latents - start1
    ref, mask, context = seen[1]
    assert mask[:15].all() and not mask[15:].any()
    assert not context[:15].any() and context[15:overlap].all() and not context[overlap:].any()
    np.testing.assert_array_equal(ref[:15], span[5:])
    assert seen[0][1][start1 - 5 : start1].all() and not seen[0][2].any()


def test_windows_without_a_reference_skip_the_reference_scales_branch(tiny, monkeypatch):
    """A reference scale other than 1 and the video's costs a third branch; windows no reference
    reaches sample the same thing without it (v(C,A) = v(C)), and Eq. 3 keeps its two branches."""
    from salsa.sampling.guidance import Guidance

    geo = long_form.geometry(tiny.config)
    seen = []

    def spy(model, cond, noise, reference, reference_mask, *, context_mask=None, steps, guidance, grid):
        seen.append((bool(np.asarray(reference_mask).any()), guidance))
        return np.asarray(noise)

    monkeypatch.setattr(long_form, "sample_windows", spy)
    for given, plain in ((Guidance(4.0, 4.0, 2.0), Guidance(4.0, 4.0, 1.0)), (Guidance.uniform(4.0),) * 2):
        seen.clear()
        clip = tiny.clip(_frames(4, 8), _frames(4, 24), geo)
        clip.reference = np.ones((10, tiny.config.audio.latent_dim), np.float32)
        list(long_form.run(tiny, [clip], geo=geo, steps=1, guidance=given))
        assert len(seen) > 1 and seen[0] == (True, given)
        assert all(g == plain for _, g in seen[1:]), seen


def test_the_api_takes_per_condition_guidance(tiny, monkeypatch):
    from salsa.sampling.guidance import Guidance

    seen = []

    def spy(model, cond, noise, reference, reference_mask, *, context_mask=None, steps, guidance, grid):
        seen.append(guidance)
        return np.zeros(noise.shape, np.float32)

    monkeypatch.setattr(long_form, "sample_windows", spy)
    frames = _frames(1.0, 8), _frames(1.0, 24)
    reference = dict(reference=_sound(0.25), reference_rate=16000)  # so that the reference's scale counts
    for kw, want in (
        ({}, Guidance(4.0, 4.0, 2.0)),  # the config's: the reference at 2 (cfg_audio)
        ({"cfg": 2.0}, Guidance(2.0, 2.0, 2.0)),
        ({"guidance": tiny.guidance(3.0, audio=1.0)}, Guidance(3.0, 3.0, 1.0)),
    ):
        seen.clear()
        out = tiny.generate(*frames, steps=1, **reference, **kw)
        assert seen == [want] and out.audio.shape == (16000, 1)
    with pytest.raises(ValueError, match="not both"):
        tiny.generate(*frames, steps=1, cfg=2.0, guidance=Guidance.uniform(2.0))


def _sound(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * 16000)) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 0.7 * t))
    return (tone[:, None] + 0.02 * rng.standard_normal((len(t), 1))).astype(np.float32)


def test_regenerate_keeps_the_rest_and_samples_only_windows_with_a_range(tiny, monkeypatch):
    """Outside the ranges the latents are the kept audio's exactly (its audio the VAE round trip);
    inside they are new; two ranges far apart take two windows of the four a 6 s video has."""
    sec, audio = 6.0, _sound(6.0)
    calls = []
    real = long_form.sample_windows

    def spy(*args, **kw):
        calls.append(np.asarray(args[4]))  # the reference mask
        return real(*args, **kw)

    monkeypatch.setattr(long_form, "sample_windows", spy)
    out = tiny.regenerate(_frames(sec, 8), _frames(sec, 24), audio, [(4.0, 5.0), (1.0, 1.5)], steps=1)
    geo = long_form.geometry(tiny.config)
    assert out.audio.shape == (round(sec * 16000), 1) and out.latents.shape == (geo.total_latents(sec), 16)
    assert len(calls) == 2 and geo.num_windows(sec) == 4
    kept = tiny.reference_latents(audio)
    inside = np.zeros(len(kept), bool)
    inside[62:94] = inside[250:313] = True  # 1.0–1.5 s and 4.0–5.0 s at 62.5 latent frames per second
    np.testing.assert_array_equal(out.latents[~inside], kept[~inside])
    assert np.abs(out.latents[inside] - kept[inside]).mean() > 0.1
    for mask in calls:  # each range has clean kept latents on both sides in its window
        generated = np.flatnonzero(~mask[0])
        assert mask[0, : generated[0]].sum() >= 16 and mask[0, generated[-1] + 1 :].sum() >= 16
    trip = vae_codec.decode(tiny.vae, vae_codec.denormalize(kept, tiny.vae_stats))[: len(out.audio)]
    hop, margin = 256, vae_codec.receptive_radius(tiny.vae.config)[1]
    far = np.ones(len(kept), bool)
    for a, b in ((62, 94), (250, 313)):
        far[a - margin : b + margin] = False
    far = np.repeat(far, hop)[: len(out.audio)]
    np.testing.assert_allclose(out.audio[far], trip[far], atol=1e-4 * np.abs(trip).max())
    assert np.abs(out.audio[~far] - trip[~far]).max() > 0.05


def test_several_references_each_kept_where_placed(tiny):
    sec = 5.0
    a, b = _sound(0.5, 1), _sound(0.75, 2)
    out = tiny.extend(_frames(sec, 8), _frames(sec, 24), references=[(a, 0.5), (b, 3.0)], steps=1)
    for ref, at in ((a, 0.5), (b, 3.0)):
        z = tiny.reference_latents(ref)
        start = round(at * 62.5)
        np.testing.assert_array_equal(out.latents[start : start + len(z)], z)
    with pytest.raises(ValueError, match=r"references at 0.5 s \(0.51 s long\) and at 0.8 s overlap"):
        tiny.extend(_frames(sec, 8), _frames(sec, 24), references=[(a, 0.5), (b, 0.8)], steps=1)


@pytest.mark.parametrize(
    "ranges, needle",
    [
        ([(2.0, 1.0)], "range 2:1 is reversed or empty"),
        ([(4.0, 6.5)], "range 4:6.5 lies outside the video (0 to 6.00 s)"),
        ([(-0.5, 0.5)], "range -0.5:0.5 lies outside the video"),
        ([(1.0, 2.0), (1.5, 2.5)], "ranges 1:2 and 1.5:2.5 overlap"),
        ([(1.0, 2.6)], "range 1:2.6 lasts 1.6 s, longer than the 1.5 s one window can regenerate"),
        ([], "no range to regenerate"),
    ],
)
def test_bad_ranges_are_named(ranges, needle):
    from salsa.inference import editing

    geo = long_form.geometry(get_config())  # 2 s windows, 1.5 s step
    with pytest.raises(ValueError) as e:
        editing.plan(ranges, 6.0, geo)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_edit_windows_hold_their_ranges_in_order():
    from salsa.inference import editing

    geo = long_form.geometry(get_config())
    ranges = [(0.0, 0.3), (0.5, 1.2), (3.0, 4.5), (5.9, 6.0), (9.0, 9.99)]
    windows = editing.plan(ranges, 10.0, geo)
    assert [len(w.ranges) for w in windows] == [2, 1, 1, 1]  # the first two fit one window together
    starts = [geo.starts_at(w.start_s)[0] for w in windows]
    assert starts == sorted(starts)
    for w, start in zip(windows, starts, strict=True):
        assert (w.start_s * 8).is_integer()  # on the 1/8 s frame grid of 8 and 24 fps
        assert all(start <= a and b <= start + geo.latents for a, b in w.ranges)
    assert starts[-1] + geo.latents >= geo.total_latents(10.0)
