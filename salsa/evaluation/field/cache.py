"""The embedding cache: OUT/cache/EMBEDDER/KEY.npz, one file per clip and embedder, each written atomically.

KEY hashes the clip file's bytes, the embedder's signature (its bundle's config and parameters file) and
how the clip was read (rate, seconds), so an interrupted evaluation resumes with what is there, a clip
that appears in both folders (real vs itself) is embedded once, and a changed file, bundle or protocol
never reads a stale embedding. A file that cannot be read back is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import numpy as np

from salsa import io

VERSION = 1


class EmbeddingCache:
    def __init__(self, folder: str):
        self.folder = folder

    def path(self, embedder: str, file_sha256: str, signature: str, reader_key: str) -> str:
        key = json.dumps([VERSION, file_sha256, signature, reader_key])
        return os.path.join(self.folder, embedder, hashlib.sha256(key.encode()).hexdigest()[:32] + ".npz")

    def get(self, path: str) -> dict[str, np.ndarray] | None:
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None

    def put(self, path: str, outputs: dict[str, np.ndarray]) -> None:
        with io.atomic_file(path) as temp:
            np.savez(temp, **outputs)
