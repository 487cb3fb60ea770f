"""The generated-audio cache: OUT/.cache, one .npz per experiment part, named by what made it.

A part's name is a hash of the generating checkpoint's signature and the part's spec (experiment, clips,
steps, guidance, seed...), so a rerun after an interruption regenerates only what is missing, and a
changed checkpoint or setting never reads stale audio. Each file appears complete or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable

import numpy as np

from salsa import io
from salsa.inference import checkpoint


def checkpoint_signature(directory: str | os.PathLike) -> str:
    """Changes when the checkpoint's description or generator parameters change."""
    directory = os.fspath(directory)
    h = hashlib.sha256()
    with open(os.path.join(directory, checkpoint.FILE), "rb") as f:
        h.update(f.read())
    gen = os.path.join(directory, checkpoint.NAMES["generator"], "params.npz")
    st = os.stat(gen)
    h.update(f"{os.path.realpath(gen)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


class Cache:
    """Generated audio of one checkpoint (by its `checkpoint_signature`) under OUT/.cache."""

    def __init__(self, out: str, checkpoint_signature: str):
        self.folder, self.signature = os.path.join(out, ".cache"), checkpoint_signature

    def path(self, spec: dict) -> str:
        """The file of a part; spec["part"] names the experiment and starts the file name."""
        key = hashlib.sha256(json.dumps([self.signature, spec], sort_keys=True).encode()).hexdigest()[:20]
        return os.path.join(self.folder, f"{spec['part']}-{key}.npz")

    def get_or_make(self, spec: dict, make: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
        """The cached audio of `spec`, or `make()`'s, stored first."""
        path = self.path(spec)
        if os.path.isfile(path):
            with np.load(path) as f:
                return [f[f"a{i}"] for i in range(len(f.files))]
        audio = make()
        with io.atomic_file(path) as temp:
            np.savez(temp, **{f"a{i}": a for i, a in enumerate(audio)})
        return audio
