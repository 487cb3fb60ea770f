"""Peak memory and time of `python -m salsa.extend` against the video's length (issue 18.7: a 60-minute
video's peak within 10% of a 1-minute one's; issue 20 target 5: 20 minutes take their windows' time,
within 5%, and peak within 1.1x of 1 minute).

    JAX_PLATFORMS=cpu python -m bench.extend_memory [--minutes 1 60] [--size 64] [--fps 24] [--window 10]
        [--steps 1] [--repeats 1] [--config tiny] [--platform cpu] [--out bench/results/extend_memory.json]

For each length a synthetic silent video is written with PyAV (size x size pixels at --fps, a moving
gradient, x264 ultrafast, frames made one at a time so the bench itself holds none), then
`python -m salsa.extend --steps S --window W` runs on it in its own process with a random-weight pipeline
(salsa.testing.random_pipeline): --config tiny (configs/generator.py's tiny, 16 kHz mono, 62.5 latent
frames/s, with the tiny VAE, SigLIP and sync encoders), or small / large with the paper's components (the
sao43 VAE at 44.1 kHz stereo, SigLIP 2 So400m, the base sync model; the checkpoint is ~7 GB for small).
--platform sets the child's JAX_PLATFORMS (cpu by default; gpu or tpu to run the command on a device).
The source frame rate and size only change the decoding work: the command resamples to the model's 8
and 24 fps and resizes to its encoders' sizes whatever the file holds. Peak resident memory is the
child's ru_maxrss (os.wait4); its resident memory is also sampled every 0.5 s, so the table shows where
the peak was reached (the share of the run's wall time) and the resident memory at the middle and the
end of the run: flat memory means these agree however long the video is. On a GPU or TPU the child also
reports its device's peak bytes in use (the allocator's own count, JAX's memory_stats).

Time: the child is the command itself with its progress bar replaced by a recorder of when each window
leaves the sampler (`salsa.extend._progress`; a window's interval is the whole cycle: its frames decoded,
encoded, sampled, the previous window's sound decoded and written). The time of one window after
compilation is the mean interval of the shortest length's windows after its first two (loading and
compilation) and before its last (the video's end: a shorter window), pooled over --repeats (the
lengths run in turn, so the machine's drift touches them all alike). For each run: its later windows'
mean against that (1.00: a window costs the same however long the video), the last quarter of its
later windows against the first quarter ("drift"; 1.00: no growth along the video), its whole time
against its window count times the shortest's window (start-up and compilation included, which weigh
more the cheaper a window is), and the same after its first window (loading and compiling), against the
windows after it: the issue's measure, "after compile".

Prints one table and writes --out (lengths not run this time are kept from the previous file when its
config, platform, steps and window are this run's, so the lengths can be run separately).
"""

from __future__ import annotations

import argparse
import fractions
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from salsa.io import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "extend_memory.json")


def write_h264(path: str, images, width: int, height: int, fps: float, preset: str, crf: int) -> None:
    """A silent H.264 video of the (height, width, 3) uint8 `images` (any iterable, so that no more than
    one frame need exist at a time) at `fps`."""
    import av

    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=fractions.Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": preset, "crf": str(crf)}
        for k, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def make_video(path: str, seconds: float, size: int, fps: float) -> None:
    """A silent H.264 video of `seconds` at `fps`, size x size: a moving gradient, frame by frame."""
    ramp = np.add.outer(np.arange(size), np.arange(size)).astype(np.int64)
    frames = range(round(seconds * fps))
    images = (((ramp[..., None] * (1, 2, 3) + 3 * k) % 256).astype(np.uint8) for k in frames)
    write_h264(path, images, size, size, fps, "ultrafast", 30)


def _rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# `python -m salsa.extend ARGV` with the progress bar replaced by a recorder of each window's end time
# (perf_counter, the child's clock), written as JSON to TIMES when the command ends.
CHILD = """
import json, sys, time
from salsa import cli, extend
times_path, argv = sys.argv[1], sys.argv[2:]
ends = []

class Recorder:
    def update(self, n=1):
        ends.append(time.perf_counter())
    def set_postfix_str(self, *args, **kwargs):
        pass
    def close(self):
        pass

extend._progress = lambda total: Recorder()
start = time.perf_counter()
rc = cli.run(extend.main, argv)
import jax
stats = jax.local_devices()[0].memory_stats() or {}
with open(times_path, "w") as f:
    json.dump({"start": start, "window_ends": ends, "device_peak_bytes": stats.get("peak_bytes_in_use")}, f)
sys.exit(rc)
"""


def recorded(path: str) -> tuple[list[float], int | None]:
    """Each window's interval (s) from the recorder's file, the first from the command's start; and the
    device's peak bytes in use (None on CPU)."""
    with open(path) as f:
        t = json.load(f)
    ends = [t["start"], *t["window_ends"]]
    return np.diff(ends).tolist(), t.get("device_peak_bytes")


def measure(argv: list[str], log: str, platform: str = "cpu") -> dict:
    """Runs `python -m salsa.extend argv` in a child on JAX platform `platform`; exit code, wall time,
    peak RSS, RSS samples, each window's interval and the device's peak bytes in use."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "JAX_PLATFORMS": platform, "PYTHONPATH": path}
    samples: list[tuple[float, int]] = []
    times = log + ".windows.json"
    start = time.perf_counter()
    with open(log, "w") as err:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, times, *argv],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            cwd=ROOT,
        )
        stop = threading.Event()

        def sample():
            while not stop.wait(0.5):
                rss = _rss_kib(child.pid)
                if rss is not None:
                    samples.append((time.perf_counter() - start, rss))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
    wall = time.perf_counter() - start
    with open(log) as f:
        lines = f.read().strip().splitlines()
    if child.returncode:
        sys.exit(f"bench failed (exit {child.returncode}): {lines[-1] if lines else 'no output'}")

    def at(share: float) -> float:
        """RSS (MiB) of the last sample at or before `share` of the wall time."""
        before = [r for t, r in samples if t <= share * wall] or [samples[0][1]]
        return before[-1] / 1024

    peak_t = max(samples, key=lambda s: s[1])[0] if samples else 0.0
    intervals, device_peak = recorded(times)
    return {
        "wall_s": wall,
        "windows": len(intervals),
        "window_s": intervals,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "device_peak_mib": None if device_peak is None else device_peak / 2**20,
        "rss_mid_mib": at(0.5) if samples else None,
        "rss_end_mib": at(1.0) if samples else None,
        "peak_at_share_of_wall": peak_t / wall,
        "rss_samples_mib": [
            (round(t, 1), round(r / 1024, 1)) for t, r in samples[:: max(1, len(samples) // 200)]
        ],
        "summary": lines[-1] if lines else "",
    }


def _later(run: dict) -> list[float]:
    """A run's window intervals after its first two (loading and compilation) and before its last (the
    video's end, a shorter window); all if it has no more."""
    return run["window_s"][2:-1] or run["window_s"]


def summarize(runs: list[dict]) -> None:
    """Adds to each run (shortest first): its windows between the first two (compilation) and the last
    (`_later`) in mean, `later_window_s`, and that against the shortest run's, `later_to_shortest` (1.00:
    a window costs the same however long the video); the last quarter of those windows against the
    first quarter, `drift` (1.00: no growth along the video); the whole command's time against its
    window count times the shortest run's later windows, `total_to_windows` (start-up and compilation
    included), and after its first window against the windows after it, `after_start_to_windows`
    (issue 20 target 5's measure, "after compile"); its peak memory against the shortest run's (and the
    device's, where it reports one). The shortest length's figures pool its repeats (its few windows
    are the noisiest)."""
    for r in runs:
        later = _later(r)
        r["later_window_s"] = float(np.mean(later))
        q = max(1, len(later) // 4)
        r["drift"] = float(np.mean(later[-q:]) / np.mean(later[:q]))
    shortest = [r for r in runs if r["minutes"] == runs[0]["minutes"]]  # every repeat of it
    window = float(np.mean([w for r in shortest for w in _later(r)]))
    peak = float(np.mean([r["peak_rss_mib"] for r in shortest]))
    device_peaks = [r.get("device_peak_mib") for r in shortest]
    device_peak = None if None in device_peaks else float(np.mean(device_peaks))
    for r in runs:
        r["later_to_shortest"] = r["later_window_s"] / window
        r["total_to_windows"] = r["wall_s"] / (r["windows"] * window)
        after_start = (r["wall_s"] - r["window_s"][0]) / (max(1, r["windows"] - 1) * window)
        r["after_start_to_windows"] = after_start
        r["peak_ratio_to_shortest"] = r["peak_rss_mib"] / peak
        if device_peak and r.get("device_peak_mib") is not None:
            r["device_peak_ratio_to_shortest"] = r["device_peak_mib"] / device_peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 60])
    p.add_argument("--size", type=int, default=64, help="frame side of the synthetic video (pixels)")
    p.add_argument("--fps", type=float, default=24.0, help="frame rate of the synthetic video")
    p.add_argument("--window", type=float, default=10.0, help="salsa.extend --window (seconds)")
    p.add_argument("--steps", type=int, default=1, help="salsa.extend --steps")
    p.add_argument("--repeats", type=int, default=1, help="runs of each length, the lengths in turn")
    p.add_argument(
        "--config", default="tiny", help="generator size (configs/generator.py): tiny, small, large"
    )
    p.add_argument("--platform", default="cpu", help="JAX_PLATFORMS of the command's process (cpu, gpu, tpu)")
    p.add_argument(
        "--out", default=RESULTS, help="the JSON written (default bench/results/extend_memory.json)"
    )
    p.add_argument("--workdir", help="keep the checkpoint and videos here (default: a temporary folder)")
    args = p.parse_args()
    from configs import generator
    from salsa import testing

    geometry = "tiny" if args.config == "tiny" else "full"
    doc = {
        "command": f"python -m salsa.extend --steps {args.steps} --window W "
        f"({args.config} random-weight pipeline, {geometry} components)",
        "config": args.config,
        "steps": args.steps,
        "video": f"{args.size}x{args.size} at {args.fps:g} fps, H.264, no audio",
        "window_s": args.window,
        "backend": args.platform,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "runs": [],
    }
    kept = []  # the lengths this run does not measure, from a previous file at the same settings
    if os.path.exists(args.out):
        with open(args.out) as f:
            old = json.load(f)
        settings = (args.config, args.platform, args.steps, args.window)
        if (
            old.get("config", "tiny"),
            old.get("backend"),
            old.get("steps", 1),
            old.get("window_s"),
        ) == settings:
            kept = [r for r in old.get("runs", []) if r["minutes"] not in args.minutes]
    with tempfile.TemporaryDirectory() as temp:
        workdir = args.workdir or temp
        os.makedirs(workdir, exist_ok=True)
        ckpt = os.path.join(workdir, "ckpt")
        if not os.path.isdir(ckpt):
            testing.random_pipeline(workdir, generator.get_config(args.config), geometry=geometry)
        for repeat, minutes in [(k, m) for k in range(args.repeats) for m in args.minutes]:
            video = os.path.join(workdir, f"{minutes:g}min_{args.size}px_{args.fps:g}fps.mp4")
            t = time.perf_counter()
            if not os.path.exists(video):
                make_video(video, minutes * 60, args.size, args.fps)
            made = time.perf_counter() - t
            out = os.path.join(workdir, "out.mp4")
            argv = ["--video", video, "--checkpoint", ckpt, "--out", out, "--steps", str(args.steps)]
            log = os.path.join(workdir, "extend.log")
            r = measure([*argv, "--window", f"{args.window:g}"], log, args.platform)
            os.remove(out)
            r = {
                "minutes": minutes,
                "repeat": repeat,
                "make_video_s": made,
                "x_real_time": minutes * 60 / r["wall_s"],
                **r,
            }
            doc["runs"].append(r)
            print(f"{minutes:g} min: {r['wall_s']:.0f} s, {r['summary']}", file=sys.stderr, flush=True)
            doc["load_average_at_end"] = os.getloadavg()
            write_json(args.out, merged(doc, kept))  # after every run: a cut-short bench keeps its runs
    doc = merged(doc, kept)
    print(
        f"{'minutes':>7} {'windows':>7} {'extend s':>9} {'x real':>7} {'s/window':>8} {'vs 1st':>6} "
        f"{'drift':>6} {'total/N·w':>9} {'after 1st':>9} {'peak MiB':>9} {'mid MiB':>8} {'end MiB':>8} "
        f"{'peak at':>8} {'peak/1st':>8} {'dev MiB':>8} {'dev/1st':>7}"
    )
    for r in doc["runs"]:
        print(
            f"{r['minutes']:7g} {r['windows']:7d} {r['wall_s']:9.0f} {r['x_real_time']:7.2f} "
            f"{r['later_window_s']:8.3f} {r['later_to_shortest']:6.3f} {r['drift']:6.3f} "
            f"{r['total_to_windows']:9.3f} {r['after_start_to_windows']:9.3f} "
            f"{r['peak_rss_mib']:9.0f} {r['rss_mid_mib']:8.0f} {r['rss_end_mib']:8.0f} "
            f"{r['peak_at_share_of_wall']:8.0%} {r['peak_ratio_to_shortest']:8.3f} "
            f"{_or_dash(r.get('device_peak_mib'), 8, '.0f')} "
            f"{_or_dash(r.get('device_peak_ratio_to_shortest'), 7, '.3f')}"
        )
    write_json(args.out, doc)


def merged(doc: dict, kept: list[dict]) -> dict:
    """`doc` with the `kept` runs of a previous file, runs shortest first, and `summarize`'s figures."""
    doc = {**doc, "runs": sorted([*kept, *doc["runs"]], key=lambda r: (r["minutes"], r.get("repeat", 0)))}
    summarize(doc["runs"])
    return doc


def _or_dash(x: float | None, width: int, spec: str) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:{width}{spec}}"


if __name__ == "__main__":
    main()
