"""Long-form generation by iterative extension (paper §3.2, A.1): audio for a video of any length.

The video is cut into windows of `window_s` seconds whose starts lie `window_s - context_s` apart (the
step, rounded down to a whole number of frames of both video rates, so every window's 8 and 24 fps
frames start on the window's first instant, as in training crops). Window k starts at latent frame
round(k · step · latent_rate); its first ~context_s of latents are the previous window's output, given
to the sampler as clean reference, so each window continues the last. A user reference (latents at a
chosen start) is spliced into every window it overlaps. Only one window of model inputs per video is
held at a time, so memory does not grow with the video's length.

Several videos advance together: each generator call takes the next window of up to `batch` videos.
Every video's noise comes from its own key (window k: fold_in(key, k)), so a video's audio does not
depend on which others share its batch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from salsa.inference import codec as vae_codec
from salsa.inference import encoders
from salsa.inference.geometry import Geometry, geometry, video_grid  # noqa: F401 (long_form.geometry)
from salsa.inference.module_jit import module_jit
from salsa.sampling.euler import check_steps
from salsa.sampling.generate import generate_from_noise
from salsa.sampling.guidance import Guidance
from salsa.sampling.guidance import from_config as guidance_from_config


class FrameBuffer:
    """Frames of a stream by index, read lazily from an iterator and dropped once behind the window."""

    def __init__(self, frames: Iterable[np.ndarray]):
        self.source = iter(frames)
        self.frames: list[np.ndarray] = []
        self.first = 0  # index of frames[0]
        self.exhausted = False

    @property
    def count(self) -> int:
        """Frames read so far (all of them once exhausted)."""
        return self.first + len(self.frames)

    def take(self, start: int, end: int, lookahead: int = 1) -> np.ndarray:
        """Frames [start, end) that exist, reading `lookahead` beyond to learn whether the stream ends."""
        while not self.exhausted and self.count < end + lookahead:
            try:
                self.frames.append(next(self.source))
            except StopIteration:
                self.exhausted = True
        drop = max(0, min(start, self.count) - self.first)
        del self.frames[:drop]
        self.first += drop
        part = self.frames[max(0, start - self.first) : max(0, end - self.first)]
        return np.stack(part) if part else np.zeros((0, 1, 1, 3), np.uint8)


@dataclasses.dataclass
class Clip:
    """One video to generate for.

    frames8 / frames24: frames at the config's semantic and sync rates, sized for the SigLIP and sync
    encoders (arrays or lazy iterators). seconds: the video's duration, or a callable asked once the
    frames are exhausted (None: frames24 count / sync_fps). text: (text_dim,) embedding or None.
    reference: (n, latent_dim) normalized latents kept clean from latent frame `reference_start`.
    """

    frames8: Iterable[np.ndarray]
    frames24: Iterable[np.ndarray]
    key: jax.Array
    seconds: float | Callable[[], float] | None = None
    text: np.ndarray | None = None
    reference: np.ndarray | None = None
    reference_start: int = 0
    references: list[tuple[int, np.ndarray]] = dataclasses.field(default_factory=list)

    def spans(self) -> list[tuple[int, np.ndarray]]:
        """Every clean reference span, (start latent frame, latents)."""
        one = [] if self.reference is None else [(self.reference_start, self.reference)]
        return [*self.references, *one]


@dataclasses.dataclass
class Window:
    """What run() yields: the new latents of window `index` of clip `clip` (normalized, (n, latent_dim),
    starting at latent frame `start`) and, once known, the clip's total latent frames."""

    clip: int
    index: int
    start: int
    latents: np.ndarray
    last: bool
    total: int | None
    seconds: float | None  # the clip's duration, once known


class _State:
    """A clip in progress: its frame streams, the previous window's output, its total once known."""

    def __init__(self, clip: Clip, geo: Geometry):
        self.clip, self.geo = clip, geo
        self.buf8, self.buf24 = FrameBuffer(clip.frames8), FrameBuffer(clip.frames24)
        self.k = 0
        self.done = 0  # latent frames already produced
        self.previous: np.ndarray | None = None  # (Ta, C) output of window k - 1
        self.total: int | None = None
        self.seconds: float | None = None

    def learn_duration(self) -> None:
        s = self.clip.seconds
        if s is None:
            s = self.buf24.count / self.geo.sync_fps
        self.seconds = s() if callable(s) else float(s)
        self.total = self.geo.total_latents(self.seconds)


@module_jit(static_argnames=("steps", "guidance", "grid"))
def sample_windows(
    model,
    cond,
    noise,
    reference,
    reference_mask,
    *,
    context_mask=None,
    steps: int,
    guidance: Guidance,
    grid: int,
):
    """Latents (B, Ta, C) from per-row noise; positions outside cond["latent_mask"] are zero. Clean
    latents `reference` where `reference_mask` (a user's reference, guided at guidance.audio) or
    `context_mask` (the previous window's end, seen by every branch) holds."""
    return generate_from_noise(
        model,
        cond,
        noise,
        steps=steps,
        guidance=guidance,
        grid=grid,
        reference=reference,
        reference_mask=reference_mask,
        context_mask=context_mask,
    )


def _padded(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """x cut or zero-padded to n rows, and the mask of real rows."""
    x = x[:n]
    mask = np.arange(n) < x.shape[0]
    if x.shape[0] < n:
        x = np.concatenate([x, np.zeros((n - x.shape[0], *x.shape[1:]), x.dtype)])
    return x, mask


def window_frames(pipeline, buf8: FrameBuffer, buf24: FrameBuffer, geo: Geometry, s8: int, s24: int):
    """The frames a window starting at s8 / s24 needs: (8 fps frames, 24 fps frames with one sync
    snippet of margin on each side, offset of frame s24 in them)."""
    margin = pipeline.sync.config.snippet_frames  # sync features see whole snippets at the edges
    lo = max(0, s24 - margin)
    return buf8.take(s8, s8 + geo.semantic), buf24.take(lo, s24 + geo.sync + margin), s24 - lo


def window_conditions(pipeline, frames, geo: Geometry, timings: dict) -> dict[str, np.ndarray]:
    """Semantic and sync features (and masks) of a window from its `window_frames`."""
    f8, f24, offset = frames
    config = pipeline.config
    t0 = time.perf_counter()
    dtype = encoders.compute_dtype(config)
    if len(f8):
        sem = encoders.semantic(pipeline.siglip, f8, dtype=dtype)
    else:
        sem = np.zeros((0, config.features.semantic_dim))
    if len(f24):
        syn = encoders.sync(pipeline.sync, f24, dtype=dtype)[offset : offset + geo.sync]
    else:
        syn = np.zeros((0, config.features.sync_dim))
    timings["encoders"] = timings.get("encoders", 0.0) + time.perf_counter() - t0
    sem, sem_mask = _padded(sem.astype(np.float32), geo.semantic)
    syn, syn_mask = _padded(syn.astype(np.float32), geo.sync)
    return dict(semantic=sem, semantic_mask=sem_mask, sync=syn, sync_mask=syn_mask)


def text_inputs(config, text: np.ndarray | None) -> dict[str, np.ndarray]:
    """The text condition of a clip: its embedding, or zeros marked absent (null text)."""
    vector = text if text is not None else np.zeros((config.features.text_dim,), np.float32)
    return dict(text=np.asarray(vector, np.float32), text_mask=np.asarray(text is not None))


def _window_inputs(state: _State, pipeline, timings: dict[str, float]) -> dict[str, np.ndarray] | None:
    """The generator inputs of the clip's next window (numpy, unbatched), or None when it is complete."""
    geo, config, k = state.geo, pipeline.config, state.k
    s8, s24, start = geo.semantic_start(k), geo.sync_start(k), geo.latent_start(k)
    t0 = time.perf_counter()
    frames = window_frames(pipeline, state.buf8, state.buf24, geo, s8, s24)
    timings["frames"] = timings.get("frames", 0.0) + time.perf_counter() - t0
    if state.buf24.exhausted and state.total is None:
        state.learn_duration()
    valid = geo.latents if state.total is None else min(geo.latents, state.total - start)
    if valid <= 0:
        return None
    features = window_conditions(pipeline, frames, geo, timings)
    c = config.audio.latent_dim
    reference = np.zeros((geo.latents, c), np.float32)
    ref_mask = np.zeros((geo.latents,), bool)
    context_mask = np.zeros((geo.latents,), bool)
    if state.previous is not None:  # the end of the previous window, kept as clean context
        prev_start = geo.latent_start(k - 1)
        overlap = prev_start + geo.latents - start
        reference[:overlap] = state.previous[start - prev_start :]
        context_mask[:overlap] = True
    for span_start, span in state.clip.spans():  # the user's references where they overlap this window
        a = max(start, span_start)
        b = min(start + geo.latents, span_start + span.shape[0])
        if a < b:
            reference[a - start : b - start] = span[a - span_start : b - span_start]
            ref_mask[a - start : b - start] = True
            context_mask[a - start : b - start] = False
    latent_mask = np.arange(geo.latents) < valid
    return dict(
        latent_mask=latent_mask,
        **features,
        **text_inputs(config, state.clip.text),
        reference=reference,
        reference_mask=ref_mask & latent_mask,
        context_mask=context_mask & latent_mask,
        noise=window_noise(state.clip.key, k, geo.latents, c),
    )


def window_noise(key: jax.Array, index: int, length: int, channels: int) -> np.ndarray:
    """The noise of a clip's window `index`: fold_in(key, index), so it does not depend on batching."""
    return np.asarray(jax.random.normal(jax.random.fold_in(key, index), (length, channels)), np.float32)


def sample_rows(
    pipeline, rows: list[dict], size: int, *, steps: int, guidance: Guidance, timings
) -> np.ndarray:
    """Samples window inputs (as made by _window_inputs), padded to `size` rows: (size, Ta, C) latents.

    Without a reference in any row the reference's scale is moot: `guidance.without_reference()`
    samples the same thing, in fewer branches where it can.
    """
    padded = rows + [rows[0]] * (size - len(rows))
    stacked = {key: np.stack([r[key] for r in padded]) for key in padded[0]}
    if not stacked["reference_mask"].any():
        guidance = guidance.without_reference()
    cond = {
        key: jnp.asarray(v)
        for key, v in stacked.items()
        if key not in ("reference", "reference_mask", "context_mask", "noise")
    }
    t0 = time.perf_counter()
    out = sample_windows(
        pipeline.generator,
        cond,
        jnp.asarray(stacked["noise"]),
        jnp.asarray(stacked["reference"]),
        jnp.asarray(stacked["reference_mask"]),
        context_mask=jnp.asarray(stacked["context_mask"]),
        steps=steps,
        guidance=guidance,
        grid=pipeline.config.objective.grid,
    )
    out = np.asarray(out)
    timings["network"] = timings.get("network", 0.0) + time.perf_counter() - t0
    return out


def run(
    pipeline,
    clips: list[Clip],
    *,
    geo: Geometry,
    steps: int,
    guidance: Guidance | None = None,
    cfg: float | None = None,
    batch: int = 1,
    timings: dict[str, float] | None = None,
) -> Iterator[Window]:
    """Generates every clip window by window, `batch` clips per generator call; yields each window's
    new latents as soon as they exist (clips in order of progress, windows of a clip in order).

    `pipeline` needs .config, .generator, .siglip and .sync. `guidance` (or `cfg`, the same scale for
    every condition) defaults to the config's (guidance.from_config). `timings` (if given) accumulates
    seconds spent in "frames" (reading and resizing the video), "encoders" and "network".
    """
    grid = pipeline.config.objective.grid
    check_steps(steps, grid)
    if guidance is not None and cfg is not None:
        raise ValueError(f"give guidance ({guidance}) or cfg ({cfg:g}), not both.")
    if guidance is None:
        guidance = guidance_from_config(pipeline.config, cfg)
    timings = timings if timings is not None else {}
    timings.setdefault("frames", 0.0)
    timings.setdefault("encoders", 0.0)
    timings.setdefault("network", 0.0)
    queue = list(range(len(clips)))
    active: dict[int, _State] = {}
    size = max(1, min(batch, len(clips)))
    while queue or active:
        while queue and len(active) < size:
            i = queue.pop(0)
            active[i] = _State(clips[i], geo)
        rows: list[tuple[int, dict]] = []
        for i, state in list(active.items()):
            inputs = _window_inputs(state, pipeline, timings)
            if inputs is None:  # the previous window already reached the end
                empty = np.zeros((0, pipeline.config.audio.latent_dim), np.float32)
                yield Window(i, state.k, state.done, empty, True, state.total, state.seconds)
                del active[i]
                continue
            rows.append((i, inputs))
        if not rows:
            continue
        out = sample_rows(
            pipeline, [r[1] for r in rows], size, steps=steps, guidance=guidance, timings=timings
        )
        for row, (i, inputs) in enumerate(rows):
            state = active[i]
            start = geo.latent_start(state.k)
            valid = int(inputs["latent_mask"].sum())
            new = out[row, state.done - start : valid]
            last = state.total is not None and start + geo.latents >= state.total
            yield Window(i, state.k, state.done, new, last, state.total, state.seconds)
            state.previous, state.done, state.k = out[row], start + valid, state.k + 1
            if last:
                del active[i]


def decode_windows(
    p, events: Iterator[Window], geo: Geometry, timings: dict | None = None
) -> Iterator[tuple[int, np.ndarray, np.ndarray, bool]]:
    """(clip, audio, new latents, last) per window event: latents denormalized and decoded by one VAE
    StreamDecoder per clip (equal to decoding the whole sequence at once: no seams), audio cut to the
    clip's duration at its last window."""
    context = vae_codec.receptive_radius(p.vae.config)[1]
    chunk = max(context, geo.latents - 2 * context)  # the first window's audio comes out at once
    decoders: dict[int, vae_codec.StreamDecoder] = {}
    written: dict[int, int] = {}
    timings = timings if timings is not None else {}
    timings.setdefault("vae", 0.0)
    for w in events:
        dec = decoders.setdefault(w.clip, vae_codec.StreamDecoder(p.vae, chunk))
        t0 = time.perf_counter()
        audio = dec.push(vae_codec.denormalize(w.latents, p.vae_stats)) if len(w.latents) else None
        parts = [] if audio is None else [audio]
        if w.last:
            parts.append(dec.finish())
            del decoders[w.clip]
        timings["vae"] += time.perf_counter() - t0
        audio = np.concatenate(parts) if parts else np.zeros((0, p.channels), np.float32)
        done = written.get(w.clip, 0)
        if w.last:  # the latents cover the video rounded up to a whole frame: cut to its duration
            audio = audio[: max(0, round(w.seconds * p.sample_rate) - done)]
        written[w.clip] = done + audio.shape[0]
        yield w.clip, audio, w.latents, w.last
