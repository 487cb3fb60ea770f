"""The Python API over a pipeline checkpoint (salsa/inference/checkpoint.py):

    p = pipeline.load("ckpt")
    frames8, frames24 = p.read_video("clip.mp4")
    out = p.extend(frames8, frames24, text="rain on a tin roof", steps=8, seed=0)
    out.audio  # (samples, channels) at p.sample_rate; out.latents (frames, latent_dim), normalized

generate (one window), inpaint (one window around a clean reference), extend (any length), stream
(extend, window by window) and regenerate (edit time ranges of a video's own sound) share one set of
sampling keywords: seed, steps, guidance or cfg, window_s, context_s (the config's where not given).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence

import jax
import numpy as np

from salsa.inference import checkpoint, editing, encoders, long_form
from salsa.inference import codec as vae_codec
from salsa.inference.checkpoint import PipelineError
from salsa.inference.long_form import decode_windows  # noqa: F401 (pipeline.decode_windows)
from salsa.sampling import guidance as guidance_lib
from salsa.sampling.euler import check_steps
from salsa.sampling.guidance import Guidance

__all__ = ["Pipeline", "PipelineError", "Result", "load"]


@dataclasses.dataclass
class Result:
    """audio (samples, channels) float32 at sample_rate; latents (frames, latent_dim), normalized with
    the VAE's statistics (the generator's space, as in feature records)."""

    audio: np.ndarray
    latents: np.ndarray
    sample_rate: int


def load(directory: str | os.PathLike) -> Pipeline:
    """The Pipeline stored at `directory`; PipelineError naming the problem when it is missing,
    unreadable, or its parts do not match the generator config (checkpoint.load)."""
    parts = checkpoint.load(directory)
    return Pipeline(**{f.name: getattr(parts, f.name) for f in dataclasses.fields(parts)})


def _joined(pieces: list[tuple[np.ndarray, np.ndarray]], sample_rate: int) -> Result:
    return Result(np.concatenate([a for a, _ in pieces]), np.concatenate([z for _, z in pieces]), sample_rate)


@dataclasses.dataclass
class Pipeline(checkpoint.Components):
    """A loaded checkpoint's models with the methods that generate with them."""

    @property
    def sample_rate(self) -> int:
        return int(self.config.audio.sample_rate)

    @property
    def channels(self) -> int:
        return int(self.config.audio.channels)

    @property
    def frame_sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(height, width) of the 8 fps frames (SigLIP) and of the 24 fps frames (sync encoder)."""
        s, v = self.siglip.config.image_size, self.sync.config.video.image_size
        return (s, s), (v, v)

    @property
    def frame_requests(self) -> list[tuple[float, tuple[int, int]]]:
        """(fps, (height, width)) of the frames the encoders take: SigLIP's, then the sync encoder's."""
        size8, size24 = self.frame_sizes
        return [(self.config.video.semantic_fps, size8), (self.config.video.sync_fps, size24)]

    def read_video(self, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
        """(frames at video.semantic_fps, frames at video.sync_fps) of a file, sized for the encoders,
        from one decoding pass."""
        from data_pipelines.media import decode_video_rates

        frames8, frames24 = decode_video_rates(path, self.frame_requests)
        return frames8, frames24

    def text_features(self, text: str) -> np.ndarray:
        """(text_dim,) SigLIP text embedding; PipelineError when the checkpoint has no tokenizer."""
        if self.tokenizer is None:
            raise PipelineError(
                f"{self.directory}: the checkpoint has no tokenizer.json, so it cannot take a text prompt."
            )
        tokens = encoders.tokenize(self.tokenizer, [text], self.siglip.config.text_len)
        return encoders.text(self.siglip, tokens, encoders.compute_dtype(self.config))[0]

    def reference_latents(self, audio: np.ndarray, sample_rate: int | None = None) -> np.ndarray:
        """(frames, latent_dim) normalized latents of reference audio (samples, channels) or (samples,),
        resampled from `sample_rate` (default: the VAE's) and mixed to the VAE's channel count."""
        audio = np.asarray(audio, np.float32)
        audio = audio[:, None] if audio.ndim == 1 else audio
        if audio.ndim != 2 or audio.shape[0] == 0:
            raise ValueError(
                f"reference audio must be (samples, channels) with samples > 0, got {audio.shape}."
            )
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        if rate != self.sample_rate:
            from scipy import signal

            g = math.gcd(rate, self.sample_rate)
            audio = signal.resample_poly(audio, self.sample_rate // g, rate // g, axis=0).astype(np.float32)
        if audio.shape[1] != self.channels:
            audio = np.repeat(audio.mean(1, keepdims=True), self.channels, axis=1)
        return vae_codec.normalize(vae_codec.encode(self.vae, audio), self.vae_stats)

    def plan(
        self,
        *,
        steps: int | None = None,
        guidance: Guidance | None = None,
        cfg: float | None = None,
        window_s: float | None = None,
        context_s: float | None = None,
    ) -> tuple[int, Guidance, long_form.Geometry]:
        """(steps, guidance, window geometry) from the sampling keywords, the config's where not given;
        ValueError for both guidance and cfg, a step count off the grid, or windows that do not fit."""
        if guidance is not None and cfg is not None:
            raise ValueError(f"give guidance ({guidance}) or cfg ({cfg:g}), not both.")
        guidance = guidance if guidance is not None else self.guidance(cfg)
        steps = self.sampling(steps)[0]
        check_steps(steps, self.config.objective.grid)
        return steps, guidance, long_form.geometry(self.config, window_s, context_s)

    def stream(
        self,
        frames8,
        frames24,
        *,
        text: str | None = None,
        reference: np.ndarray | None = None,
        reference_at: float = 0.0,
        reference_rate: int | None = None,
        references: Sequence[tuple[np.ndarray, float]] = (),
        seconds: float | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: Guidance | None = None,
        cfg: float | None = None,
        window_s: float | None = None,
        context_s: float | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Like `extend`, yielding (audio, new latents) pieces window by window, in order."""
        steps, guidance, geo = self.plan(
            steps=steps, guidance=guidance, cfg=cfg, window_s=window_s, context_s=context_s
        )
        if reference is not None:
            references = [*references, (reference, reference_at)]
        clip = self.clip(
            frames8, frames24, geo, text=text, references=references, reference_rate=reference_rate,
            seconds=seconds, seed=seed,
        )  # fmt: skip
        events = long_form.run(self, [clip], geo=geo, steps=steps, guidance=guidance)
        for _, audio, latents, _ in decode_windows(self, events, geo):
            yield audio, latents

    def extend(
        self,
        frames8,
        frames24,
        *,
        text: str | None = None,
        reference: np.ndarray | None = None,
        reference_at: float = 0.0,
        reference_rate: int | None = None,
        references: Sequence[tuple[np.ndarray, float]] = (),
        seconds: float | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: Guidance | None = None,
        cfg: float | None = None,
        window_s: float | None = None,
        context_s: float | None = None,
    ) -> Result:
        """Audio for a video of any length by iterative extension (module docstring of long_form).

        frames8 / frames24: (T, H, W, 3) uint8 at the config's semantic and sync rates (`read_video`).
        text: a prompt (needs the tokenizer). reference: audio (samples, channels) kept clean from
        `reference_at` seconds, at `reference_rate` Hz (default the VAE's), at most one window long;
        references: several such (audio, seconds) pairs, none overlapping another.
        seconds: the video's duration (default len(frames24) / sync_fps). guidance: a
        sampling.guidance.Guidance (per-condition scales) or cfg: one scale for all (`Pipeline.guidance`).
        steps, guidance, window_s, context_s default to the config's.
        """
        pieces = self.stream(
            frames8, frames24, text=text, reference=reference, reference_at=reference_at,
            reference_rate=reference_rate, references=references, seconds=seconds, seed=seed, steps=steps,
            guidance=guidance, cfg=cfg, window_s=window_s, context_s=context_s,
        )  # fmt: skip
        return _joined(list(pieces), self.sample_rate)

    def generate(
        self,
        frames8,
        frames24,
        *,
        text: str | None = None,
        reference: np.ndarray | None = None,
        reference_at: float = 0.0,
        reference_rate: int | None = None,
        seconds: float | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: Guidance | None = None,
        cfg: float | None = None,
        window_s: float | None = None,
        context_s: float | None = None,
    ) -> Result:
        """Audio for a video no longer than one window (config.window_s); ValueError if longer. The
        keywords as for `extend`."""
        window = window_s or self.config.window_s
        length = seconds or len(frames24) / self.config.video.sync_fps
        if length > window + 1e-6:
            raise ValueError(
                f"the video lasts {length:g} s, longer than one {window:g} s window; use extend."
            )
        return self.extend(
            frames8, frames24, text=text, reference=reference, reference_at=reference_at,
            reference_rate=reference_rate, seconds=seconds, seed=seed, steps=steps, guidance=guidance,
            cfg=cfg, window_s=window_s, context_s=context_s,
        )  # fmt: skip

    def inpaint(
        self,
        frames8,
        frames24,
        reference: np.ndarray,
        at: float = 0.0,
        *,
        text: str | None = None,
        reference_rate: int | None = None,
        seconds: float | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: Guidance | None = None,
        cfg: float | None = None,
        window_s: float | None = None,
        context_s: float | None = None,
    ) -> Result:
        """`generate` around a clean reference span: `reference` audio placed at `at` seconds."""
        return self.generate(
            frames8, frames24, text=text, reference=reference, reference_at=at, reference_rate=reference_rate,
            seconds=seconds, seed=seed, steps=steps, guidance=guidance, cfg=cfg, window_s=window_s,
            context_s=context_s,
        )  # fmt: skip

    def clip(
        self,
        frames8,
        frames24,
        geo: long_form.Geometry,
        *,
        text: str | None = None,
        references: Sequence[tuple[np.ndarray, float]] = (),
        reference_rate: int | None = None,
        seconds: float | None = None,
        seed: int = 0,
    ) -> long_form.Clip:
        """The long_form.Clip for these inputs (text and references encoded here); ValueError naming a
        reference that is longer than a window, placed before 0 s, or overlapping another."""
        spans = []
        for audio, at in references:
            z = self.reference_latents(audio, reference_rate)
            if z.shape[0] > geo.latents:
                raise ValueError(
                    f"the reference at {at:g} s lasts {z.shape[0] / geo.latent_rate:.2f} s, longer than the "
                    f"{geo.window_s:g} s window; use a reference of at most one window."
                )
            if at < 0:
                raise ValueError(f"a reference at {at:g} s is not accepted; use a time >= 0 s.")
            spans.append((round(at * geo.latent_rate), z, at))
        spans.sort(key=lambda span: span[0])
        for (a0, z0, at0), (a1, _, at1) in zip(spans, spans[1:], strict=False):
            if a1 < a0 + len(z0):
                raise ValueError(
                    f"the references at {at0:g} s ({len(z0) / geo.latent_rate:.2f} s long) and at {at1:g} s "
                    "overlap; place them apart."
                )
        return long_form.Clip(
            frames8=frames8,
            frames24=frames24,
            key=jax.random.key(seed),
            seconds=seconds,
            text=None if text is None else self.text_features(text),
            references=[(a, z) for a, z, _ in spans],
        )

    def regenerate(
        self,
        frames8,
        frames24,
        audio: np.ndarray,
        ranges: Sequence[tuple[float, float]],
        *,
        audio_rate: int | None = None,
        text: str | None = None,
        seconds: float | None = None,
        seed: int = 0,
        steps: int | None = None,
        guidance: Guidance | None = None,
        cfg: float | None = None,
        window_s: float | None = None,
        context_s: float | None = None,
    ) -> Result:
        """The video's own `audio` (samples, channels) at `audio_rate` (default the VAE's), kept as VAE
        latents, with the time `ranges` [(start_s, end_s), ...] generated anew (salsa.inference.editing).
        ValueError naming a range that is reversed, outside the video, overlapping another or longer
        than a window minus its context. seconds: the video's duration (default len(frames24) /
        sync_fps); the rest as for `extend`."""
        steps, guidance, geo = self.plan(
            steps=steps, guidance=guidance, cfg=cfg, window_s=window_s, context_s=context_s
        )
        seconds = len(frames24) / self.config.video.sync_fps if seconds is None else seconds
        events = self.edit_events(
            frames8, frames24, audio, ranges, geo, seconds=seconds, steps=steps, guidance=guidance,
            audio_rate=audio_rate, text=text, seed=seed,
        )  # fmt: skip
        return _joined([(a, z) for _, a, z, _ in decode_windows(self, events, geo)], self.sample_rate)

    def edit_events(
        self,
        frames8,
        frames24,
        audio: np.ndarray,
        ranges: Sequence[tuple[float, float]],
        geo: long_form.Geometry,
        *,
        seconds: float,
        steps: int,
        guidance: Guidance,
        audio_rate: int | None = None,
        text: str | None = None,
        seed: int = 0,
        index: int = 0,
        timings: dict | None = None,
    ) -> Iterator[long_form.Window]:
        """The window events of `regenerate` for settings resolved by `plan`; the ranges are checked
        here, before any event is made."""
        windows = editing.plan(list(ranges), seconds, geo)
        audio = np.asarray(audio, np.float32)
        audio = audio[:, None] if audio.ndim == 1 else audio
        need = math.ceil(seconds * (self.sample_rate if audio_rate is None else audio_rate))
        if audio.shape[0] != need:  # the sound as long as the video: cut, or padded with silence
            audio = np.pad(audio[:need], ((0, max(0, need - audio.shape[0])), (0, 0)))
        kept = self.reference_latents(audio, audio_rate)
        clip = self.clip(frames8, frames24, geo, text=text, seconds=seconds, seed=seed)
        return editing.run(
            self, clip, kept, windows, geo=geo, steps=steps, guidance=guidance, seconds=seconds,
            index=index, timings=timings,
        )  # fmt: skip

    def sampling(self, steps: int | None = None, cfg: float | None = None) -> tuple[int, float]:
        """(steps, cfg), the config's `sampling` where not given (cfg 1 for a generator trained with
        guidance baked in)."""
        s = self.config.sampling
        if cfg is None:
            cfg = 1.0 if guidance_lib.baked(self.config) else s.cfg
        return int(s.steps if steps is None else steps), float(cfg)

    def guidance(
        self,
        cfg: float | None = None,
        *,
        video: float | None = None,
        text: float | None = None,
        audio: float | None = None,
    ) -> Guidance:
        """The guidance to sample with: `cfg` sets every scale, `video` / `text` / `audio` override one;
        the rest from the config (guidance.from_config: config.sampling, or w = 1 when baked in)."""
        return guidance_lib.from_config(self.config, cfg, video=video, text=text, audio=audio)
