"""Converts pretrained weights the user has into salsa bundles.

    python -m salsa.convert vae --src SRC --out DIR [--sao43]
    python -m salsa.convert siglip2 --src <transformers Siglip/Siglip2 folder> --out DIR
    python -m salsa.convert ast --src <transformers ASTModel folder> --out DIR
    python -m salsa.convert videoprism --src <VideoPrism .npz> --out DIR
    python -m salsa.convert panns --src Cnn14_16k_mAP=0.438.pth --out DIR
    python -m salsa.convert vggish --src vggish-10086976.pth [--pca vggish_pca_params-970ea276.pth] --out DIR
    python -m salsa.convert passt --src passt-s-f128-p16-s10-ap.476-swa.pt --out DIR
    python -m salsa.convert imagebind --src imagebind_huge.pth --out DIR
    python -m salsa.convert synchformer --src synchformer_state_dict.pth --out DIR

Each component module provides `add_arguments(parser)` and `main(args) -> summary line`, raising
ConvertError (a UserError) for bad input: one line on stderr, exit code 2, nothing written
(salsa.cli.run); an unreadable file (OSError) is reported the same way.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence

from salsa import cli, io
from salsa.convert import ConvertError

# component -> module (torch, where needed, is imported only inside the conversion itself)
COMPONENTS = {
    "vae": "salsa.convert.vae_cli",
    "siglip2": "salsa.convert.siglip2",
    "ast": "salsa.convert.ast",
    "videoprism": "salsa.convert.videoprism_npz",
    "panns": "salsa.convert.panns",
    "vggish": "salsa.convert.vggish",
    "passt": "salsa.convert.passt",
    "imagebind": "salsa.convert.imagebind",
    "synchformer": "salsa.convert.synchformer",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.Parser(prog="python -m salsa.convert", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="component", required=True, metavar="component")
    modules = {name: importlib.import_module(module) for name, module in COMPONENTS.items()}
    for name, module in modules.items():
        help_text = getattr(module, "HELP", None)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    if os.path.realpath(args.out) == os.path.realpath(args.src):
        raise ConvertError(f"--out {args.out} is --src; choose another folder for the bundle.")
    io.check_creatable(args.out, "--out", folder=True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        summary = modules[args.component].main(args)
    except OSError as e:
        raise ConvertError(f"{args.component}: {e}") from None
    if summary:
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
