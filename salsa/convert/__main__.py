"""Converts downloaded weights into salsa bundles.

    python -m salsa.convert siglip2 --src <transformers SigLIP folder> --out DIR
    python -m salsa.convert ast --src <transformers ASTModel folder> --out DIR
    python -m salsa.convert videoprism --src <VideoPrism .npz> --out DIR

Each component module provides `add_arguments(parser)` and `main(args) -> summary line`. Bad input:
one line on stderr, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from salsa.convert.hf import ConvertError

COMPONENTS = {
    "siglip2": "salsa.convert.siglip2",
    "ast": "salsa.convert.ast",
    "videoprism": "salsa.convert.videoprism_npz",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m salsa.convert", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="component", required=True)
    modules = {}
    for name, module_name in COMPONENTS.items():
        modules[name] = importlib.import_module(module_name)
        modules[name].add_arguments(sub.add_parser(name))
    args = parser.parse_args(argv)
    try:
        summary = modules[args.component].main(args)
    except (ConvertError, FileNotFoundError) as e:
        print(f"salsa.convert {args.component}: {e}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
