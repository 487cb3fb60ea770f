"""`python -m salsa.pipeline assemble`: a pipeline checkpoint (salsa/inference/checkpoint.py) from its parts.

    python -m salsa.pipeline assemble --generator runs/tiny/generator --vae VAE --siglip SIGLIP \\
        --sync SYNC [--tokenizer tokenizer.json] --out ckpt

`--generator` is a generator bundle or a training workdir that exported one (WORKDIR/pipeline/generator).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from salsa import cli
from salsa.inference import checkpoint


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m salsa.pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assemble", help="build a pipeline checkpoint from its parts")
    a.add_argument("--generator", required=True, help="generator bundle, or a training workdir")
    a.add_argument("--vae", required=True, help="VAE bundle folder (with latent statistics)")
    a.add_argument("--siglip", required=True, help="SigLIP 2 bundle folder")
    a.add_argument("--sync", required=True, help="sync-encoder bundle folder")
    a.add_argument("--tokenizer", help="tokenizer.json (needed for text prompts)")
    a.add_argument("--out", required=True, help="the checkpoint folder to write")
    args = parser.parse_args(argv)
    config, params = checkpoint.generator_bundle(args.generator)
    checkpoint.save(
        args.out, config, params, vae=args.vae, siglip=args.siglip, sync=args.sync, tokenizer=args.tokenizer
    )
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
