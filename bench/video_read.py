"""How fast a video's frames are read at the encoders' two rates: one decoding pass per rate (two
VideoFrames) against one pass shared by both (video_streams), which salsa.extend, Pipeline.read_video and
feature extraction use; and that pass with a new scaling context for every frame (`frame.reformat`, as
the readers scaled until 2026-12-04) against one kept per output stream (as they do now).

    python -m bench.video_read [--seconds=30] [--width=1280] [--height=720] [--fps=30] [--repeats=3]

The video is written once with PyAV (x264 veryfast, crf 23): an 8-pixel block texture drifting a few
pixels a frame under a moving white box, so every frame has new detail to decode. It is read at 8 fps
for SigLIP and 24 fps for the sync encoder, at the tiny pipeline's sizes (32 and 32 px) and at the paper's
(384 px for SigLIP 2 so400m, 288 px for VideoPrism), the two readers taken a window's frames in turn as
long_form takes them. Best of --repeats, the ways alternating; speed-up against the scaling context made
per frame. Prints one table and writes bench/results/video_read.json.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
from absl import app, flags
from av.video.reformatter import VideoReformatter

from bench.extend_memory import write_h264
from data_pipelines.media import VideoFrames, video_streams
from salsa.io import write_json

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "video_read.json")
SIZES = {"tiny (32, 32 px)": (32, 32), "paper (384, 288 px)": (384, 288)}
WINDOW_S = 10.0

_SECONDS = flags.DEFINE_float("seconds", 30.0, "length of the test video (s)")
_WIDTH = flags.DEFINE_integer("width", 1280, "width of the test video (px)")
_HEIGHT = flags.DEFINE_integer("height", 720, "height of the test video (px)")
_FPS = flags.DEFINE_integer("fps", 30, "frame rate of the test video")
_REPEATS = flags.DEFINE_integer("repeats", 3, "passes of each way; the best counts")


def make_video(path: str, seconds: float, width: int, height: int, fps: int) -> None:
    """The test video: a drifting block texture under a moving white box, H.264."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    texture = texture.repeat(8, 0).repeat(8, 1)[:height, :width]

    def images():
        for k in range(round(seconds * fps)):
            image = np.roll(texture, (3 * k, 5 * k), axis=(0, 1))
            x = (10 * k) % max(1, width - 100)
            image[height // 4 : height // 4 + 100, x : x + 100] = 255
            yield image

    write_h264(path, images(), width, height, fps, "veryfast", 23)


class PerFrameScaler:
    """Scales as `frame.reformat` does on each new decoded frame: a new scaling context every call."""

    def reformat(self, frame, **kwargs):
        return VideoReformatter().reformat(frame, **kwargs)


def read_in_windows(readers, rates: list[float]) -> list[int]:
    """Takes WINDOW_S of frames from each reader in turn until all have ended; frames read per reader."""
    iterators, counts = [iter(r) for r in readers], [0] * len(readers)
    live = set(range(len(readers)))
    while live:
        for i in sorted(live):
            for _ in range(round(WINDOW_S * rates[i])):
                if next(iterators[i], None) is None:
                    live.discard(i)
                    break
                counts[i] += 1
    return counts


def main(argv: list[str]) -> None:
    del argv
    rates = [8.0, 24.0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "video.mp4")
        make_video(path, _SECONDS.value, _WIDTH.value, _HEIGHT.value, _FPS.value)
        for name, (size8, size24) in SIZES.items():
            requests = [(rates[0], (size8, size8)), (rates[1], (size24, size24))]
            per_frame = "shared, a scaler per frame"
            best = {"one pass per rate": np.inf, per_frame: np.inf, "one shared pass": np.inf}
            for _ in range(_REPEATS.value):
                for way in best:
                    start = time.perf_counter()
                    if way == "one pass per rate":
                        readers = [VideoFrames(path, fps, size) for fps, size in requests]
                    else:
                        readers = video_streams(path, requests)
                        if way == per_frame:
                            for out in readers[0]._shared.outs:
                                out.scaler = PerFrameScaler()
                    counts = read_in_windows(readers, rates)
                    best[way] = min(best[way], time.perf_counter() - start)
            for way, seconds in best.items():
                rows.append(
                    {
                        "sizes": name,
                        "way": way,
                        "frames": counts,
                        "seconds": seconds,
                        "s_per_10_s_of_video": seconds / _SECONDS.value * 10,
                    }
                )
            for r in rows[-3:]:
                r["speedup_vs_scaler_per_frame"] = best[per_frame] / r["seconds"]
    video = f"{_WIDTH.value}x{_HEIGHT.value} at {_FPS.value} fps, {_SECONDS.value:g} s, H.264 veryfast crf 23"
    print(f"video: {video}; frames at 8 and 24 fps, best of {_REPEATS.value}")
    print(f"{'sizes':22} {'way':26} {'frames':>12} {'s':>7} {'s per 10 s':>10} {'speed-up':>8}")
    for r in rows:
        frames = "+".join(str(n) for n in r["frames"])
        print(
            f"{r['sizes']:22} {r['way']:26} {frames:>12} {r['seconds']:7.2f} "
            f"{r['s_per_10_s_of_video']:10.2f} {r['speedup_vs_scaler_per_frame']:7.2f}x"
        )
    write_json(RESULTS, {"video": video, "cpu_count": os.cpu_count(), "rows": rows})


if __name__ == "__main__":
    app.run(main)
