"""Sound tracks for video files of any length: the library behind `python -m salsa.extend`.

`extend_videos` reads each video lazily, generates by iterative extension (salsa.inference.long_form)
or edits the video's own sound (salsa.inference.editing), decodes with the VAE window by window and
writes the video with the new sound track (and, if asked, the sound as a WAV). Several videos advance
together, `batch` per generator call; each video's sound does not depend on the others.

Every output appears complete or not at all (salsa.io); only a streamed WAV (`stream=True`) is visible
while it grows, a complete WAV of what exists at every moment, and is removed if the run fails.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from data_pipelines.media import VIDEO_EXTENSIONS
from salsa import io
from salsa.errors import UserError
from salsa.inference import editing, long_form, outputs, pipeline
from salsa.inference.outputs import Job, NonFiniteAudio, Summary  # noqa: F401 (soundtrack.NonFiniteAudio)
from salsa.inference.pipeline import Pipeline


class BadInput(UserError):
    """A flag or an input file that cannot be used as given; one sentence naming it."""


def default_out(video: str) -> str:
    """Where the output goes when none is given: `long.mp4` -> `long.salsa.mp4` beside it; a folder
    `clips/` -> a sibling folder `clips.salsa/` holding the outputs under the inputs' names."""
    video = os.path.normpath(video)
    if os.path.isdir(video):
        return video + ".salsa"
    stem, ext = os.path.splitext(video)
    return f"{stem}.salsa{ext}"


def jobs_for(video: str, out: str, wav: str | None) -> list[Job]:
    """One Job per video (`video` a file or a folder of videos); BadInput for an empty folder, an
    output that would overwrite its input, or a file --out for a folder; MediaError for a file that is
    not a video."""
    from data_pipelines.media import container as containers

    if os.path.isdir(video):
        names = sorted(n for n in os.listdir(video) if n.lower().endswith(VIDEO_EXTENSIONS))
        if not names:
            raise BadInput(f"{video}: folder holds no videos ({', '.join(VIDEO_EXTENSIONS)}).")
        if os.path.exists(out) and not os.path.isdir(out):
            raise BadInput(f"{out}: --out must be a folder when --video is a folder.")
        wavs = [os.path.join(wav, os.path.splitext(n)[0] + ".wav") if wav else None for n in names]
        triples = [
            (os.path.join(video, n), os.path.join(out, n), w) for n, w in zip(names, wavs, strict=True)
        ]
    else:
        triples = [(video, out, wav)]
    jobs = []
    for path, target, wav_path in triples:
        with containers.open_input(path) as c:  # missing, empty, not media, no video stream
            declared = containers.declared_seconds(containers.pick_stream(c, "video", path))
        if os.path.abspath(target) == os.path.abspath(path):
            raise BadInput(f"{target}: the output would overwrite its input video; choose another --out.")
        jobs.append(Job(path, target, wav_path, declared))
    return jobs


def check_outputs(jobs: Sequence[Job], references: Sequence[str], stream: bool) -> None:
    """BadInput when an output (video, WAV, streamed WAV) is an input (the video, a reference) or
    cannot be created; before anything is read or written."""
    for job in jobs:
        wav = job.wav or (os.path.splitext(job.out)[0] + ".wav" if stream else None)
        for flag, target in (("--out", job.out), ("--wav", wav)):
            if target is None:
                continue
            for source in (job.video, *references):
                if os.path.realpath(target) == os.path.realpath(source):
                    raise BadInput(f"{flag} {target} is the input {source}; choose another path.")
            try:
                io.check_creatable(target, flag)
            except UserError as e:
                raise BadInput(str(e)) from None


def check_scales(**scales: float | None) -> None:
    """BadInput naming the first guidance scale (cfg, cfg_video, ...) that is not a finite number."""
    for name, value in scales.items():
        if value is not None and not math.isfinite(value):
            what = " ".join(["the", *name.split("_")[1:], "guidance scale"])
            raise BadInput(f"--{name.replace('_', '-')} {value}: {what} must be a finite number.")


def seconds_of(reader, path: str, rate: float) -> Callable[[], float]:
    """The callable long_form asks for a video's duration once its frames ran out."""

    def seconds() -> float:
        from data_pipelines.media import MediaError

        if reader.damage:
            raise MediaError(
                f"{path}: video is corrupt or truncated after {reader.seconds:.2f} s ({reader.damage})."
            )
        if reader.seconds * rate < 1:
            raise BadInput(
                f"{path}: the video lasts {reader.seconds * 1000:.1f} ms, shorter than one latent frame "
                f"({1000 / rate:.1f} ms); nothing can be generated for it."
            )
        return reader.seconds

    return seconds


def extend_videos(
    checkpoint: Pipeline | str | os.PathLike,
    video: str,
    out: str | None = None,
    *,
    wav: str | None = None,
    stream: bool = False,
    text: str | None = None,
    references: Sequence[tuple[str, float]] = (),
    keep_audio: bool = False,
    regenerate: str | None = None,
    seed: int = 0,
    steps: int | None = None,
    cfg: float | None = None,
    cfg_video: float | None = None,
    cfg_text: float | None = None,
    cfg_audio: float | None = None,
    window_s: float | None = None,
    context_s: float | None = None,
    batch: int = 4,
    progress: Callable[[int | None], object] | None = None,
) -> Summary:
    """Writes `out` (default `default_out(video)`) for the video file or folder `video` with the
    pipeline `checkpoint` (a loaded Pipeline, or its folder: loaded once the inputs are checked).

    references: (audio file, start seconds) pairs kept clean. keep_audio with regenerate
    ("START:END[,START:END...]"): the video's own sound, kept outside the ranges. wav: also the sound as
    a WAV (a folder for a folder); stream: that WAV written window by window (default OUT with .wav).
    The sampling keywords as for Pipeline.extend; cfg_* override one condition's scale. progress: a
    factory of a tqdm-like bar (update, set_postfix_str, close) given the number of windows, if known.
    BadInput (or MediaError) on bad input, before anything is written.
    """
    start_time = time.perf_counter()
    check_scales(cfg=cfg, cfg_video=cfg_video, cfg_text=cfg_text, cfg_audio=cfg_audio)
    jobs = jobs_for(video, default_out(video) if out is None else out, wav)
    check_outputs(jobs, [path for path, _ in references], stream)
    p = checkpoint if isinstance(checkpoint, Pipeline) else pipeline.load(checkpoint)
    try:
        steps, guidance, geo = p.plan(
            steps=steps,
            guidance=p.guidance(cfg, video=cfg_video, text=cfg_text, audio=cfg_audio),
            window_s=window_s,
            context_s=context_s,
        )
    except ValueError as e:
        raise BadInput(str(e)) from None
    timings: dict[str, float] = {}
    if keep_audio or regenerate is not None:
        if not keep_audio:
            raise BadInput(
                "--regenerate needs --keep-audio (the video's own audio, kept outside the ranges)."
            )
        if regenerate is None:
            raise BadInput(
                "--keep-audio needs --regenerate START:END[,START:END...], the ranges to generate anew."
            )
        if references:
            raise BadInput(
                "--audio cannot be combined with --keep-audio: the video's own audio is the reference."
            )
        events, total = _edit_events(p, jobs, geo, regenerate, text, seed, steps, guidance, timings), None
    else:
        refs = _references(p, geo, jobs, references)
        events, total = _extend_events(p, jobs, geo, text, refs, seed, steps, guidance, batch, timings)
    bar = progress(total) if progress is not None else None
    try:
        return outputs.write(
            p, jobs, geo, _counted(events, jobs, geo, bar, start_time), stream, start_time, timings
        )
    finally:
        if bar is not None:
            bar.close()


def readers(p, geo, video: str):
    """The video's frames at the encoders' two rates and sizes, from one decoding pass that runs a
    window and a second ahead of the windows taken, in a thread: the next window's frames are decoded
    while the current one is encoded and sampled (on an accelerator, reading the frames is most of a
    window's time otherwise; docs/performance.md)."""
    from data_pipelines.media import video_streams

    return video_streams(video, p.frame_requests, ahead=geo.window_s + 1.0)


def _extend_events(p, jobs, geo, text, references, seed, steps, guidance, batch, timings):
    """(window events of every job, how many windows there will be when every file states its
    duration, else None)."""
    clips = []
    for job in jobs:
        r8, r24 = readers(p, geo, job.video)
        try:
            clip = p.clip(r8, r24, geo, text=text, references=references, seed=seed)
        except ValueError as e:
            raise BadInput(str(e)) from None
        clip.seconds = seconds_of(r24, job.video, geo.latent_rate)
        clips.append(clip)
    events = long_form.run(p, clips, geo=geo, steps=steps, guidance=guidance, batch=batch, timings=timings)
    total = None
    if all(j.declared for j in jobs):
        total = sum(geo.num_windows(max(j.declared, 1 / geo.latent_rate)) for j in jobs)
    return events, total


def _references(p, geo, jobs, pairs: Sequence[tuple[str, float]]) -> list[tuple[np.ndarray, float]]:
    """The (file, seconds) references decoded; BadInput for one longer than a window, or placed before
    0 s or past a video's end."""
    from data_pipelines.media import decode_audio

    references = []
    for path, at in pairs:
        audio = decode_audio(path, p.sample_rate, p.channels)
        if audio.shape[0] > geo.latents * p.config.audio.hop:
            raise BadInput(
                f"{path}: the reference lasts {audio.shape[0] / p.sample_rate:.2f} s, longer than "
                f"the {geo.window_s:g} s window; use at most one window (or a longer --window)."
            )
        if at < 0:
            raise BadInput(f"--audio-at {at:g} is not accepted; use a time >= 0 s.")
        for job in jobs:
            if job.declared is not None and at >= job.declared:
                raise BadInput(
                    f"--audio-at {at:g} s lies past the end of {job.video} ({job.declared:.2f} s)."
                )
        references.append((audio, at))
    return references


def _edit_events(p, jobs, geo, regenerate: str, text, seed, steps, guidance, timings) -> Iterator:
    """Every video's ranges checked against its exact duration (one pass over its frames) before
    anything is generated; then each video's edit windows in turn."""
    from data_pipelines.media import VideoFrames, decode_audio
    from data_pipelines.media import container as containers

    try:
        ranges = editing.parse_ranges(regenerate)
    except ValueError as e:
        raise BadInput(f"--regenerate: {e}") from None
    durations = []
    for job in jobs:
        with containers.open_input(job.video) as c:
            containers.pick_stream(c, "audio", job.video)  # MediaError when there is no sound to keep
        reader = VideoFrames(job.video, *p.frame_requests[1])  # the sync encoder's rate and size
        for _ in reader:
            pass
        seconds = seconds_of(reader, job.video, geo.latent_rate)()
        try:
            editing.plan(ranges, seconds, geo)
        except ValueError as e:
            raise BadInput(f"{job.video}: {e}") from None
        durations.append(seconds)

    def events():
        for i, (job, seconds) in enumerate(zip(jobs, durations, strict=True)):
            audio = decode_audio(job.video, p.sample_rate, p.channels)
            r8, r24 = readers(p, geo, job.video)
            yield from p.edit_events(
                r8, r24, audio, ranges, geo, seconds=seconds, steps=steps, guidance=guidance, text=text,
                seed=seed, index=i, timings=timings,
            )  # fmt: skip

    return events()


def _counted(events, jobs, geo, bar, start_time):
    """Passes window events through, updating the progress bar (windows done, real-time factor) and
    recording each finished video's duration."""
    made = 0.0
    for w in events:
        made += len(w.latents) / geo.latent_rate
        if w.last:
            jobs[w.clip].seconds = w.seconds
        if bar is not None:
            speed = made / max(time.perf_counter() - start_time, 1e-9)
            bar.set_postfix_str(f"{speed:.2f}x real time", refresh=False)
            bar.update(1)
        yield w
