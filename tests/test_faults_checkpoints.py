"""Corrupt checkpoints: a truncated, bit-flipped or half-deleted newest checkpoint is skipped, training
resumes from the previous good one (with the losses an uninterrupted run has) and says so in one line;
when no checkpoint restores, training stops with one line."""

from __future__ import annotations

import logging
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from salsa.training import checkpoints, digest, loop
from salsa.training.metric_writer import read_metrics
from salsa.training.setup import prepare_data
from tests import toy_config


def _config(data_dir, total_steps):
    config = toy_config.get_config()
    config.total_steps = total_steps
    prepare_data(config, str(data_dir))
    return config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A reference run of 12 steps, and a run stopped after 8 (checkpoints 4 and 8)."""
    root = tmp_path_factory.mktemp("runs")
    loop.train(_config(root / "data", 12), str(root / "reference"))
    loop.train(_config(root / "data", 8), str(root / "stopped"))
    return root


def _largest_array_file(step_dir):
    files = [os.path.join(d, n) for d, _, names in os.walk(os.path.join(step_dir, "state")) for n in names]
    return max(files, key=os.path.getsize)


def _truncate(step_dir):
    path = _largest_array_file(step_dir)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _flip_bit(step_dir):
    path = _largest_array_file(step_dir)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 0x04]))


def _delete_metadata(step_dir):
    os.remove(os.path.join(step_dir, "state", "_METADATA"))


@pytest.mark.parametrize("corrupt", [_truncate, _flip_bit, _delete_metadata], ids=lambda f: f.__name__[1:])
def test_corrupt_newest_checkpoint_resumes_from_previous(runs, tmp_path, caplog, corrupt):
    workdir = tmp_path / "run"
    shutil.copytree(runs / "stopped", workdir)
    corrupt(str(workdir / "checkpoints" / "8"))
    with caplog.at_level(logging.INFO):
        loop.train(_config(runs / "data", 12), str(workdir))
    messages = [r.getMessage() for r in caplog.records]
    said = [m for m in messages if "could not be restored" in m]
    assert len(said) == 1 and "step(s) 8 " in said[0] and "resuming from step 4" in said[0]
    assert "resumed from step 4" in messages
    assert os.path.isdir(workdir / checkpoints.CORRUPT / "8")
    assert sorted(int(n) for n in os.listdir(workdir / "checkpoints") if n.isdigit()) == [8, 12]
    want, got = read_metrics(str(runs / "reference")), read_metrics(str(workdir))
    for step in range(5, 13):  # steps 5..8 redone from checkpoint 4, as the uninterrupted run took them
        np.testing.assert_allclose(got[step]["loss"], want[step]["loss"], rtol=1e-6, err_msg=f"step {step}")


def test_no_good_checkpoint_is_one_line(runs, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(runs / "stopped", workdir)
    for step in ("4", "8"):
        _delete_metadata(str(workdir / "checkpoints" / step))
    with pytest.raises(checkpoints.NoGoodCheckpoint, match=r"step 8: .*; step 4: ") as err:
        loop.train(_config(runs / "data", 12), str(workdir))
    assert "\n" not in str(err.value)
    assert not os.path.exists(workdir / checkpoints.CORRUPT)  # nothing moved when nothing restores


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.int32, jnp.bool_])
def test_fingerprint_catches_every_single_bit_flip(dtype):
    x = (np.random.default_rng(0).standard_normal(6) * 100).astype(dtype)
    if dtype == jnp.bool_:
        x = np.array([1, 0, 0, 1, 1, 0], bool)
    base = digest.fingerprints({"x": jnp.asarray(x)})
    raw = x.view(np.uint8)
    for byte in range(raw.size):
        for bit in range(1 if dtype == jnp.bool_ else 8):
            flipped = raw.copy()
            flipped[byte] ^= 1 << bit
            y = jnp.asarray(flipped.view(x.dtype))
            assert digest.mismatches({"x": y}, base) == ["['x']"], (byte, bit)
    assert digest.mismatches({"x": jnp.asarray(x)[::-1]}, base) == ["['x']"]  # order counts
