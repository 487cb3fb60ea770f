"""Converts pretrained weights the user has into salsa's formats.

    python -m salsa.convert vae --src SRC --out DIR [--sao43] [--seed 0]

One subcommand per component (`vae` today); each lives in salsa/convert/<component>.py and registers its
arguments and its run function in COMPONENTS below. Bad input: one line on stderr, exit code 2, no output.
"""

from __future__ import annotations

import argparse
import logging
import sys

from salsa.convert import vae_cli

# component name -> (help, add_arguments(parser), run(args) -> None; raises ValueError for bad input)
COMPONENTS = {"vae": (vae_cli.HELP, vae_cli.add_arguments, vae_cli.run)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m salsa.convert", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="component", required=True, metavar="component")
    for name, (help_text, add_arguments, _) in COMPONENTS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        COMPONENTS[args.component][2](args)
    except (ValueError, OSError) as e:
        print(f"salsa.convert {args.component}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
