"""How long the training loader takes to start on many shards when each open is a wait on storage.

    python -m bench.loader_startup [--shards=256] [--latencies=0,20,50] [--out=...]

On GCS, opening an ArrayRecord shard reads its footer and index: a round trip of tens of milliseconds.
The loader opens every shard before the first batch: to leave out the ones that do not open, to count
their records and, with length buckets, to read their durations index. This writes `--shards` shards of
the toy feature set in the tiny generator's widths (2 records each) and builds the bucketed loader
(`bucketed_batches`, the pipeline configs' loader) over them, with every open of a shard made to wait
`latency` ms first (the local disk stands in for the bucket's data; the wait for its round trip). It
counts the opens and times the construction, then the first batch. Prints one table and writes it to
bench/results/loader_startup.json.
"""

from __future__ import annotations

import os
import tempfile
import time

from absl import app, flags

from configs import generator
from data_pipelines.features import loader, records, toy
from salsa.io import write_json

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "loader_startup.json")

_SHARDS = flags.DEFINE_integer("shards", 256, "How many shards to write.")
_LATENCIES = flags.DEFINE_list("latencies", ["0", "20", "50"], "Wait per open, ms.")
_OUT = flags.DEFINE_string("out", RESULTS, "Where to write the table as JSON.")


def _config(data_dir: str):
    """The tiny generator's config reading data_dir, with a 1 s length bucket besides its 2 s crops."""
    c = generator.get_config("tiny")
    c.data.dir, c.data.buckets, c.batch_size = data_dir, (1.0,), 8
    return c


def _slowed(real, latency_s: float, opened: list[str]):
    def reader(path, *args, **kwargs):
        opened.append(os.fspath(path))
        time.sleep(latency_s)
        return real(path, *args, **kwargs)

    return reader


def measure(config, latency_ms: float) -> dict:
    from array_record.python import array_record_module

    real, opened = array_record_module.ArrayRecordReader, []
    slowed = _slowed(real, latency_ms / 1000, opened)
    array_record_module.ArrayRecordReader = records.ArrayRecordReader = slowed
    try:
        start = time.perf_counter()
        ds = loader.bucketed_batches(config, 0, 1)
        built = time.perf_counter() - start
        opens_at_start = len(opened)
        ds[0]
        first = time.perf_counter() - start
    finally:
        array_record_module.ArrayRecordReader = records.ArrayRecordReader = real
    shards = len(records.shard_paths(config.data.dir))
    return {
        "latency_ms": latency_ms,
        "shards": shards,
        "opens_per_shard_at_start": opens_at_start / shards,
        "start_s": round(built, 3),
        "first_batch_s": round(first, 3),
    }


def main(argv):
    del argv
    with tempfile.TemporaryDirectory(prefix="loader-startup-") as tmp:
        config = _config(os.path.join(tmp, "data"))
        toy.write(config, config.data.dir, n=2 * _SHARDS.value, num_shards=_SHARDS.value)
        rows = [measure(config, float(ms)) for ms in _LATENCIES.value]
    print("| latency per open | shards | opens per shard at start | start s | first batch s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['latency_ms']:g} ms | {r['shards']} | {r['opens_per_shard_at_start']:g} | "
            f"{r['start_s']:.2f} | {r['first_batch_s']:.2f} |"
        )
    write_json(_OUT.value, {"rows": rows})


if __name__ == "__main__":
    app.run(main)
