"""Sound for silent video of any length: python -m salsa.extend --video V [--checkpoint DIR] [--out OUT].

    python -m salsa.extend --video long.mp4          # writes long.salsa.mp4 beside it
    python -m salsa.extend --video long.mp4 --checkpoint ckpt --out long_sound.mp4 \\
        [--text "rain on a tin roof"] [--audio ref.wav --audio-at 3.0] [--steps 8] [--cfg 4.0] [--seed 0] \\
        [--cfg-video W] [--cfg-text W] [--cfg-audio W] [--window 10] [--context 0.5] [--wav out.wav] \\
        [--stream] [--batch 4]

--checkpoint defaults to runs/tiny/generator/pipeline, what `python -m salsa.train
--config=configs/tiny.py` writes. --out defaults to the input's name with .salsa before its extension
(long.mp4 -> long.salsa.mp4), and for a folder to a sibling folder (clips/ -> clips.salsa/) holding the
outputs under the inputs' names. The work is salsa.inference.soundtrack.extend_videos; this module only
reads the flags.

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
included); so does a write that fails (a full disk: "no space left on device writing OUT"), which
also leaves a file already at OUT as it was.

Guidance (salsa.sampling.guidance): --cfg W sets the scale of the video and text (W = 1: no guidance, one
network evaluation per step); --cfg-video / --cfg-text override one of them. --cfg-audio sets the
reference audio's, --audio or the kept sound when editing (the config's sampling.cfg_audio, 2 in the
generator configs; 1 makes the reference context for every branch but the unconditional one;
--cfg-audio equal to --cfg is the paper's Eq. 3, which amplifies it most). The previous window's end,
which each window continues, is context for every branch whatever --cfg-audio is.

--audio / --audio-at are repeatable pairs: several references, each kept where it is placed.
--keep-audio --regenerate 3.0:5.5,12:13 edits the video's own sound instead (salsa.inference.editing):
kept as VAE latents outside the ranges, generated anew inside them, one window per range or group of
close ranges; windows without a range are not sampled.

On Linux it first restarts itself once with glibc's malloc on transparent huge pages, as salsa.train does
(salsa/malloc.py; `GLIBC_TUNABLES=glibc.malloc.hugetlb=0` turns it off).
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before JAX loads: glibc reads its tunables at process start
    from salsa import malloc

    malloc.reexec_with_huge_pages()

import argparse
import os
import sys
from collections.abc import Sequence

from salsa import cli, compilation_cache
from salsa.inference import soundtrack

DEFAULT_CHECKPOINT = os.path.join("runs", "tiny", "generator", "pipeline")
MAX_WINDOW_S = 120.0  # s, the longest --window


def _window(text: str) -> float:
    """--window: seconds > 0, at most MAX_WINDOW_S (one generator call; longer sound is extension's)."""
    value = cli.positive(text)
    if value > MAX_WINDOW_S:
        raise argparse.ArgumentTypeError(
            f"{text!r} is longer than {MAX_WINDOW_S:g} s; a window is one generator call, longer sound "
            "comes from extension"
        )
    return value


def _parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog="python -m salsa.extend", description=__doc__.split("\n")[0])
    p.add_argument("--video", required=True, help="a video file, or a folder of videos")
    p.add_argument(
        "--checkpoint",
        help=f"pipeline checkpoint folder (salsa.inference.checkpoint; default {DEFAULT_CHECKPOINT})",
    )
    p.add_argument(
        "--out", help="output video (a folder when --video is a folder; default NAME.salsa.EXT beside it)"
    )
    p.add_argument("--text", help="text prompt (needs the checkpoint's tokenizer)")
    p.add_argument(
        "--audio",
        action="append",
        help="reference sound to keep, at most one window long (any rate/channels); repeatable",
    )
    p.add_argument(
        "--audio-at",
        type=cli.non_negative,
        action="append",
        help="where the matching --audio starts (seconds; default 0 for a single --audio)",
    )
    p.add_argument(
        "--keep-audio", action="store_true", help="keep the video's own audio outside the --regenerate ranges"
    )
    p.add_argument("--regenerate", help="time ranges to generate anew, START:END[,START:END...] in seconds")
    p.add_argument(
        "--steps", type=cli.positive_int, help="sampling steps, a power of two (default: the config's)"
    )
    p.add_argument("--cfg", type=float, help="guidance scale of the video and text (default: the config's)")
    for name, what in (("video", "the video (semantic + sync)"), ("text", "the text")):
        p.add_argument(f"--cfg-{name}", type=float, help=f"guidance scale of {what}, overriding --cfg")
    p.add_argument(
        "--cfg-audio",
        type=float,
        help="guidance scale of the reference audio (default: the config's sampling.cfg_audio)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--window",
        type=_window,
        help=f"window length in seconds, up to {MAX_WINDOW_S:g} (default: the config's)",
    )
    p.add_argument("--context", type=cli.non_negative, help="context kept from the previous window (seconds)")
    p.add_argument("--wav", help="also write the sound as a WAV (a folder when --video is a folder)")
    p.add_argument("--stream", action="store_true", help="write the WAV window by window as it is made")
    p.add_argument(
        "--batch", type=cli.positive_int, default=4, help="videos per generator call when --video is a folder"
    )
    return p


def _progress(total: int | None):
    try:
        from tqdm import tqdm

        return tqdm(total=total, unit="window", file=sys.stderr, disable=None, dynamic_ncols=True)
    except ImportError:
        return None


def _checkpoint(path: str | None) -> str:
    """The checkpoint folder to load: --checkpoint, else the tiny pipeline's when it exists."""
    if path is not None:
        return path
    if os.path.isfile(os.path.join(DEFAULT_CHECKPOINT, "pipeline.json")):
        return DEFAULT_CHECKPOINT
    raise soundtrack.BadInput(
        f"no --checkpoint given and there is no {DEFAULT_CHECKPOINT}; make one with "
        "`python -m salsa.train --config=configs/tiny.py` or pass --checkpoint DIR."
    )


def _references(audios: list[str] | None, ats: list[float] | None) -> list[tuple[str, float]]:
    """The --audio / --audio-at pairs (a single --audio starts at 0 s by default)."""
    audios, ats = audios or [], ats or []
    if len(audios) == 1 and not ats:
        ats = [0.0]
    if len(ats) != len(audios):
        raise soundtrack.BadInput(
            f"give one --audio-at per --audio (got {len(audios)} --audio and {len(ats)} --audio-at)."
        )
    return list(zip(audios, ats, strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    compilation_cache.enable()
    summary = soundtrack.extend_videos(
        _checkpoint(args.checkpoint),
        args.video,
        args.out,
        wav=args.wav,
        stream=args.stream,
        text=args.text,
        references=_references(args.audio, args.audio_at),
        keep_audio=args.keep_audio,
        regenerate=args.regenerate,
        seed=args.seed,
        steps=args.steps,
        cfg=args.cfg,
        cfg_video=args.cfg_video,
        cfg_text=args.cfg_text,
        cfg_audio=args.cfg_audio,
        window_s=args.window,
        context_s=args.context,
        batch=args.batch,
        progress=_progress,
    )
    print(summary.line(), file=sys.stderr)
    for path in summary.written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
