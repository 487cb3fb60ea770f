"""PANNs CNN14 checkpoint -> salsa bundle (kind 'panns').

    python -m salsa.convert panns --src Cnn14_16k_mAP=0.438.pth --out DIR   # the av-benchmark protocol's
    python -m salsa.convert panns --src Cnn14_mAP=0.431.pth --out DIR       # CNN14 as published (32 kHz)

The front end is read off the file: its STFT length picks the preset (512 -> 16 kHz, 1024 -> 32 kHz,
salsa.models.evaluators.panns.PRESETS), and the mel filterbank it stores must equal the preset's, so a
checkpoint with another front end is refused instead of converted wrongly. BatchNorm running statistics
become parameters (mean, var) beside scale and bias.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from salsa.convert import ConvertError, pth
from salsa.models.encoders.ast_frontend import mel_filterbank
from salsa.models.evaluators.panns import CHANNELS, PRESETS, Cnn14, PannsConfig

EXPECTED = "a PANNs CNN14 checkpoint such as Cnn14_16k_mAP=0.438.pth or Cnn14_mAP=0.431.pth"
HELP = "PANNs CNN14 (.pth from Zenodo record 3987831) -> bundle"


def _norm(w: dict, name: str) -> dict:
    return {
        "scale": w[f"{name}.weight"],
        "bias": w[f"{name}.bias"],
        "mean": w[f"{name}.running_mean"],
        "var": w[f"{name}.running_var"],
    }


def _conv(w: np.ndarray) -> np.ndarray:
    return w.transpose(2, 3, 1, 0)  # (out, in, kt, kf) -> (kt, kf, in, out)


def config_from_weights(w: dict[str, np.ndarray], src: str) -> PannsConfig:
    """The preset whose STFT length and mel filterbank the checkpoint holds; ConvertError otherwise."""
    if "logmel_extractor.melW" not in w:
        raise ConvertError(f"--src {src!r}: no logmel_extractor.melW in it; expected {EXPECTED}.")
    mel = w["logmel_extractor.melW"]  # (n_fft // 2 + 1, mel_bins)
    window = 2 * (mel.shape[0] - 1)
    presets = {p.window: p for p in PRESETS.values()}
    if window not in presets:
        raise ConvertError(
            f"--src {src!r}: a {window}-point STFT front end; known CNN14 front ends use {sorted(presets)}."
        )
    c = dataclasses.replace(presets[window], classes=w["fc_audioset.weight"].shape[0])
    ours = mel_filterbank(c.sample_rate, c.window, c.mel_bins, c.fmin, c.fmax)
    if ours.shape != mel.shape or np.abs(ours - mel).max() > 1e-4 * np.abs(ours).max():
        raise ConvertError(
            f"--src {src!r}: its mel filterbank is not the {c.sample_rate} Hz preset's "
            f"({c.mel_bins} mels, {c.fmin:g}-{c.fmax:g} Hz)."
        )
    return c


def params_from_weights(w: dict[str, np.ndarray]) -> dict:
    blocks = {}
    for i in range(len(CHANNELS)):
        p = f"conv_block{i + 1}"
        blocks[i] = {
            "conv1": {"kernel": _conv(w[f"{p}.conv1.weight"])},
            "norm1": _norm(w, f"{p}.bn1"),
            "conv2": {"kernel": _conv(w[f"{p}.conv2.weight"])},
            "norm2": _norm(w, f"{p}.bn2"),
        }
    return {
        "norm0": _norm(w, "bn0"),
        "blocks": blocks,
        "fc1": {"kernel": w["fc1.weight"].T, "bias": w["fc1.bias"]},
        "fc_audioset": {"kernel": w["fc_audioset.weight"].T, "bias": w["fc_audioset.bias"]},
    }


def convert(src: str, out: str) -> PannsConfig:
    config, params = pth.read_mapped(
        src, EXPECTED, lambda w: (config_from_weights(w, src), params_from_weights(w))
    )
    pth.save_checked(out, "panns", Cnn14, config, params, src)
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="CNN14 checkpoint, e.g. Cnn14_16k_mAP=0.438.pth")
    parser.add_argument("--out", required=True, help="output bundle directory")


def main(args: argparse.Namespace) -> str:
    c = convert(args.src, args.out)
    return f"PANNs CNN14 ({c.sample_rate} Hz front end, {c.classes} classes) -> {args.out}"
