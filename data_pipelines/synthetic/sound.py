"""The soundtrack, caused by the motion: impacts, rolling and sliding, and the ambient bed.

Impacts are modal synthesis: from the exact sample of each audible contact, every partial of the
object's material rings as `r^n sin(w n + phase)` (the impulse response of a two-pole resonator), next
to a short contact click; heights follow the impact speed and are split over the stereo channels by the
object's horizontal position. The rings are added directly over the samples they last, so the cost
follows the number of contacts, not the clip length.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from data_pipelines.synthetic import acoustics, materials
from data_pipelines.synthetic.config import WorldConfig
from data_pipelines.synthetic.physics import Motion
from data_pipelines.synthetic.scene import Scene

_PHASE = 0.6  # rad; a non-zero start makes the first sample of every ring jump, a crisp onset
_CONTINUOUS_GAIN = 0.12  # rolling/sliding level relative to an impact at the reference speed
_SMOOTH_S = 0.025  # rolling/sliding loudness changes no faster than this: they never make onsets
_FADE_IN_S = 0.3
_HUM_HZ = 50.0
_CONTACT_DAMPING = 0.2  # what is left of an object's ringing after it touches something again
_DAMP_S = 0.002
_RING_DB = 80.0  # a ring is cut when 80 dB below its start: under the 16-bit floor


def pan_gains(x: np.ndarray, box_width: float, channels: int) -> np.ndarray:
    """Constant-power gains (..., channels) for horizontal positions x in metres."""
    if channels == 1:
        return np.ones((*np.shape(x), 1))
    theta = np.clip(np.asarray(x) / box_width, 0.0, 1.0) * (math.pi / 2)
    return np.stack([np.cos(theta), np.sin(theta)], axis=-1)


def impact_sample(time: float, sample_rate: int) -> int:
    """The audio sample at which a contact at `time` seconds starts to sound."""
    return round(time * sample_rate)


def _click(mat: materials.Material, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """(samples,) the contact click: noise in the material's click band, decaying over `click_ms`."""
    size = max(2, round(mat.click_ms * 1e-3 * sample_rate))
    hi = min(mat.click_hz[1], 0.45 * sample_rate)
    lo = min(mat.click_hz[0], 0.5 * hi)
    sos = signal.butter(2, [lo, hi], "bandpass", fs=sample_rate, output="sos")
    burst = signal.sosfilt(sos, rng.standard_normal(size))
    burst /= np.abs(burst).max() + 1e-12  # the band's width must not change the click's level
    return burst * np.exp(-5.0 * np.arange(size) / size) * mat.click_gain


def _ring_templates(body, config: WorldConfig, click: np.ndarray) -> np.ndarray:
    """(partials + 1, length) unit responses of one object: each partial's ring `r^n sin(w n + phase)`
    (the impulse response of a two-pole resonator) cut where it has decayed by `_RING_DB`, then the click.
    """
    mat, sr = materials.get(body.material), config.sample_rate
    taus = [mat.decay_s / (1 + mat.decay_slope * (ratio - 1)) for ratio in mat.ratios]
    length = min(config.num_samples, max(click.size, math.ceil(max(taus) * sr * _RING_DB / 8.686)))
    n = np.arange(length)
    rows = np.zeros((len(mat.ratios) + 1, length))
    for k, (ratio, amp, tau) in enumerate(zip(mat.ratios, mat.amplitudes, taus, strict=True)):
        hz = body.base_hz * ratio
        if hz < 0.45 * sr:  # partials above the band would alias
            rows[k] = amp * np.exp(-n / (tau * sr)) * np.sin(2 * math.pi * hz / sr * n + _PHASE)
    rows[-1, : click.size] = click
    return rows


def _contact_damping(sample_rate: int, length: int) -> np.ndarray:
    """(length,) gain on an object's ringing from a new contact on: the touch absorbs most of the
    vibration within `_DAMP_S`, so every contact is heard on its own, not masked by the last one."""
    ramp = np.minimum(np.arange(length) / (_DAMP_S * sample_rate), 1.0)
    return 1.0 - (1.0 - _CONTACT_DAMPING) * (0.5 - 0.5 * np.cos(math.pi * ramp))


def impacts(scene: Scene, motion: Motion, config: WorldConfig, rng: np.random.Generator) -> np.ndarray:
    """(num_samples, channels) rings and clicks of every audible contact.

    Each object's responses are computed once; a contact adds them, weighted by its strength, from its
    sample on. Cost grows with the number of contacts times the ring length, not with the clip length.
    """
    n, sr = config.num_samples, config.sample_rate
    out = np.zeros((n, config.channels))
    for body in scene.bodies:
        mat = materials.get(body.material)
        click = _click(mat, sr, rng)
        hits = [c for c in motion.contacts if c.body == body.id and c.audible]
        if not hits:
            continue
        templates = _ring_templates(body, config, click)
        # Harder hits are brighter: upper partials grow faster with speed; the click grows like the
        # fundamental.
        powers = np.append(0.5 + 0.2 * np.arange(len(mat.ratios)), 0.5)
        own = np.zeros((n, config.channels))  # this object's sound, damped at each new contact
        damp = _contact_damping(sr, templates.shape[1])
        for hit in hits:
            start = impact_sample(hit.time, sr)
            if start >= n:
                continue
            strength = min(hit.speed / config.reference_speed, 1.5)
            ring = (config.impact_gain * strength**powers) @ templates[:, : n - start]
            pan = pan_gains(np.asarray(hit.position[0]), config.box_width, config.channels)
            # Earlier rings end within one template length, so only those samples need damping.
            own[start : start + ring.size] *= damp[: ring.size, None]
            own[start : start + ring.size] += ring[:, None] * pan
        out += own
    return out


def continuous(scene: Scene, motion: Motion, config: WorldConfig, rng: np.random.Generator) -> np.ndarray:
    """(num_samples, channels) rolling rumble and sliding hiss, loudness following the speed.

    Loudness and panning are computed at the physics step rate, smoothed there, and interpolated
    linearly to the audio rate: the gain is continuous, so it never makes an onset.
    """
    n, sr = config.num_samples, config.sample_rate
    t = np.arange(n) / sr
    out = np.zeros((n, config.channels))
    step = 1.0 / (config.fps * config.substeps)
    smooth = math.exp(-step / _SMOOTH_S)
    for body in scene.bodies:
        mat = materials.get(body.material)
        noise = rng.standard_normal(n)
        states = motion.step_states[:, body.id]
        speed = np.abs(states[:, 1]) * (states[:, 2] > 0.5) * (np.abs(states[:, 1]) > 0.15)
        if not speed.any():
            continue
        centre = mat.slide_hz * (0.5 if body.shape == "ball" else 1.0)
        sos = signal.butter(2, [centre / 1.5, min(centre * 1.5, 0.45 * sr)], "bandpass", fs=sr, output="sos")
        band = signal.sosfilt(sos, noise)
        band /= np.sqrt(np.mean(band**2)) + 1e-12
        level = signal.lfilter([1 - smooth], [1, -smooth], np.minimum(speed / config.reference_speed, 1.0))
        gains = level[:, None] * pan_gains(states[:, 0], config.box_width, config.channels)
        for c in range(config.channels):
            out[:, c] += np.interp(t, motion.step_times, gains[:, c]) * band
    return out * (config.impact_gain * _CONTINUOUS_GAIN)


def ambience(scene: Scene, config: WorldConfig, rng: np.random.Generator) -> np.ndarray:
    """(num_samples, channels) the bed: lamp hum, rain or wind, as loud as the picture shows it."""
    n, sr, ch = config.num_samples, config.sample_rate, config.channels
    t = np.arange(n) / sr
    noise = rng.standard_normal((n, ch))
    if scene.ambience == "room":
        sos = signal.butter(2, 300.0, "lowpass", fs=sr, output="sos")
        rumble = signal.sosfilt(sos, noise, axis=0)
        hum = sum(math.pow(0.5, h) * np.sin(2 * math.pi * _HUM_HZ * (h + 1) * t) for h in range(4))
        bed = 0.5 * rumble / (np.std(rumble) + 1e-12) + hum[:, None]
    elif scene.ambience == "rain":
        sos = signal.butter(2, [1000.0, min(8000.0, 0.45 * sr)], "bandpass", fs=sr, output="sos")
        bed = signal.sosfilt(sos, noise, axis=0)
    else:
        sos = signal.butter(2, 500.0, "lowpass", fs=sr, output="sos")
        gust = 0.6 + 0.4 * np.sin(2 * math.pi * 0.3 * t + rng.uniform(0, 2 * math.pi))
        bed = signal.sosfilt(sos, noise, axis=0) * gust[:, None]
    bed = bed / (np.sqrt(np.mean(bed**2)) + 1e-12)
    fade = np.minimum(t / _FADE_IN_S, 1.0)
    fade = 0.5 - 0.5 * np.cos(math.pi * fade)
    return bed * (config.ambient_gain * scene.ambience_level * fade)[:, None]


def soundtrack(
    scene: Scene,
    motion: Motion,
    config: WorldConfig,
    rngs: tuple[np.random.Generator, ...],
    heard: acoustics.Heard | None = None,
) -> np.ndarray:
    """(num_samples, channels) float32 in (-1, 1); `rngs` are independent (impacts, motion, ambience and,
    with `heard`, the microphone's noise). With `heard`, the box's sounds ring in its room and the whole
    mix is recorded through its microphone (acoustics.py)."""
    mix = impacts(scene, motion, config, rngs[0])
    mix += continuous(scene, motion, config, rngs[1])
    if heard is not None:
        mix = acoustics.reverberate(mix, heard.room, config.sample_rate)
    mix += ambience(scene, config, rngs[2])
    if heard is not None:
        mix = acoustics.record(mix, heard.microphone, config.sample_rate, rngs[3])
    return np.tanh(mix).astype(np.float32)  # soft limiter: linear for quiet sounds, no hard clipping
