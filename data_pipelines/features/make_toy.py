"""Writes the toy feature data set (data_pipelines/features/toy.py) as record shards.

python -m data_pipelines.features.make_toy --out DIR [--n 512] [--seed 0] [--config configs/tiny.py]
"""

from __future__ import annotations

import logging

from absl import flags
from ml_collections import config_flags

from data_pipelines.features import records, toy
from salsa import cli
from salsa.errors import UserError

_OUT = flags.DEFINE_string("out", None, "Directory for the record shards.", required=True)
_N = flags.DEFINE_integer("n", 512, "Number of clips.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed; the data set is deterministic per seed.")
_SHARDS = flags.DEFINE_integer("shards", 4, "Number of shard files.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/tiny.py", "Config whose audio/video/features sizes and rates the data follows."
)


def main(argv: list[str]) -> None:
    del argv
    if records.shard_paths(_OUT.value):
        raise UserError(f"--out {_OUT.value} already holds feature shards; choose an empty directory.")
    if _N.value < 1 or _SHARDS.value < 1:
        raise UserError(f"--n and --shards must be >= 1, got --n={_N.value} --shards={_SHARDS.value}.")
    paths = toy.write(_CONFIG.value, _OUT.value, n=_N.value, seed=_SEED.value, num_shards=_SHARDS.value)
    logging.info("wrote %d toy clips into %d shards in %s", _N.value, len(paths), _OUT.value)


if __name__ == "__main__":
    cli.run_absl(main)
