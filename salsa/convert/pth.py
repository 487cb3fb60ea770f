"""Reading a released torch file (.pth) without executing pickled code: `torch.load(weights_only=True)`,
with numpy arrays (which some releases store) allowed as plain data. Errors name the flag and the
file the converter expected."""

from __future__ import annotations

import hashlib
import os

import numpy as np

from salsa.convert import ConvertError


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


def sha256(path: str) -> str:
    """The file's SHA-256 (hex), recorded in the bundle's meta so a conversion names its source exactly."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
