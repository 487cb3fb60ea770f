"""Writing the outputs of `salsa.extend`: each video's sound into a WAV as it is decoded (the streamed
WAV itself, or a temporary), and into the output video as it comes (`SoundtrackWriter`: the sound
encoded window by window, the video's packets copied up to it), so that a long video's end costs no more
than a window's. A container that cannot take the video's packets as they are gets the sound track from
the WAV at the end instead (`replace_audio`, which re-encodes the video there).

Every output appears complete or not at all: the muxed video and a --wav are written under temporary
names and renamed when complete (salsa.io), a streamed WAV is removed if its video does not finish. A
write that fails (disk full, quota, file size limit: any OSError) is one line naming the output, with
nothing left behind and any file already at that path unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator

import numpy as np

from data_pipelines.media import MediaError, SoundtrackWriter
from data_pipelines.media.wav import GrowingWav, as_read_back
from salsa import io
from salsa.errors import UserError
from salsa.inference import long_form


class NonFiniteAudio(UserError):
    """The generated audio is NaN or infinite (a diverging checkpoint); it is never written."""


@dataclasses.dataclass
class Job:
    """One video: where its sound goes while generating and when done."""

    video: str
    out: str
    wav: str | None  # the caller's WAV path for it, if any
    declared: float | None  # duration the file states (for the progress bar), if any
    sink: GrowingWav | None = None
    mux: SoundtrackWriter | None = None  # the output video as it is written
    muxed_at_end: bool = False  # its container cannot copy the video: muxed from the WAV at the end
    files: contextlib.ExitStack | None = None  # the temporary files, committed or removed at the end
    seconds: float = 0.0
    set_aside: bool = False  # a streamed WAV's path held a file, put back if the stream fails


@dataclasses.dataclass
class Summary:
    """What a run made: the output videos in order, seconds of sound, wall time, time per stage and
    (streaming) the time to the first audio."""

    written: list[str]
    audio_s: float
    elapsed_s: float
    timings: dict[str, float]
    first_audio_s: float | None

    def line(self) -> str:
        rtf = self.audio_s / max(self.elapsed_s, 1e-9)  # seconds of sound per second of work
        line = f"{len(self.written)} video(s), {self.audio_s:.1f} s of sound in {self.elapsed_s:.1f} s "
        line += f"({rtf:.2f}x real time); " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())
        if self.first_audio_s is not None:
            line += f"; time to first audio {self.first_audio_s:.2f} s"
        return line


def write(p, jobs, geo, events, stream: bool, start_time: float, timings) -> Summary:
    """Decodes the window events, writes each video's sound (WAV, muxed video); NonFiniteAudio when
    the generated audio is not finite, before it is written."""
    first_audio = None
    written = []
    try:
        for i, audio, _, last in long_form.decode_windows(p, events, geo, timings):
            job = jobs[i]
            if not np.isfinite(audio).all():
                raise NonFiniteAudio(
                    f"{job.video}: the generated audio holds non-finite values (NaN or inf), so nothing was "
                    "written; the checkpoint's weights or settings make the model diverge."
                )
            try:
                if job.sink is None:
                    _open_sink(job, stream, p)
                if len(audio):
                    job.sink.write(audio)
                    if first_audio is None:
                        first_audio = time.perf_counter() - start_time
                if last:
                    job.sink.close()
            except OSError as e:  # disk full, quota, file size limit...: one line, nothing left behind
                raise _write_failed(job, stream, e) from None
            try:
                if job.mux is None and not job.muxed_at_end:
                    _open_video(job, p)
                if job.mux is not None:
                    job.mux.write(as_read_back(audio))  # the WAV's samples: replace_audio's track
                if last:
                    _finish(job, p)
            except OSError as e:
                raise _write_failed(job, stream, e, video=True) from None
            if last:
                written.append(job.out)
    finally:
        for job in jobs:  # whatever did not finish leaves nothing behind
            if job.out not in written:
                _abandon(job)
    seconds = sum(j.seconds for j in jobs)
    elapsed = time.perf_counter() - start_time
    return Summary(written, seconds, elapsed, timings, first_audio if stream else None)


def _open_sink(job: Job, stream: bool, p) -> None:
    """The WAV a job's sound goes into: the streamed WAV itself, else a temporary one (committed to the
    job's --wav, or dropped once muxed)."""
    job.files = contextlib.ExitStack()
    if stream:
        path = job.wav or os.path.splitext(job.out)[0] + ".wav"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        job.set_aside = job.files.enter_context(_set_aside(path))
    elif job.wav:
        path = job.files.enter_context(io.atomic_file(job.wav))
    else:
        folder = job.files.enter_context(tempfile.TemporaryDirectory(prefix="salsa-extend-"))
        path = os.path.join(folder, "sound.wav")
    job.sink = GrowingWav(path, p.sample_rate, p.channels)


def _open_video(job: Job, p) -> None:
    """The output video, written as the sound comes; if its container cannot copy the video's packets,
    it is muxed from the WAV at the end (`replace_audio` re-encodes the video there)."""
    os.makedirs(os.path.dirname(os.path.abspath(job.out)), exist_ok=True)
    try:
        job.mux = SoundtrackWriter(job.video, job.out, p.sample_rate, p.channels)
    except MediaError:
        job.muxed_at_end = True


@contextlib.contextmanager
def _set_aside(path: str) -> Iterator[bool]:
    """Moves a file already at `path` to a hidden name beside it while a streamed WAV grows there; puts
    it back if the stream does not complete, removes it when it does. Yields whether there was one."""
    if not os.path.exists(path):
        yield False
        return
    folder, name = os.path.split(os.path.abspath(path))
    fd, aside = tempfile.mkstemp(prefix=f".{name}.", suffix=".old", dir=folder)
    os.close(fd)
    os.replace(path, aside)
    try:
        yield True
    except BaseException:
        os.replace(aside, path)
        raise
    os.remove(aside)


def _finish(job: Job, p) -> None:
    """Completes the job's output video (from its WAV, where it was not written as the sound came) and
    commits its --wav."""
    from data_pipelines.media import replace_audio

    if job.mux is not None:
        job.mux.close()  # written atomically
    else:
        replace_audio(job.video, job.sink.path, p.sample_rate, job.out)  # written atomically
    job.files.close()  # commits the --wav, removes a temporary one


def _write_failed(job: Job, stream: bool, error: OSError, video: bool = False) -> UserError:
    """The one line for a write of `job`'s outputs that failed: it names the output it was for (the
    video when `video`, else the WAV while its sound is written, if the user asked for one; else the
    video) and the file that failed."""
    writing_sound = not video and job.sink is not None and not job.sink.closed
    target = job.out
    if writing_sound:
        target = job.wav or (os.path.splitext(job.out)[0] + ".wav" if stream else job.out)
        if error.filename is None:
            error.filename = job.sink.path
    had = job.set_aside if writing_sound and stream else os.path.exists(target)
    kept = " and the file already there is unchanged" if had else ""
    return io.write_error(target, error, f"nothing was written there{kept}")


def _abandon(job: Job) -> None:
    """Closes an unfinished job's WAV and removes it (the temporary one, or a streamed one, putting back
    the file that was at a streamed one's path), and the unfinished output video."""
    if job.mux is not None:
        job.mux.abandon()
    if job.sink is None:
        return
    with contextlib.suppress(OSError):  # a full disk fails the flush of what is left: it is dropped
        job.sink.close()
    if os.path.exists(job.sink.path):
        os.remove(job.sink.path)
    if job.files is not None:
        job.files.__exit__(RuntimeError, RuntimeError("abandoned"), None)  # the temporaries go
