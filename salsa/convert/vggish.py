"""VGGish (torchvggish's port of the released weights) -> salsa bundle (kind 'vggish').

    python -m salsa.convert vggish --src vggish-10086976.pth [--pca vggish_pca_params-970ea276.pth] --out DIR

--src is the state dict torchvggish downloads (features.N / embeddings.N keys); --pca, optional, the
AudioSet PCA parameters (pca_eigen_vectors (128, 128), pca_means (128,)) that torchvggish's
postprocessing applies, stored in the bundle as pca.npz (eigen_vectors, means). The av-benchmark
protocol does not post-process, so its FD needs no --pca.
"""

from __future__ import annotations

import argparse

import numpy as np

from salsa import io
from salsa.convert import ConvertError, pth
from salsa.models.evaluators.vggish import LAYERS, Vggish, VggishConfig

EXPECTED = "the VGGish state dict vggish-10086976.pth"
EXPECTED_PCA = "the VGGish PCA file vggish_pca_params-970ea276.pth"
HELP = "VGGish (torchvggish's vggish-10086976.pth, optional PCA file) -> bundle"


def _conv_indices() -> list[int]:
    """Positions of the convolutions in torchvggish's `features` Sequential (conv, ReLU, ..., MaxPool)."""
    out, i = [], 0
    for v in LAYERS:
        if v == "M":
            i += 1
        else:
            out.append(i)
            i += 2
    return out


def params_from_weights(w: dict[str, np.ndarray]) -> dict:
    convs = {
        n: {"kernel": w[f"features.{i}.weight"].transpose(2, 3, 1, 0), "bias": w[f"features.{i}.bias"]}
        for n, i in enumerate(_conv_indices())
    }
    fc = {
        name: {"kernel": w[f"embeddings.{i}.weight"].T, "bias": w[f"embeddings.{i}.bias"]}
        for name, i in (("fc1", 0), ("fc2", 2), ("fc3", 4))
    }
    return {"convs": convs, **fc}


def read_pca(path: str, embedding: int) -> dict[str, np.ndarray]:
    w = pth.load(path, "--pca", EXPECTED_PCA)
    try:
        vectors, means = w["pca_eigen_vectors"], w["pca_means"].reshape(-1)
    except KeyError as e:
        raise ConvertError(f"--pca {path!r}: lacks {e.args[0]!r}; expected {EXPECTED_PCA}.") from None
    if vectors.shape != (embedding, embedding) or means.shape != (embedding,):
        raise ConvertError(
            f"--pca {path!r}: eigen vectors {vectors.shape} and means {means.shape}; expected "
            f"({embedding}, {embedding}) and ({embedding},)."
        )
    return {"eigen_vectors": vectors, "means": means}


def convert(src: str, out: str, pca: str | None = None) -> VggishConfig:
    params = pth.read_mapped(src, EXPECTED, params_from_weights)
    config = VggishConfig(embedding=params["fc3"]["bias"].shape[0])
    arrays = None if pca is None else {"pca": read_pca(pca, config.embedding)}
    meta = None if pca is None else {"pca": pca, "pca_sha256": io.file_sha256(pca)}
    pth.save_checked(out, "vggish", Vggish, config, params, src, arrays=arrays, meta=meta)
    return config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="VGGish state dict, vggish-10086976.pth")
    parser.add_argument("--pca", help="optional PCA parameters, vggish_pca_params-970ea276.pth")
    parser.add_argument("--out", required=True, help="output bundle directory")


def main(args: argparse.Namespace) -> str:
    convert(args.src, args.out, args.pca)
    return f"VGGish{' with PCA postprocessing' if args.pca else ''} -> {args.out}"
