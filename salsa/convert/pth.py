"""Reading a released torch file (.pth) without executing pickled code: `torch.load(weights_only=True)`,
with numpy arrays (which some releases store) allowed as plain data. Errors name the flag and the
file the converter expected. `read_mapped` and `save_checked` are the two ends every torch-file
converter shares (PANNs, PaSST, VGGish, ImageBind): load and map to our parameters; check the shapes
against the model and save the bundle with its source's SHA-256."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from salsa import bundle, io
from salsa.convert import ConvertError

T = TypeVar("T")


def _numpy_globals() -> list:
    """The numpy reconstructors an ndarray's pickle names (under numpy 1's and numpy 2's module paths)."""
    rebuild = np._core.multiarray._reconstruct
    dtypes = [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8)]
    return [
        rebuild,
        (rebuild, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *dtypes,
    ]


def load(path: str, flag: str, expected: str) -> dict[str, np.ndarray]:
    """The float32 arrays of the torch file at `path` (a state dict, or one under "model"/"state_dict");
    ConvertError '<flag>: ...' naming `expected` when it is missing or is not such a file."""
    if not os.path.isfile(path):
        raise ConvertError(f"{flag} {path!r}: no such file; expected {expected} (docs/metrics.md).")
    import torch

    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, ... for foreign files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConvertError(
            f"{flag} {path!r}: not a torch weights file ({first}); expected {expected}."
        ) from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ConvertError(
            f"{flag} {path!r}: holds a {type(obj).__name__}, not a state dict; expected {expected}."
        )
    out = {}
    for k, v in obj.items():
        if hasattr(v, "detach"):
            out[k] = v.detach().float().numpy()
        elif isinstance(v, np.ndarray):
            out[k] = v.astype(np.float32)
    return out


def read_mapped(src: str, expected: str, mapping: Callable[[dict[str, np.ndarray]], T]) -> T:
    """`mapping` of the arrays of the torch file --src; a tensor the mapping looks up and the file lacks
    (KeyError) is ConvertError '--src ...: lacks KEY; expected <expected>'."""
    w = load(src, "--src", expected)
    try:
        return mapping(w)
    except KeyError as e:
        raise ConvertError(f"--src {src!r}: lacks {e.args[0]!r}; expected {expected}.") from None


def save_checked(
    out: str,
    kind: str,
    model_cls: Callable[..., Any],
    config: Any,
    params: dict,
    src: str,
    *,
    arrays: dict | None = None,
    meta: dict | None = None,
) -> None:
    """Saves `params` as a bundle of `kind` at `out` once they fit `model_cls(config)` (a misfit is one
    error naming --src, nothing written); the meta records the source file and its SHA-256."""
    bundle.check_shapes(bundle.abstract(model_cls, config), params, where=f"--src {src!r}")
    meta = {"source": src, "sha256": io.file_sha256(src), **(meta or {})}
    bundle.save(out, kind, config.to_dict(), params, arrays=arrays, meta=meta)
