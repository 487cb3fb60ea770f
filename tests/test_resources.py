"""Resources (issue 18.7): a full disk is refused in one line with nothing left behind, and memory does
not grow with the video's length.

A full disk is simulated two ways: a writer made to raise ENOSPC midway (in-process, at each place the
command writes), and a real failing write: a child process whose file size limit (RLIMIT_FSIZE, with
SIGXFSZ ignored) makes the kernel refuse the write with EFBIG, as a full disk refuses with ENOSPC.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import tracemalloc

import numpy as np
import pytest

from data_pipelines.media import encode, write_video
from data_pipelines.media.wav import GrowingWav
from salsa import cli, extend

FAST = ["--steps", "1", "--window", "2", "--context", "0.5"]
OLD = b"the file the user had here before"


def _noise_video(path, seconds: float, side: int = 64) -> str:
    """A video of random pixels, losslessly coded: its video packets are large (~6 kB a frame at 64 px)."""
    frames = np.random.default_rng(0).integers(0, 256, (round(seconds * 24), side, side, 3), dtype=np.uint8)
    write_video(path, frames, 24, crf=0)
    return str(path)


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize(
    ("mode", "where"),
    [
        ("plain", "sound"),
        ("stream", "sound"),
        pytest.param("wav", "sound", marks=pytest.mark.slow),  # each case ~30-50 s: two in the default run
        pytest.param("stream", "mux", marks=pytest.mark.slow),
        pytest.param("plain", "mux", marks=pytest.mark.slow),
        pytest.param("wav", "mux", marks=pytest.mark.slow),
    ],
)
def test_a_full_disk_is_one_line_and_leaves_everything_as_it_was(
    mode, where, tiny_pipeline_dir, tmp_path, monkeypatch, capsys
):
    video = _noise_video(tmp_path / "in.mp4", 2.0)
    out, wav = tmp_path / "out.mp4", tmp_path / "out.wav"
    for old in (out, wav):
        old.write_bytes(OLD)
    temp = tmp_path / "tmp"  # the temporary sound track's folder, in sight
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    if where == "sound":  # the disk fills up halfway through the sound track
        real = GrowingWav.write

        def write(self, audio):
            real(self, audio[: len(audio) // 2])
            _full_disk()

        monkeypatch.setattr(GrowingWav, "write", write)
    else:  # ... when the output video, written as the sound came, takes its last packets
        monkeypatch.setattr(encode.SoundtrackWriter, "close", _full_disk)
    argv = ["--video", video, "--checkpoint", tiny_pipeline_dir, "--out", out, *FAST]
    argv += {"plain": [], "wav": ["--wav", wav], "stream": ["--stream"]}[mode]
    capsys.readouterr()
    rc = cli.run(extend.main, [str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    target = wav if where == "sound" and mode != "plain" else out
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: no space left on device writing {target}"), err
    assert "nothing was written there and the file already there is unchanged" in err[0], err
    assert "free some space" in err[0], err
    assert out.read_bytes() == OLD and wav.read_bytes() == OLD
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "out.mp4", "out.wav", "tmp"]  # no temporary left
    assert os.listdir(temp) == []


def _limited(limit: int):
    """preexec_fn of a child whose files cannot grow past `limit` bytes (EFBIG instead of SIGXFSZ)."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


_WRITERS = """
import json, sys
import numpy as np
from data_pipelines.media import encode
from salsa import io
video, out, text_path = sys.argv[1:]
results, muxes = {}, []


def write_soundtrack(video, out):
    writer = encode.SoundtrackWriter(video, out, 16000, 1)
    try:
        for _ in range(3):
            writer.write(np.zeros((16000, 1), np.float32))
        writer.close()
    except OSError:
        writer.abandon()
        raise


real_mux = encode._mux
encode._mux = lambda *a, **k: (muxes.append(k["copy"]), real_mux(*a, **k))[1]
for name, write in (
    ("write_text", lambda: io.write_text(text_path, "x" * 400_000)),
    ("replace_audio", lambda: encode.replace_audio(video, np.zeros((16000, 1), np.float32), 16000, out)),
    ("SoundtrackWriter", lambda: write_soundtrack(video, out)),
):
    try:
        write()
        results[name] = "written"
    except OSError as e:
        results[name] = e.errno
print(json.dumps({"results": results, "muxes": muxes}))
"""


def test_writers_facing_a_real_failing_write_leave_nothing_behind(tmp_path):
    video = _noise_video(tmp_path / "in.mp4", 3.0)  # ~450 kB of video packets
    out, text = tmp_path / "out.mp4", tmp_path / "notes.txt"
    for old in (out, text):
        old.write_bytes(OLD)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "JAX_PLATFORMS": "cpu"}
    r = subprocess.run(
        [sys.executable, "-c", _WRITERS, video, str(out), str(text)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=_limited(200_000),
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["results"] == {
        "write_text": errno.EFBIG,
        "replace_audio": errno.EFBIG,
        "SoundtrackWriter": errno.EFBIG,
    }
    assert report["muxes"] == [True]  # a failed write is not retried as a re-encode
    assert out.read_bytes() == OLD and text.read_bytes() == OLD
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "notes.txt", "out.mp4"]


@pytest.mark.slow
def test_extend_facing_a_real_failing_write_is_one_line(tiny_pipeline_dir, tmp_path):
    video = _noise_video(tmp_path / "in.mp4", 3.0)
    out = tmp_path / "out.mp4"
    out.write_bytes(OLD)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "JAX_PLATFORMS": "cpu", "TMPDIR": str(tmp_path)}
    argv = ["--video", video, "--checkpoint", tiny_pipeline_dir, "--out", out, *FAST]
    r = subprocess.run(
        [sys.executable, "-m", "salsa.extend", *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=_limited(200_000),  # the 3 s sound track (96 kB) fits, the video (~450 kB) does not
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: file too large writing {out}"), r.stderr
    assert "Traceback" not in r.stderr
    assert out.read_bytes() == OLD
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "out.mp4"]


def test_commands_report_a_full_disk_in_one_line(capsys):
    def full(argv):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/ckpt/params.bin")

    assert cli.run(full, []) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: no space left on device writing /data/ckpt/params.bin; free some space (or write "
        "elsewhere) and run again."
    ]

    def missing(argv):
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), "x")

    with pytest.raises(FileNotFoundError):  # not a full disk: a bug, with its traceback
        cli.run(missing, [])


def _python_heap_peak(p, video: str, out: str) -> int:
    """Peak bytes allocated by Python and numpy (tracemalloc) while salsa.extend's library makes `out`."""
    from salsa.inference import soundtrack

    tracemalloc.start()
    try:
        soundtrack.extend_videos(p, video, out, steps=1, window_s=10.0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_does_not_grow_with_the_video_length(tiny_pipeline_dir, tmp_path, monkeypatch):
    """Ten times the length, about the same peak: frames and sound are held a window at a time (numpy
    and Python allocations; the process's whole peak is bench/extend_memory.py's). Measured: 3.9 MB for
    20 s, 5.4 MB for 200 s; holding the whole sound (12.8 MB) or every frame (4.9 MB) fails."""
    from salsa.inference import long_form, pipeline

    def sampler(model, cond, noise, reference, reference_mask, *, context_mask=None, steps, guidance, grid):
        return noise  # the generator's cost is not the question here; its inputs and outputs are real

    monkeypatch.setattr(long_form, "sample_windows", sampler)
    p = pipeline.load(tiny_pipeline_dir)
    peaks = {}
    for seconds in (20, 200, 20):  # the short one again: a warm run to compare with
        frames = np.random.default_rng(0).integers(0, 256, (seconds * 24, 16, 16, 3), dtype=np.uint8)
        video = str(tmp_path / f"{seconds}.mp4")
        write_video(video, frames, 24, preset="ultrafast")
        del frames
        peaks[seconds] = _python_heap_peak(p, video, str(tmp_path / "out.mp4"))
    # 200 s of sound is 12.8 MB of float32, its frames at 8 and 24 fps 4.9 MB, its latents 0.8 MB
    assert peaks[200] < peaks[20] + 4 * 2**20, peaks
