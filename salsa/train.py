"""Trains a task (config.task) and resumes from the newest checkpoint in the workdir.

    python -m salsa.train --config=configs/vae_tiny.py --workdir=/tmp/run [--config.total_steps=1000]

A config with stages (configs/tiny.py) runs them all instead, each in WORKDIR/<stage>, skipping finished
ones (salsa/training/stages.py, docs/tiny_pipeline.md); its --workdir defaults to config.workdir:

    python -m salsa.train --config=configs/tiny.py [--config.run=generator,evaluate]

Any other config's --workdir defaults to runs/<config name> (runs/large for configs/large.py,
runs/generator_small for configs/generator.py:small). A bad flag, config or data folder ends the command
with one line, `error: ...`, and exit code 2.

Run the same command on every host of a multi-host job (see salsa/training/distributed.py for the
environment variables). Outputs in the workdir: checkpoints/, tb/ (TensorBoard), metrics.jsonl,
config.json, and data/ when the toy feature set is built there; salsa.lock while a run holds it (a second
run on the same workdir is refused, salsa/training/lock.py).

On Linux it first restarts itself once with glibc's malloc on transparent huge pages, where that helps
(salsa/malloc.py; `GLIBC_TUNABLES=glibc.malloc.hugetlb=0` turns it off).
"""

from __future__ import annotations

if __name__ == "__main__":  # first, before JAX loads: glibc reads its tunables at process start
    from salsa import malloc

    malloc.reexec_with_huge_pages()

import logging
import os

from absl import flags
from absl import logging as absl_logging
from ml_collections import config_flags

from salsa import cli, compilation_cache
from salsa.training import command, distributed, processes, stages
from salsa.training.setup import BadInput, default_workdir

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/tiny.py[:variant].")
_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Run directory for checkpoints and logs: a local path or gs://bucket/path. Default: the config's "
    "config.workdir if it names one, else runs/<config name> (runs/large for configs/large.py).",
)
flags.mark_flags_as_required(["config"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise BadInput(
            f"unexpected arguments: {' '.join(argv[1:])}; every setting is a flag (--config.KEY=VALUE)."
        )
    absl_logging.get_absl_handler().addFilter(command.QuietOrbax())
    config, workdir = _CONFIG.value, _WORKDIR.value
    distributed.maybe_initialize()  # before anything touches a JAX backend
    compilation_cache.enable()  # before the first compilation (salsa/compilation_cache.py)
    default = config.get("workdir") or default_workdir(flags.FLAGS["config"].config_filename)
    if stages.is_pipeline(config):
        workdir = os.path.abspath(workdir or default)
        command.check_workdir(workdir)
        pipeline = stages.tiny_pipeline(config, workdir, train=command.train, check=command.check)
        stages.run(pipeline, workdir, parallel=processes.parallel(config))
        return
    if "stages" in config:  # given data: the generator alone, without the pipeline's keys
        if not workdir:
            raise BadInput(
                f"--workdir is required when this config trains the generator alone on data.dir or the toy "
                f"set ({default} is its pipeline's folder)."
            )
        config = stages.generator_config(config)
    if not workdir:
        workdir = default
        logging.info("workdir (default for this config): %s", os.path.abspath(workdir))
    command.train(config, workdir)


if __name__ == "__main__":
    cli.run_absl(main)
