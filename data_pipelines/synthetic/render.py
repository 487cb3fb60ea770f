"""Renders synthetic clips to watch and to check: DIR/clip_0000.mp4 (video with its sound) and
DIR/clip_0000.json (duration, fps, sample_rate, caption, events, ...).

    python -m data_pipelines.synthetic.render --n 4 --seconds 10 --seed 0 --out DIR
    python -m data_pipelines.synthetic.render --n 4 --hidden-acoustics --hidden-caption-fraction 0.5 --out DIR
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import tqdm

from data_pipelines.media.encode import write_video
from data_pipelines.synthetic.clip import make_clip
from data_pipelines.synthetic.config import WorldConfig
from salsa import cli, io


def _parser() -> argparse.ArgumentParser:
    d = WorldConfig()
    p = cli.Parser(prog="python -m data_pipelines.synthetic.render", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=cli.positive_int, default=4, help="number of clips")
    p.add_argument("--seconds", type=float, default=d.seconds, help="clip length, 2 to 120 s")
    p.add_argument("--seed", type=int, default=0, help="world seed; clip i uses (seed, i)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--first", type=cli.non_negative_int, default=0, help="index of the first clip")
    p.add_argument("--fps", type=float, default=d.fps)
    p.add_argument("--size", type=int, nargs=2, default=(d.height, d.width), metavar=("HEIGHT", "WIDTH"))
    p.add_argument("--sample-rate", type=int, default=d.sample_rate)
    p.add_argument("--channels", type=int, default=d.channels, help="1 (mono) or 2 (stereo)")
    p.add_argument(
        "--hidden-acoustics",
        action="store_true",
        help="draw a room, a microphone and a pitch class per clip: heard, not seen",
    )
    p.add_argument(
        "--hidden-caption-fraction",
        type=float,
        default=d.hidden_caption_fraction,
        help="fraction of captions that name the hidden acoustics (needs --hidden-acoustics)",
    )
    p.add_argument(
        "--shutter",
        type=float,
        default=d.shutter,
        help="fraction of each frame interval the shutter is open, 0 to 1 (0: instantaneous frames; "
        "0.5: a 180-degree shutter's motion blur)",
    )
    return p


def render(config: WorldConfig, seed: int, indices: range, out: str) -> list[str]:
    """Writes one mp4 + json pair per index; returns the mp4 paths."""
    os.makedirs(out, exist_ok=True)
    paths = []
    for index in tqdm.tqdm(indices, desc="rendering", unit="clip"):
        clip = make_clip(config, seed, index)
        stem = os.path.join(out, f"clip_{index:04d}")
        write_video(stem + ".mp4", clip.frames, config.fps, clip.audio, config.sample_rate)
        io.write_json(stem + ".json", clip.annotation, indent=1)
        paths.append(stem + ".mp4")
    return paths


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = WorldConfig(
        seconds=args.seconds,
        fps=args.fps,
        height=args.size[0],
        width=args.size[1],
        sample_rate=args.sample_rate,
        channels=args.channels,
        hidden_acoustics=args.hidden_acoustics,
        hidden_caption_fraction=args.hidden_caption_fraction,
        shutter=args.shutter,
    )
    io.check_creatable(args.out, "--out", folder=True)
    paths = render(config, args.seed, range(args.first, args.first + args.n), args.out)
    logging.info("wrote %d clips to %s", len(paths), args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command: 0 on success; a bad setting or an unwritable output is one line on stderr and 2."""
    return cli.run(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
