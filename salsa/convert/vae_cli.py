"""`python -m salsa.convert vae`: a stable-audio-tools or diffusers Oobleck checkpoint -> a VAE bundle."""

from __future__ import annotations

import argparse
import logging
import os

from salsa import bundle
from salsa.convert import ConvertError
from salsa.convert import vae as convert
from salsa.models.vae import model as vae_lib

HELP = "Oobleck VAE (Stable Audio): stable-audio-tools checkpoint or diffusers AutoencoderOobleck folder."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, help="checkpoint file or folder (safetensors or torch state dict)")
    p.add_argument("--out", required=True, help="bundle directory to write (config.json + params.npz)")
    p.add_argument(
        "--sao43",
        action="store_true",
        help="make the 43 Hz variant: every layer whose shape is unchanged comes from SRC (which must have "
        "the sao geometry), the replaced first encoder and last decoder layers are freshly initialised",
    )
    p.add_argument("--seed", type=int, default=0, help="initialisation seed of the layers --sao43 replaces")


def main(args: argparse.Namespace) -> str:
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ConvertError(f"--out {args.out} exists and is not a directory.")
    config, params = convert.load_source(args.src)
    logging.info("converted %s: %s", args.src, config)
    meta = {"source": os.path.abspath(args.src)}
    if args.sao43:
        if config.strides[0] != 2:
            raise ConvertError(
                f"--sao43 needs a source whose first stride is 2 (sao geometry), got {config.strides}."
            )
        config = vae_lib.VAEConfig(**{**config.to_dict(), "strides": (1, *config.strides[1:])})
        fresh = bundle.params_of(bundle.build(vae_lib.VAE, config, seed=args.seed))
        params, kept = convert.transplant(fresh, params)
        logging.info("sao43: freshly initialised %s; all other layers converted", ", ".join(kept))
        meta["sao43_initialised"] = kept
    bundle.check_shapes(bundle.abstract(vae_lib.VAE, config), params)  # before anything is written
    bundle.save_vae(args.out, config, params, meta=meta)
    return f"wrote {args.out} (hop {config.hop}, {config.latent_rate:.2f} latent frames/s)"
