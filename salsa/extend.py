"""Sound for silent video of any length: python -m salsa.extend --video V --checkpoint DIR --out OUT.

    python -m salsa.extend --video long.mp4 --checkpoint ckpt --out long_sound.mp4 \\
        [--text "rain on a tin roof"] [--audio ref.wav --audio-at 3.0] [--steps 8] [--cfg 4.0] [--seed 0] \\
        [--cfg-video W] [--cfg-text W] [--cfg-audio W] [--window 10] [--context 0.5] [--wav out.wav] \\
        [--stream] [--batch 4]

Generates by iterative extension (salsa.inference.long_form), decodes with the VAE piece by piece and
writes the video with the new sound track (the video packets are copied, not re-encoded). --video may
be a folder: every video in it, windows of several videos in one generator call, outputs under the
--out folder with the same names (WAVs under --wav, a folder too). The seed applies to each video, so
a video's sound does not depend on the others in the folder.

--stream writes the WAV (--wav, default OUT with .wav) window by window while generating: the file is
a complete WAV of what has been generated at every moment (its header is rewritten after each
window), so a player can open it early; the time to first audio is reported. Without --stream all
outputs are written under temporary names and renamed when complete. On bad input the command prints
one line naming the problem, exits with status 2 and leaves no output file behind (a stream's WAV
included).

Guidance (salsa.sampling.guidance): --cfg W sets the scale of every condition (W = 1: no guidance, one
network evaluation per step); --cfg-video / --cfg-text / --cfg-audio override one of them.

--audio / --audio-at are repeatable pairs: several references, each kept where it is placed.
--keep-audio --regenerate 3.0:5.5,12:13 edits the video's own sound instead (salsa.inference.editing):
kept as VAE latents outside the ranges, generated anew inside them, one window per range or group of
close ranges; windows without a range are not sampled.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import struct
import sys
import tempfile
import time

import numpy as np

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


class BadInput(ValueError):
    """A user error: one line on stderr, exit status 2."""


class GrowingWav:
    """A 16-bit PCM WAV written piece by piece; after every `write` the file is a valid WAV of all the
    samples so far (the two size fields of the header are rewritten)."""

    def __init__(self, path: str, sample_rate: int, channels: int):
        self.path, self.channels, self.frames = path, channels, 0
        self.file = open(path, "wb")  # noqa: SIM115 (a long-lived handle, closed by close())
        self.file.write(self._header(sample_rate))

    def _header(self, rate: int) -> bytes:
        block = 2 * self.channels
        fmt = struct.pack("<HHIIHH", 1, self.channels, rate, rate * block, block, 16)
        return (
            b"RIFF"
            + struct.pack("<I", 36)
            + b"WAVE"
            + b"fmt "
            + struct.pack("<I", 16)
            + fmt
            + b"data"
            + b"\0" * 4
        )

    def write(self, audio: np.ndarray) -> None:
        pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
        self.file.write(pcm.tobytes())
        self.frames += audio.shape[0]
        size = self.frames * 2 * self.channels
        self.file.seek(4)
        self.file.write(struct.pack("<I", 36 + size))
        self.file.seek(40)
        self.file.write(struct.pack("<I", size))
        self.file.seek(0, os.SEEK_END)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


@dataclasses.dataclass
class Job:
    """One video: where its sound goes while generating and when done."""

    video: str
    out: str
    wav: str | None  # the user's --wav path for it, if any
    declared: float | None  # duration the file states (for the progress bar), if any
    sink: GrowingWav | None = None
    temp_wav: str | None = None
    seconds: float = 0.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m salsa.extend", description=__doc__.split("\n")[0])
    p.add_argument("--video", required=True, help="a video file, or a folder of videos")
    p.add_argument(
        "--checkpoint", required=True, help="pipeline checkpoint folder (salsa.inference.pipeline)"
    )
    p.add_argument("--out", required=True, help="output video (a folder when --video is a folder)")
    p.add_argument("--text", help="text prompt (needs the checkpoint's tokenizer)")
    p.add_argument(
        "--audio",
        action="append",
        help="reference sound to keep, at most one window long (any rate/channels); repeatable",
    )
    p.add_argument(
        "--audio-at",
        type=float,
        action="append",
        help="where the matching --audio starts (seconds; default 0 for a single --audio)",
    )
    p.add_argument(
        "--keep-audio", action="store_true", help="keep the video's own audio outside the --regenerate ranges"
    )
    p.add_argument("--regenerate", help="time ranges to generate anew, START:END[,START:END...] in seconds")
    p.add_argument("--steps", type=int, help="sampling steps, a power of two (default: the config's)")
    p.add_argument("--cfg", type=float, help="guidance scale of every condition (default: the config's)")
    for name, what in (
        ("video", "the video (semantic + sync)"),
        ("text", "the text"),
        ("audio", "reference audio"),
    ):
        p.add_argument(f"--cfg-{name}", type=float, help=f"guidance scale of {what}, overriding --cfg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", type=float, help="window length in seconds (default: the config's)")
    p.add_argument("--context", type=float, help="context kept from the previous window (seconds)")
    p.add_argument("--wav", help="also write the sound as a WAV (a folder when --video is a folder)")
    p.add_argument("--stream", action="store_true", help="write the WAV window by window as it is made")
    p.add_argument("--batch", type=int, default=4, help="videos per generator call when --video is a folder")
    return p


def _jobs(args) -> list[Job]:
    from data_pipelines.media import container as containers

    if os.path.isdir(args.video):
        names = sorted(n for n in os.listdir(args.video) if n.lower().endswith(VIDEO_EXTENSIONS))
        if not names:
            raise BadInput(f"{args.video}: folder holds no videos ({', '.join(VIDEO_EXTENSIONS)}).")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise BadInput(f"{args.out}: --out must be a folder when --video is a folder.")
        pairs = [
            (
                os.path.join(args.video, n),
                os.path.join(args.out, n),
                os.path.join(args.wav, os.path.splitext(n)[0] + ".wav") if args.wav else None,
            )
            for n in names
        ]
    else:
        pairs = [(args.video, args.out, args.wav)]
    jobs = []
    for video, out, wav in pairs:
        with containers.open_input(video) as c:  # missing, empty, not media, no video stream
            jobs.append(
                Job(video, out, wav, containers.declared_seconds(containers.pick_stream(c, "video", video)))
            )
        if os.path.abspath(out) == os.path.abspath(video):
            raise BadInput(f"{out}: the output would overwrite its input video; choose another --out.")
    return jobs


def _seconds_of(reader, path: str, rate: float):
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


def _progress(total: int | None):
    try:
        from tqdm import tqdm

        return tqdm(total=total, unit="window", file=sys.stderr, disable=None, dynamic_ncols=True)
    except ImportError:
        return None


def run(args) -> list[str]:
    from data_pipelines.media import VideoFrames
    from salsa.inference import long_form
    from salsa.inference import pipeline as pipeline_lib
    from salsa.sampling.euler import check_steps

    start_time = time.perf_counter()
    jobs = _jobs(args)
    p = pipeline_lib.load(args.checkpoint)
    try:
        geo = long_form.geometry(p.config, args.window, args.context)
        steps = p.sampling(args.steps)[0]
        check_steps(steps, p.config.objective.grid)
        guidance = p.guidance(args.cfg, video=args.cfg_video, text=args.cfg_text, audio=args.cfg_audio)
    except ValueError as e:
        raise BadInput(str(e)) from None
    size8, size24 = p.frame_sizes
    if args.keep_audio or args.regenerate is not None:
        return _edit(args, p, jobs, geo, steps, guidance, start_time)
    references = _references(args, p, geo, jobs)
    clips, readers = [], []
    for job in jobs:
        r8 = VideoFrames(job.video, p.config.video.semantic_fps, size8)
        r24 = VideoFrames(job.video, p.config.video.sync_fps, size24)
        try:
            clip = p.clip(r8, r24, geo, text=args.text, references=references, seed=args.seed)
        except ValueError as e:
            raise BadInput(str(e)) from None
        clip.seconds = _seconds_of(r24, job.video, geo.latent_rate)
        clips.append(clip)
        readers.append(r24)
    timings: dict[str, float] = {}
    events = long_form.run(
        p, clips, geo=geo, steps=steps, guidance=guidance, batch=args.batch, timings=timings
    )
    total = None
    if all(j.declared for j in jobs):
        total = sum(geo.num_windows(max(j.declared, 1 / geo.latent_rate)) for j in jobs)
    return _write(args, p, jobs, geo, events, total, start_time, timings)


def _references(args, p, geo, jobs) -> list[tuple[np.ndarray, float]]:
    """The --audio / --audio-at pairs, decoded; BadInput for a count mismatch, a reference longer than
    a window, or one placed before 0 s or past a video's end."""
    from data_pipelines.media import decode_audio

    audios, ats = args.audio or [], args.audio_at or []
    if len(audios) == 1 and not ats:
        ats = [0.0]
    if len(ats) != len(audios):
        raise BadInput(
            f"give one --audio-at per --audio (got {len(audios)} --audio and {len(ats)} --audio-at)."
        )
    references = []
    for path, at in zip(audios, ats, strict=True):
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


def _edit(args, p, jobs, geo, steps, guidance, start_time) -> list[str]:
    """--keep-audio --regenerate: every video's ranges checked against its exact duration (one pass
    over its frames) before anything is generated; then each video's edit windows in turn."""
    from data_pipelines.media import VideoFrames, decode_audio
    from data_pipelines.media import container as containers
    from salsa.inference import editing

    if not args.keep_audio:
        raise BadInput("--regenerate needs --keep-audio (the video's own audio, kept outside the ranges).")
    if args.regenerate is None:
        raise BadInput(
            "--keep-audio needs --regenerate START:END[,START:END...], the ranges to generate anew."
        )
    if args.audio or args.audio_at:
        raise BadInput(
            "--audio cannot be combined with --keep-audio: the video's own audio is the reference."
        )
    try:
        ranges = editing.parse_ranges(args.regenerate)
    except ValueError as e:
        raise BadInput(f"--regenerate: {e}") from None
    size8, size24 = p.frame_sizes
    durations = []
    for job in jobs:
        with containers.open_input(job.video) as c:
            containers.pick_stream(c, "audio", job.video)  # MediaError when there is no sound to keep
        reader = VideoFrames(job.video, p.config.video.sync_fps, size24)
        for _ in reader:
            pass
        seconds = _seconds_of(reader, job.video, geo.latent_rate)()
        try:
            editing.plan(ranges, seconds, geo)
        except ValueError as e:
            raise BadInput(f"{job.video}: {e}") from None
        durations.append(seconds)
    timings: dict[str, float] = {}

    def events():
        for i, (job, seconds) in enumerate(zip(jobs, durations, strict=True)):
            audio = decode_audio(job.video, p.sample_rate, p.channels)
            r8 = VideoFrames(job.video, p.config.video.semantic_fps, size8)
            r24 = VideoFrames(job.video, p.config.video.sync_fps, size24)
            found = p.edit_events(
                r8,
                r24,
                audio,
                ranges,
                geo,
                seconds=seconds,
                text=args.text,
                seed=args.seed,
                steps=steps,
                guidance=guidance,
                index=i,
                timings=timings,
            )
            yield from found

    return _write(args, p, jobs, geo, events(), None, start_time, timings)


def _write(args, p, jobs, geo, events, total, start_time, timings) -> list[str]:
    """Decodes the window events, writes each video's sound (WAV, muxed video) and reports the totals."""
    from data_pipelines.media import replace_audio
    from salsa.inference import long_form

    bar = _progress(total)
    first_audio = None
    written = []
    try:
        counted = _counted(events, jobs, geo, bar, start_time)
        for i, audio, _, last in long_form.decode_windows(p, counted, geo, timings):
            job = jobs[i]
            if job.sink is None:
                job.sink = _open_sink(job, args.stream, p)
            if len(audio):
                job.sink.write(audio)
                if first_audio is None:
                    first_audio = time.perf_counter() - start_time
            if last:
                _finish(job, replace_audio, p)
                written.append(job.out)
    finally:
        if bar is not None:
            bar.close()
        for job in jobs:  # whatever did not finish leaves nothing behind
            if job.sink is not None:
                job.sink.close()
                if job.out not in written:
                    for path in (job.sink.path, job.temp_wav):
                        if path and os.path.exists(path):
                            os.remove(path)
    elapsed = time.perf_counter() - start_time
    audio_s = sum(j.seconds for j in jobs)
    rtf = audio_s / max(elapsed, 1e-9)  # seconds of sound per second of work, as bench/ reports it
    line = f"{len(written)} video(s), {audio_s:.1f} s of sound in {elapsed:.1f} s ({rtf:.2f}x real time)"
    line += "; " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    if args.stream and first_audio is not None:
        line += f"; time to first audio {first_audio:.2f} s"
    print(line, file=sys.stderr)
    return written


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


def _open_sink(job: Job, stream: bool, p) -> GrowingWav:
    if stream:
        path = job.wav or os.path.splitext(job.out)[0] + ".wav"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return GrowingWav(path, p.sample_rate, p.channels)
    target = job.wav or job.out
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    fd, job.temp_wav = tempfile.mkstemp(
        prefix=f".{os.path.basename(target)}.", suffix=".partial.wav", dir=folder
    )
    os.close(fd)
    return GrowingWav(job.temp_wav, p.sample_rate, p.channels)


def _finish(job: Job, replace_audio, p) -> None:
    job.sink.close()
    os.makedirs(os.path.dirname(os.path.abspath(job.out)), exist_ok=True)
    replace_audio(job.video, job.sink.path, p.sample_rate, job.out)
    if job.temp_wav is not None:
        if job.wav:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(job.temp_wav, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
            os.replace(job.temp_wav, job.wav)
        else:
            os.remove(job.temp_wav)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from data_pipelines.media import MediaError
    from salsa.inference.pipeline import PipelineError

    try:
        for path in run(args):
            print(path)
    except (BadInput, MediaError, PipelineError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
