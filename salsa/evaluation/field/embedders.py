"""The registry of the field's embedders: one `Embedder` entry each, naming its bundle, its columns and
how it is loaded; `load` gives a `Loaded` that reads a clip (its `reader`) and runs a batch.

Adding an embedder is one entry in `REGISTRY`: a loader returning `Loaded` (a reader with a hashable
`key()` and a `read(path)` raising inputs.Skip, and a batched `run`), and its columns (scoring.KINDS says
what each kind of column computes; a `Loaded` may bring its own scorer for a kind, as Synchformer's
does for DeSync, whose offset head runs on each pair). ImageBind's and Synchformer's entries live in
imagebind.py and synchformer.py (they read video as well as audio). An embedder with `min_seconds`
needs that much of each clip: under a shorter --seconds it is not run (its columns say why).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable

import jax
import numpy as np

from salsa import bundle
from salsa.errors import UserError
from salsa.evaluation.field.imagebind import load_imagebind
from salsa.evaluation.field.inputs import AudioReader
from salsa.evaluation.field.synchformer import load_synchformer
from salsa.metrics import swsd as swsd_lib
from salsa.models.evaluators.synchformer_frontend import SynchformerFrontend


@dataclasses.dataclass(frozen=True)
class Column:
    name: str  # as in the paper's tables: FD_PaSST, KL_PANNs, IS, ...
    kind: str  # scoring.KINDS: fd, kl, is, swsd, ib; desync (its scorer comes with the embedder)
    output: str  # the embedder output it reads
    better: str  # "lower" or "higher"


@dataclasses.dataclass
class Loaded:
    """An embedder ready to run: `run((batch, ...) inputs) -> {output: (batch, ...)}` (batch padded to a
    fixed size by the caller, so a jit compiles once); `signature` changes when the weights do."""

    reader: AudioReader  # or any reader of that shape (imagebind.VideoAudioReader gives a dict of arrays)
    run: Callable[[np.ndarray | dict[str, np.ndarray]], dict[str, np.ndarray]]
    signature: str
    protocol: str  # one paragraph for the report
    weights: dict  # what the report says about the bundle (path, source file, its sha256)
    scorers: dict[str, Callable] = dataclasses.field(default_factory=dict)  # kind -> scorer (scoring.KINDS')


@dataclasses.dataclass(frozen=True)
class Embedder:
    name: str  # --metrics name and the bundle's folder under --weights
    title: str
    columns: tuple[Column, ...]
    source: str  # the released file and the command that makes the bundle (the missing-bundle line)
    load: Callable[[str | None, float], Loaded]  # (bundle dir or None, seconds)
    needs_weights: bool = True
    min_seconds: float = 0.0  # a shorter --seconds: not run (listed), or refused when named in --metrics


def bundle_signature(path: str) -> str:
    """Changes when the bundle's config or parameters change (config bytes, params.npz size and mtime)."""
    h = hashlib.sha256()
    with open(os.path.join(path, bundle.CONFIG), "rb") as f:
        h.update(f.read())
    st = os.stat(os.path.join(path, bundle.PARAMS))
    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _jitted(model, method: str) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    from flax import nnx

    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state, x):
        out = getattr(nnx.merge(graphdef, state), method)(x)
        return out if isinstance(out, dict) else {"embedding": out}

    return lambda x: {k: np.asarray(v) for k, v in forward(state, x).items()}


def _weights(path: str, kind: str) -> tuple[bundle.Bundle, dict]:
    b = bundle.read(path, kind)
    return b, {"bundle": path, "source": b.meta.get("source"), "sha256": b.meta.get("sha256")}


def load_passt(path: str, seconds: float) -> Loaded:
    from salsa.models.evaluators.passt import Passt, PasstConfig

    b, weights = _weights(path, "passt")
    config = PasstConfig.from_dict(b.config)
    model = bundle.materialize(Passt, config, b.params, where=os.path.join(path, bundle.PARAMS))
    rate, clip = config.frontend.sample_rate, config.clip_seconds
    seen = "zero-padded to" if seconds < clip else "cropped to" if seconds > clip else "exactly"
    protocol = (
        f"audio at {rate} Hz, first {seconds:g} s, {seen} PaSST's {clip:g} s, one pass; FD on the "
        f"{config.vit.width}-d embedding (mean of the final CLS and DIST tokens), KL and IS on the "
        f"{config.classes} logits through a softmax"
    )
    return Loaded(
        AudioReader(rate, seconds), _jitted(model, "embed_clips"), bundle_signature(path), protocol, weights
    )


def load_panns(path: str, seconds: float) -> Loaded:
    from salsa.models.evaluators.panns import PRESETS, Cnn14, PannsConfig

    b, weights = _weights(path, "panns")
    config = PannsConfig.from_dict(b.config)
    need = 32 * config.hop / config.sample_rate  # CNN14's five 2x2 poolings need 32 frames
    if seconds < need:
        raise UserError(
            f"--seconds {seconds:g} is too short for PANNs CNN14: it needs at least {need:.2f} s."
        )
    model = bundle.materialize(Cnn14, config, b.params, where=os.path.join(path, bundle.PARAMS))
    front = (
        "the protocol's 16 kHz front end"
        if config == PRESETS["16k"]
        else "NOT the protocol's 16 kHz front end"
    )
    protocol = (
        f"audio at {config.sample_rate} Hz ({front}), first {seconds:g} s, one pass; FD on the 2048-d "
        f"embedding (fc1 after its ReLU), KL and IS on the {config.classes} logits through a softmax"
    )
    return Loaded(
        AudioReader(config.sample_rate, seconds),
        _jitted(model, "__call__"),
        bundle_signature(path),
        protocol,
        weights,
    )


def load_vggish(path: str, seconds: float) -> Loaded:
    from salsa.models.evaluators import vggish_frontend
    from salsa.models.evaluators.vggish import Vggish, VggishConfig

    b, weights = _weights(path, "vggish")
    model = bundle.materialize(
        Vggish, VggishConfig.from_dict(b.config), b.params, where=os.path.join(path, bundle.PARAMS)
    )
    rate = vggish_frontend.SAMPLE_RATE
    n = vggish_frontend.num_examples(round(seconds * rate))
    if n < 1:
        raise UserError(f"--seconds {seconds:g} is shorter than one 0.96 s VGGish example.")
    protocol = (
        f"audio at {rate} Hz, first {seconds:g} s, {n} non-overlapping 0.96 s examples per clip; FD on the "
        "128-d embedding before the last ReLU, no PCA, the examples of all clips pooled into one set"
    )
    return Loaded(
        AudioReader(rate, seconds), _jitted(model, "embed"), bundle_signature(path), protocol, weights
    )


SWSD_RATE = 16000


def load_swsd(path: str | None, seconds: float) -> Loaded:
    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        return {"frames": np.stack([swsd_lib.log_mel_frames(a, SWSD_RATE) for a in x]).astype(np.float32)}

    protocol = (
        f"audio at {SWSD_RATE} Hz, first {seconds:g} s; per pair, the sliced 1-Wasserstein distance between "
        "the l1-normalised log-mel frames (64 mels, 25 ms every 10 ms, 100 directions, seed 0), paper A.2"
    )
    return Loaded(AudioReader(SWSD_RATE, seconds), run, "swsd-1", protocol, {})


REGISTRY: dict[str, Embedder] = {
    e.name: e
    for e in (
        Embedder(
            "passt",
            "PaSST",
            (
                Column("FD_PaSST", "fd", "embedding", "lower"),
                Column("KL_PaSST", "kl", "logits", "lower"),
                Column("IS_PaSST", "is", "logits", "higher"),
            ),
            "passt-s-f128-p16-s10-ap.476-swa.pt: python -m salsa.convert passt --src FILE --out DIR/passt",
            load_passt,
        ),
        Embedder(
            "panns",
            "PANNs CNN14",
            (
                Column("FD_PANNs", "fd", "embedding", "lower"),
                Column("KL_PANNs", "kl", "logits", "lower"),
                Column("IS", "is", "logits", "higher"),
            ),
            "Cnn14_16k_mAP=0.438.pth: python -m salsa.convert panns --src FILE --out DIR/panns",
            load_panns,
        ),
        Embedder(
            "vggish",
            "VGGish",
            (Column("FD_VGG", "fd", "embedding", "lower"),),
            "vggish-10086976.pth: python -m salsa.convert vggish --src FILE --out DIR/vggish",
            load_vggish,
        ),
        Embedder(
            "imagebind",
            "ImageBind",
            (Column("IB", "ib", "", "higher"),),
            "imagebind_huge.pth: python -m salsa.convert imagebind --src FILE --out DIR/imagebind",
            load_imagebind,
        ),
        Embedder(
            "synchformer",
            "Synchformer",
            (Column("DeSync", "desync", "", "lower"),),
            "synchformer_state_dict.pth: "
            "python -m salsa.convert synchformer --src FILE --out DIR/synchformer",
            load_synchformer,
            min_seconds=SynchformerFrontend().window_seconds,
        ),
        Embedder(
            "swsd",
            "SWSD (no network)",
            (Column("SWSD", "swsd", "frames", "lower"),),
            "needs no weights",
            load_swsd,
            needs_weights=False,
        ),
    )
}
# The order of the report's table (the paper's Table 1, then ours).
COLUMN_ORDER = (
    "FD_PaSST",
    "FD_PANNs",
    "FD_VGG",
    "KL_PANNs",
    "KL_PaSST",
    "IS",
    "IS_PaSST",
    "IB",
    "DeSync",
    "SWSD",
)
