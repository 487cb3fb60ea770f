"""Extracts training features from clips into record shards (docs/extraction.md).

    python -m data_pipelines.extract --config=configs/extract_tiny.py --workdir=OUT \
        [--config.components.vae=DIR ...] [--process-index=I --process-count=N]

Run it on every host (or as N processes with the flags): process I takes the shards s with s % N == I.
Restarting the same command resumes where it stopped. Prints the clips it skipped and why; bad input (a
missing or mismatched bundle, an unknown source, a workdir begun with other settings) is one line,
`error: ...`, and exit code 2 (salsa.cli).

On Linux it first restarts itself once with glibc's malloc on transparent huge pages, as salsa.train does
(salsa/malloc.py; `GLIBC_TUNABLES=glibc.malloc.hugetlb=0` turns it off).
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before JAX loads: glibc reads its tunables at process start
    from salsa import malloc

    malloc.reexec_with_huge_pages()

import logging
import time

import jax
from absl import app, flags
from ml_collections import config_flags
from tqdm import tqdm

from data_pipelines.extract import run
from salsa import cli
from salsa.training import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/extract_tiny.py.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder for the record shards and extraction.json.")
_INDEX = flags.DEFINE_integer("process-index", None, "This process's index (default: jax.process_index()).")
_COUNT = flags.DEFINE_integer("process-count", None, "Number of processes (default: jax.process_count()).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        if _INDEX.value is None and _COUNT.value is None:
            distributed.maybe_initialize()
            index, count = jax.process_index(), jax.process_count()
        else:
            index, count = _INDEX.value or 0, _COUNT.value or 1
    except distributed.DistributedEnvError as e:
        raise run.ExtractError(str(e)) from None
    bar = tqdm(desc=f"extract {index}/{count}", unit="clip", dynamic_ncols=True)

    def on_clip(clip_id: str, skip: dict | None) -> None:
        bar.update(1)
        if skip is not None:
            logging.warning("skipped %s", skip["reason"])

    start = time.perf_counter()
    try:
        result = run.extract(_CONFIG.value, _WORKDIR.value, index, count, on_clip)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    rate = result.done_now / seconds if seconds > 0 else 0.0
    print(f"process {index}/{count}: {result.done_now} clips in {seconds:.1f} s ({rate:.2f} clips/s)")
    report = result.report
    skipped = report["skipped"] if report is not None else result.skipped
    if report is not None:
        print(
            f"{_WORKDIR.value}: complete, {report['written']} of {report['clips']} clips written, "
            f"{len(skipped)} skipped (extraction.json)"
        )
    else:
        print(f"{_WORKDIR.value}: this process's shards are done; waiting for the other processes' shards")
    for s in skipped:
        print(f"  skipped {s['source']}: {s['reason']}")


if __name__ == "__main__":
    cli.run_absl(main)
