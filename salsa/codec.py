"""The audio codec on the command line: audio <-> VAE latents with a checkpoint bundle.

    python -m salsa.codec encode --checkpoint DIR in.wav out.npy [--normalize]
    python -m salsa.codec decode --checkpoint DIR in.npy out.wav [--normalized]
    python -m salsa.codec stats  --checkpoint DIR --data synthetic|FOLDER [--clips N]

encode reads any format PyAV decodes, resamples to the model's rate and channel count, and writes the
latent means as (T, latent_dim) float32, T = ceil(samples / hop); --normalize standardises them with the
bundle's per-channel statistics (as the generator sees them). decode writes exactly T * hop samples
(.wav or .flac); --normalized says the input was normalised. stats computes those statistics over a data
set and stores them in the bundle. Audio of any length is processed in bounded memory (overlapping
windows of --chunk-frames latent frames). Bad input: one line on stderr, exit code 2, no output file
(salsa.cli.run).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Sequence

import numpy as np

from data_pipelines.media import decode_audio, write_audio
from salsa import bundle, cli, io
from salsa.errors import UserError
from salsa.inference import codec as vae_codec
from salsa.models.vae.model import VAE


class CodecError(UserError):
    """An input, output or flag of `python -m salsa.codec` that cannot be used; one sentence."""


def _stats_or_fail(stats, checkpoint: str) -> dict[str, np.ndarray]:
    if stats is None:
        raise CodecError(
            f"{checkpoint} has no latent statistics; compute them with "
            f"`python -m salsa.codec stats --checkpoint {checkpoint} --data ...`."
        )
    return stats


def _check_output(source: str, output: str) -> None:
    """The output is not the input and can be written (before any work)."""
    if os.path.realpath(source) == os.path.realpath(output):
        raise CodecError(f"the output {output} is the input; choose another output path.")
    io.check_creatable(output)


def encode(args) -> None:
    if not args.output.endswith(".npy"):
        raise CodecError(f"output {args.output} must end in .npy.")
    model, stats = bundle.vae_model(args.checkpoint)
    if args.normalize:
        _stats_or_fail(stats, args.checkpoint)
    audio = decode_audio(args.input, model.config.sample_rate, model.config.audio_channels)
    if audio.shape[0] == 0:
        raise CodecError(f"{args.input} holds no audio samples.")
    latents = vae_codec.encode(model, audio, args.chunk_frames)
    if args.normalize:
        latents = vae_codec.normalize(latents, stats)
    with io.atomic_file(args.output) as temp, open(temp, "wb") as f:
        np.save(f, latents.astype(np.float32))
    logging.info("%s: %d samples -> %s latents %s", args.input, audio.shape[0], args.output, latents.shape)


def decode(args) -> None:
    model, stats = bundle.vae_model(args.checkpoint)
    try:
        latents = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CodecError(f"{args.input}: not a .npy array ({e}).") from None
    d = model.config.latent_dim
    if latents.ndim != 2 or latents.shape[1] != d or latents.shape[0] == 0 or not np.isfinite(latents).all():
        raise CodecError(
            f"{args.input}: expected finite latents of shape (T >= 1, {d}), got {latents.shape}."
        )
    ext = os.path.splitext(args.output)[1].lower()
    if ext not in (".wav", ".flac"):
        raise CodecError(f"output {args.output} must end in .wav or .flac.")
    if args.normalized:
        latents = vae_codec.denormalize(latents, _stats_or_fail(stats, args.checkpoint))
    audio = vae_codec.decode(model, latents, args.chunk_frames)
    # float WAV keeps the decoded samples exactly; FLAC is integer-only, so 24-bit
    write_audio(args.output, audio, model.config.sample_rate, subtype="FLOAT" if ext == ".wav" else "PCM_24")
    logging.info("%s: latents %s -> %s, %d samples", args.input, latents.shape, args.output, audio.shape[0])


def stats(args) -> None:
    from data_pipelines.audio.crops import AudioFiles, SyntheticAudio

    config, params, _, meta = bundle.load_vae(args.checkpoint)
    model = bundle.materialize(VAE, config, params)
    if args.data == "synthetic":
        source = SyntheticAudio(
            args.clips, args.seed, args.seconds, config.sample_rate, config.audio_channels
        )
    else:
        source = AudioFiles(args.data, config.sample_rate, config.audio_channels)
    n = min(len(source), args.clips)
    clips = (source[i] for i in itertools.islice(range(len(source)), n))
    result = vae_codec.latent_stats(model, clips, args.chunk_frames)
    bundle.save_vae(
        args.checkpoint, config, params, result, {**meta, "stats_data": args.data, "stats_clips": n}
    )
    logging.info(
        "stats over %d clips: mean |mean| %.3f, mean std %.3f",
        n,
        abs(result["mean"]).mean(),
        result["std"].mean(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.Parser(prog="python -m salsa.codec", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = cli.Parser(add_help=False)
    common.add_argument("--checkpoint", required=True, help="VAE bundle directory")
    common.add_argument("--chunk-frames", type=cli.positive_int, default=256, help="latent frames per window")
    p = sub.add_parser("encode", parents=[common], help="audio file -> (T, latent_dim) .npy")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--normalize", action="store_true", help="standardise with the bundle's statistics")
    p = sub.add_parser("decode", parents=[common], help="(T, latent_dim) .npy -> .wav/.flac")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--normalized", action="store_true", help="the latents were written with --normalize")
    p = sub.add_parser("stats", parents=[common], help="per-channel latent statistics -> the bundle")
    p.add_argument("--data", required=True, help="'synthetic' or a folder of audio files")
    p.add_argument("--clips", type=cli.positive_int, default=256, help="at most this many clips")
    p.add_argument("--seconds", type=cli.positive, default=8.0, help="synthetic clip length")
    p.add_argument("--seed", type=int, default=0, help="synthetic world seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command != "stats":
            _check_output(args.input, args.output)
        {"encode": encode, "decode": decode, "stats": stats}[args.command](args)
    except OSError as e:  # unreadable or unwritable files are the user's input (MediaError is a UserError)
        raise CodecError(f"salsa.codec {args.command}: {e}") from None
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
