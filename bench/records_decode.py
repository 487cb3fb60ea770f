"""How fast feature records decode: the version-1 `.npz` read with np.load (the old code), the same bytes
read by today's `records.decode`, and version-2 records.

    python -m bench.records_decode [--records=200] [--repeats=5]

Decoding runs in grain's reader threads on the training step's critical path. Record sizes: the tiny
pipeline's 2 s and 4 s clips (latents (T, 16) at 62.5 Hz, semantic (T8, 64), sync (T24, 64), text (64,))
and the full-size config's 10 s clip (latents (431, 64), semantic (80, 1152), sync (240, 768), text
(1152,)). One thread, best of `--repeats` passes over `--records` records. Prints one table and writes it
to bench/results/records_decode.json. Today's decode returns
read-only views of the record's bytes; `v2_copied` adds a copy of every array, as np.load's result was.
"""

from __future__ import annotations

import io
import os
import time

import numpy as np
from absl import app, flags

from data_pipelines.features import records
from salsa.io import write_json

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "records_decode.json")

# name: (seconds, latent rate, latent dim, semantic dim, sync dim, text dim)
SIZES = {
    "tiny 2 s": (2.0, 62.5, 16, 64, 64, 64),
    "tiny 4 s": (4.0, 62.5, 16, 64, 64, 64),
    "full 10 s": (10.0, 43.07, 64, 1152, 768, 1152),
}


def make_record(seconds, latent_rate, latent_dim, semantic_dim, sync_dim, text_dim, index, rng):
    return {
        "latents": rng.standard_normal((round(seconds * latent_rate), latent_dim), np.float32),
        "semantic": rng.standard_normal((round(seconds * 8), semantic_dim), np.float32),
        "sync": rng.standard_normal((round(seconds * 24), sync_dim), np.float32),
        "text": rng.standard_normal(text_dim, np.float32),
        "caption": "a glass bottle hits a wooden table twice",
        "duration": seconds,
        "id": f"bench-{index:06d}",
    }


def npz_bytes(record) -> bytes:
    """Version 1, as the old `records.encode` wrote it."""
    arrays = {name: np.asarray(record[name], np.float32) for name in records.ARRAY_FIELDS}
    arrays.update(caption=np.asarray(record["caption"]), id=np.asarray(record["id"]))
    arrays["duration"] = np.asarray(float(record["duration"]), np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def np_load_decode(data: bytes) -> dict:
    """The old `records.decode` (np.load, whose .npy header parser is ast.literal_eval)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        record = {name: npz[name] for name in npz.files}
    record["caption"] = str(record.get("caption", ""))
    record["id"] = str(record["id"])
    record["duration"] = float(record["duration"])
    return record


def decode_and_copy(data: bytes) -> dict:
    """Today's decode plus a copy of every array: what a reader that writes to the arrays pays."""
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in records.decode(data).items()}


def records_per_s(decode, blobs: list[bytes], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for b in blobs:
            decode(b)
        best = min(best, time.perf_counter() - t)
    return len(blobs) / best


def main(argv: list[str]) -> None:
    del argv
    rng = np.random.default_rng(0)
    rows = []
    for name, size in SIZES.items():
        rs = [make_record(*size, i, rng) for i in range(_RECORDS.value)]
        old, new = [npz_bytes(r) for r in rs], [records.encode(r) for r in rs]
        before = records_per_s(np_load_decode, old, _REPEATS.value)
        v1 = records_per_s(records.decode, old, _REPEATS.value)
        v2 = records_per_s(records.decode, new, _REPEATS.value)
        v2_copy = records_per_s(decode_and_copy, new, _REPEATS.value)
        rows.append(
            {
                "size": name,
                "kib_v1": round(len(old[0]) / 1024, 1),
                "kib_v2": round(len(new[0]) / 1024, 1),
                "np_load_v1_per_s": round(before),
                "decode_v1_per_s": round(v1),
                "decode_v2_per_s": round(v2),
                "v2_copied_per_s": round(v2_copy),
                "v2_over_np_load": round(v2 / before, 1),
            }
        )
    keys = list(rows[0])
    widths = [max(len(k), *(len(str(r[k])) for r in rows)) for k in keys]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[k]).rjust(w) for k, w in zip(keys, widths, strict=True)))
    result = {
        "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "records": _RECORDS.value,
        "repeats": _REPEATS.value,
        "rows": rows,
    }
    write_json(RESULTS, result)


if __name__ == "__main__":
    # Flags exist only when the bench runs as a program: tests import several benches into one process.
    _RECORDS = flags.DEFINE_integer("records", 200, "Records per timed pass.")
    _REPEATS = flags.DEFINE_integer("repeats", 5, "Timed passes; the best counts.")
    app.run(main)
