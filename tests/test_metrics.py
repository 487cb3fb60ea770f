"""Evaluation metrics (salsa.metrics): SWSD, Fréchet distance, KL / IS, DeSync, and the event metrics
against the synthetic world's ground truth. DeSync's mechanics run on a random-weight tiny sync model
and on a deterministic stand-in whose features are codes written into the frames and the audio."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import librosa
import numpy as np
import pytest
from flax import nnx
from scipy import signal

from data_pipelines.synthetic import WorldConfig, make_clip, material_probe
from salsa import bundle
from salsa.metrics import classifier, desync, frechet, onsets, swsd
from salsa.metrics.wasserstein import sliced_wasserstein
from salsa.models.encoders.sync import SyncModel, variant

SR = 16000  # the tiny generator's audio rate
WORLD = WorldConfig(seconds=8.0, sample_rate=SR, channels=1, height=32, width=32)


# --- SWSD (paper Algorithm 1) ---


def _band_noise(centre_hz: float, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    sos = signal.butter(4, [centre_hz / 1.2, centre_hz * 1.2], "bandpass", fs=SR, output="sos")
    return signal.sosfilt(sos, np.random.default_rng(seed).standard_normal(round(seconds * SR)))


def test_log_mel_frames_are_l1_normalised_per_frame_with_the_algorithms_geometry():
    f = swsd.log_mel_frames(_band_noise(1000.0), SR, n_mels=40, win_ms=25.0, hop_ms=10.0)
    assert f.shape == (1 + 2 * SR // 160, 40)  # hop = floor(16000 * 10 / 1000), centred frames
    np.testing.assert_allclose(np.abs(f).sum(axis=1), 1.0, rtol=1e-12)


def test_swsd_is_zero_against_itself_and_grows_with_a_spectral_shift():
    ref = _band_noise(1000.0)
    assert swsd.swsd(ref, ref, SR) == 0.0
    # Another noise draw in the same band: time-invariant, so close; moving the band moves it away
    # (until the bands no longer overlap: from there on the distance saturates, docs/metrics.md).
    same_band = swsd.swsd(ref, _band_noise(1000.0, seed=1), SR)
    shifted = [swsd.swsd(ref, _band_noise(hz, seed=1), SR) for hz in (1100.0, 1200.0, 1400.0, 1700.0, 2000.0)]
    assert same_band < 0.2 * shifted[0], (same_band, shifted)
    assert np.all(np.diff(shifted) > 0), shifted


def test_swsd_equals_algorithm_1_line_by_line_on_audio_below_unit_mel_power():
    """Every log-mel value negative: dividing by the signed sum (line 24 as written) gives the same
    SWSD as our l1 norm, to the last bit of the sorted projections' mean."""
    ref, gen = 0.01 * _band_noise(1000.0), 0.01 * _band_noise(1500.0, 1.5, seed=1)

    def literal(x):
        s = np.log(librosa.feature.melspectrogram(y=x, sr=SR, n_fft=400, hop_length=160, n_mels=64) + 1e-6)
        assert (s < 0).all()
        return (s / s.sum(axis=0, keepdims=True)).T

    want = sliced_wasserstein(literal(ref), literal(gen), np.random.default_rng(3), 100)
    assert swsd.swsd(ref, gen, SR, seed=3) == pytest.approx(want, rel=1e-12)


def test_swsd_subsamples_the_longer_signal_and_is_deterministic_in_its_seed():
    ref, gen = _band_noise(1000.0, 2.0), _band_noise(1500.0, 3.0, seed=1)
    a, b = swsd.swsd(ref, gen, SR, seed=0), swsd.swsd(ref, gen, SR, seed=0)
    assert a == b and a > 0
    other = swsd.swsd(ref, gen, SR, seed=1, n_projections=400)
    assert abs(other - a) < 0.1 * a  # a Monte-Carlo estimate: another draw agrees within 10%


# --- Fréchet distance ---


def test_frechet_of_identical_sets_is_zero_and_of_known_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6))
    assert abs(frechet.frechet_distance(a, a)) < 1e-8
    # Non-commuting covariances: tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2), computed by eigh.
    m1, m2 = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    s1, s2 = m1 @ m1.T + 0.1 * np.eye(6), m2 @ m2.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)

    def psd_sqrt(s):
        w, v = np.linalg.eigh(s)
        return (v * np.sqrt(np.maximum(w, 0))) @ v.T

    r = psd_sqrt(s1)
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(psd_sqrt(r @ s2 @ r))
    np.testing.assert_allclose(frechet.frechet_from_stats(mu1, s1, mu2, s2), want, rtol=1e-8)
    # From samples: N(0, I) against N(1, 4 I) in 4 dims is 4 * 1 + 4 * (2 - 1)^2 = 8.
    x, y = rng.normal(size=(20000, 4)), 1.0 + 2.0 * rng.normal(size=(20000, 4))
    assert abs(frechet.frechet_distance(x, y) - 8.0) < 0.3


def test_frechet_survives_singular_covariances_and_pools_frames_of_any_embedder():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 32)), rng.normal(size=(5, 32))  # rank 4 covariances in 32 dims
    d = frechet.frechet_distance(a, b)
    assert np.isfinite(d) and d > 0 and abs(frechet.frechet_distance(a, a)) < 1e-4
    clips = [rng.normal(size=100) for _ in range(6)]

    def frames(x):  # an embedder giving (frames, dim)
        return x.reshape(10, 10)

    want = frechet.frechet_distance(
        np.concatenate([frames(x) for x in clips[:3]]), np.concatenate([frames(x) for x in clips[3:]])
    )
    assert frechet.frechet_over(frames, clips[:3], clips[3:]) == pytest.approx(want)
    with pytest.raises(ValueError, match="n >= 2"):
        frechet.frechet_distance(a[:1], b)


# --- KL and Inception Score ---


def test_kl_is_mean_kl_of_reference_to_generated():
    p, q = np.array([[0.5, 0.5], [0.2, 0.8]]), np.array([[0.9, 0.1], [0.2, 0.8]])
    want = (0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1) + 0.0) / 2  # KL(p || q) of row 0, then 0
    assert classifier.kl_divergence(np.log(p), np.log(q)) == pytest.approx(want)
    assert classifier.kl_divergence(np.log(q), np.log(p)) != pytest.approx(want)  # the direction matters
    assert classifier.kl_divergence(np.log(p) + 3.0, np.log(p)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="pair clip for clip"):
        classifier.kl_divergence(np.zeros((2, 3)), np.zeros((3, 3)))


def test_inception_score_bounds_and_splits():
    assert classifier.inception_score(np.zeros((8, 5)))[0] == pytest.approx(1.0)
    confident = 100.0 * np.eye(5)[np.arange(10) % 5]  # certain, every class used equally
    assert classifier.inception_score(confident)[0] == pytest.approx(5.0, rel=1e-6)
    assert classifier.inception_score(confident, splits=2) == pytest.approx((5.0, 0.0), abs=1e-5)
    assert classifier.inception_score(100.0 * np.eye(5)[[0] * 10])[0] == pytest.approx(1.0)  # one class
    with pytest.raises(ValueError, match="splits=11"):
        classifier.inception_score(confident, splits=11)


# --- DeSync ---


@dataclasses.dataclass(frozen=True)
class _Frontend:
    sample_rate: int = 2400


@dataclasses.dataclass(frozen=True)
class _CodeConfig:
    fps: float = 24.0
    snippet_frames: int = 16
    frontend: _Frontend = _Frontend()

    @property
    def snippet_samples(self) -> int:
        return round(self.snippet_frames * self.frontend.sample_rate / self.fps)


_DIM = 8


class _CodeSync(nnx.Module):
    """SyncModel's two feature methods, deterministic: a frame's feature is the +-1 code in its first
    pixel row; the audio's, per 1/24 s block (100 samples at 2400 Hz), is the block's first 8 samples."""

    def __init__(self):
        self.config = _CodeConfig()

    def video_features(self, video):
        return video[:, :, 0, :_DIM, 0] * 2.0 - 1.0

    def audio_features(self, audio):
        return audio.reshape(audio.shape[0], -1, 100)[..., :_DIM]


def _coded_clip(seconds: float, lag_s: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames carrying random codes and audio carrying the same codes `lag_s` seconds later."""
    n = round(seconds * 24)
    codes = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n, _DIM))
    frames = np.zeros((n, 1, _DIM, 3), np.uint8)
    frames[:, 0, :, 0] = np.where(codes > 0, 255, 0)
    k = np.arange(round(seconds * 2400)) - round(lag_s * 2400)
    frame, j = np.floor_divide(k, 100), np.mod(k, 100)
    ok = (frame >= 0) & (frame < n) & (j < _DIM)
    audio = np.zeros(k.size, np.float32)
    audio[ok] = codes[frame[ok], j[ok]]
    return frames, audio


@pytest.mark.parametrize("lag_s", [0.6, -1.4, 0.0])
def test_desync_recovers_a_planted_offset_in_first_and_last_windows(lag_s):
    model = _CodeSync()
    frames, audio = _coded_clip(8.0, lag_s)
    predicted = desync.predict_offsets(model, frames, audio)
    np.testing.assert_allclose(predicted, [lag_s, lag_s])  # 8 s: the first and the last 4.8 s
    assert desync.desync(model, [(frames, audio)]) == pytest.approx(abs(lag_s))
    sliding = desync.predict_offsets(model, frames, audio, params=desync.DesyncParams(hop_s=1.0))
    np.testing.assert_allclose(sliding, np.full(5, lag_s))  # starts 0, 1, 2, 3 s and 8 - 4.67 s
    # Audio at another rate, in stereo, is resampled to the model's rate and averaged.
    stereo = np.stack([audio, audio], axis=1)
    resampled = librosa.resample(stereo.T, orig_sr=2400, target_sr=4800).T
    np.testing.assert_allclose(desync.predict_offsets(model, frames, resampled, audio_rate=4800), [lag_s] * 2)
    short = _coded_clip(40 / 24, 0.2)  # 1.67 s: one window of 2 snippets
    np.testing.assert_allclose(desync.predict_offsets(model, *short), [0.2])


def test_desync_of_many_clips_is_each_clips_own():
    """Clips of different lengths and lags scored together (their snippets share model calls) get the
    offsets each gets alone."""
    model = _CodeSync()
    clips = [_coded_clip(8.0, 0.6, 1), _coded_clip(40 / 24, -0.2, 2), _coded_clip(2.0, 1.4, 3)]
    np.testing.assert_allclose(desync.desync_per_clip(model, clips), [0.6, 0.2, 1.4])
    np.testing.assert_allclose(
        desync.desync_per_clip(model, clips),
        [np.mean(np.abs(desync.predict_offsets(model, *c))) for c in clips],
    )
    with pytest.raises(ValueError, match="at least one"):
        desync.desync_per_clip(model, [])


def test_desync_of_a_random_tiny_sync_model_is_one_of_21_offsets_per_window():
    assert desync.DesyncParams().offsets.tolist() == pytest.approx(np.arange(-10, 11) * 0.2)
    model = bundle.build(SyncModel, variant("tiny"))
    world = WORLD.replace(seconds=6.0)
    clip = make_clip(world, 0, 0)
    predicted = desync.predict_offsets(model, clip.frames, clip.audio)
    assert predicted.shape == (2,)
    assert np.all(np.isin(np.round(predicted, 6), desync.DesyncParams().offsets))
    value = desync.desync(model, [(clip.frames, clip.audio)])
    assert 0.0 <= value <= 2.0 and value == pytest.approx(np.mean(np.abs(predicted)))
    with pytest.raises(ValueError, match="T >= 16"):
        desync.predict_offsets(model, clip.frames[:10], clip.audio)
    assert jnp.isfinite(value)


# --- Events: onsets and materials against the synthetic world ---


def _shift(audio: np.ndarray, seconds: float) -> np.ndarray:
    n = round(seconds * SR)
    return np.concatenate([np.zeros((n, audio.shape[1]), audio.dtype), audio])[: len(audio)]


def test_matching_is_one_to_one_within_the_tolerance():
    ref = np.array([1.0, 2.0, 3.0])
    est = np.array([1.01, 1.02, 2.049, 3.051])  # two near 1 s: one matches; 3.051 is outside ±50 ms
    s = onsets.onset_scores(ref, est)
    assert (s.references, s.estimates, s.matched) == (3, 4, 2)
    assert s.precision == 0.5 and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s.mean_abs_offset == pytest.approx((0.01 + 0.049) / 2)
    none = onsets.onset_scores(ref, np.zeros(0))
    assert (none.precision, none.recall, none.f1) == (0.0, 0.0, 0.0) and np.isnan(none.mean_abs_offset)


def test_segments_split_by_the_reference_time_and_pool_by_counts():
    ref = np.arange(0.5, 60.0, 1.0)  # one onset a second for 60 s
    est = np.concatenate([ref[:10], ref[50:55] + 0.02, [9.99]])  # first 10 s all found, last 10 s half
    first, last = onsets.segment_scores(ref, est, onsets.first_and_last(60.0, 10.0))
    assert (first.f1, first.estimates) == (pytest.approx(10 / 10.5), 11)  # 9.99 is a false onset
    assert (last.recall, last.precision) == (0.5, 1.0)
    pooled = onsets.OnsetScores.pool([first, last])
    assert (pooled.references, pooled.matched) == (20, 15)


@pytest.fixture(scope="module")
def world_clips():
    return [make_clip(WORLD, 21, i) for i in range(6)]


def test_ground_truth_audio_scores_onset_f1_and_material_accuracy_near_one(world_clips):
    probe = material_probe.fit(SR)
    events = [onsets.clip_events(c.audio, SR, c.annotation, probe=probe) for c in world_clips]
    pooled = onsets.pool_events(events)
    assert pooled["onsets"]["references"] > 80
    assert pooled["onsets"]["f1"] >= 0.95, pooled["onsets"]
    assert pooled["onsets"]["mean_abs_offset_s"] < 0.01  # about one 5 ms hop late
    assert pooled["material_count"] > 40 and pooled["material_accuracy"] >= 0.9, pooled
    # the confusion counts the same impacts: its diagonal is the accuracy's numerator
    confusion = pooled["material_confusion"]
    assert sum(n for row in confusion.values() for n in row.values()) == pooled["material_count"]
    right = sum(row.get(m, 0) for m, row in confusion.items())
    assert right == round(pooled["material_accuracy"] * pooled["material_count"])
    # The same audio judged against another material for each impact: the probe is not fooled.
    rename = dict(
        zip(["glass", "metal", "rubber", "wood"], ["metal", "rubber", "wood", "glass"], strict=True)
    )
    c = world_clips[0]
    swapped = {
        **c.annotation,
        "events": [{**e, "material": rename[e["material"]]} for e in c.annotation["events"]],
    }
    estimated = onsets.detect_onsets(c.audio, SR)
    said = onsets.material_pairs(c.audio, SR, swapped, estimated, probe)
    accuracy, count = onsets.material_accuracy(said)
    assert count > 5 and accuracy < 0.2
    # the pairs name each impact by the material it was said to be, beside the same material heard
    heard = onsets.material_pairs(c.audio, SR, c.annotation, estimated, probe)
    assert [(rename[t], h) for t, h in heard] == said


def test_late_audio_scores_near_zero_and_silence_has_no_recall():
    """Single-object clips: with several objects impacts are so dense (bounces, collisions) that audio
    100 ms late still meets unrelated impacts within ±50 ms by chance (pooled F1 about 0.3)."""
    world = WORLD.replace(min_objects=1, max_objects=1)
    late, silent, probe = [], [], material_probe.fit(SR)
    for i in range(6):
        clip = make_clip(world, 21, i)
        ref, _ = onsets.reference_onsets(clip.annotation)
        late.append(onsets.onset_scores(ref, onsets.detect_onsets(_shift(clip.audio, 0.1), SR)))
        silent.append(onsets.clip_events(np.zeros_like(clip.audio), SR, clip.annotation, probe=probe))
    assert onsets.OnsetScores.pool(late).f1 < 0.15
    pooled = onsets.pool_events(silent)
    s = pooled["onsets"]
    assert s["references"] > 20 and (s["estimates"], s["recall"], s["f1"]) == (0, 0.0, 0.0)
    assert pooled["material_count"] == 0 and np.isnan(pooled["material_accuracy"])


def test_first_and_last_ten_seconds_of_a_minute(world_clips):
    """A 60 s clip scores alike in its first and last 10 s; silencing the last 10 s zeroes its recall
    and leaves the first segment alone."""
    clip = make_clip(WORLD.replace(seconds=60.0), 3, 0)
    segments = onsets.first_and_last(60.0, 10.0)
    whole = onsets.clip_events(clip.audio, SR, clip.annotation, segments)
    assert all(s.references >= 10 and s.f1 >= 0.9 for s in whole.segments), whole.segments
    cut = clip.audio.copy()
    cut[50 * SR :] = 0
    first, last = onsets.clip_events(cut, SR, clip.annotation, segments).segments
    assert first == whole.segments[0] and last.recall == 0.0


def test_backtracking_moves_onsets_earlier(world_clips):
    audio = world_clips[0].audio
    plain = onsets.detect_onsets(audio, SR)
    back = onsets.detect_onsets(audio, SR, onsets.OnsetParams(backtrack=True))
    assert len(back) == len(plain) and np.all(back <= plain) and np.any(back < plain)
