"""Poisoned steps: a batch with NaN/Inf, or a non-finite loss or gradient, is skipped inside the train
step (params, EMA and optimizer state bit-identical), counted in the metrics and logged with its step,
and training stops with one line after config.max_consecutive_skips skips in a row."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

from data_pipelines.features import records
from salsa import sharding
from salsa.training import loop, skips, tasks
from salsa.training import state as state_lib
from salsa.training.metric_writer import read_metrics
from salsa.training.setup import prepare_data
from salsa.training.step import make_train_step
from tests import toy_config
from tests.toy_task import ToyTask


class PoisonTask(ToyTask):
    """The toy task poisoned at the steps in config.poison_steps (state.step values): its loss is NaN
    (config.poison = "loss"), or the loss stays finite and the gradients are NaN ("grad")."""

    def loss(self, model, ema, batch, key, step, phase=0):
        loss, metrics = super().loss(model, ema, batch, key, step)
        poisoned = jnp.isin(step, jnp.asarray(self.config.poison_steps, jnp.int32))
        if self.config.poison == "loss":
            return jnp.where(poisoned, jnp.nan, loss), metrics
        # 0 * sqrt(|0 * w|): the value 0, the gradient 0 * inf = NaN at every weight of fc1.
        w = model.fc1.kernel.value * jnp.where(poisoned, 0.0, 1.0)
        return loss + 0.0 * jnp.sqrt(jnp.abs(w)).sum(), metrics


def _config(tmp_path, poison_steps=(-1,), poison="loss", **overrides):
    config = toy_config.get_config()
    config.task = "tests.test_faults_steps:PoisonTask"
    config.poison_steps = list(poison_steps)
    config.poison = poison
    config.update(overrides)
    prepare_data(config, str(tmp_path))
    return config


def _setup(config):
    task = tasks.get(config.task)(config)
    mesh = sharding.make_mesh(dict(config.mesh))
    tx, schedule = task.optimizer()
    spec = state_lib.spec(task, tx, config, mesh)
    step_fn = make_train_step(task, tx, schedule, config, mesh, spec)
    return task, step_fn, state_lib.create(task, tx, config, spec)


def _host(state):
    return jax.tree.map(np.asarray, jax.device_get((state.params, state.ema, state.opt_state)))


def _assert_identical(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)  # bit-identical: NaN-free and equal


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_batch_is_skipped(tmp_path, bad):
    config = _config(tmp_path)
    task, step_fn, state = _setup(config)
    data = task.dataset(0, 1)
    state, metrics = step_fn(state, next(data))  # one good step: Adam moments and EMA are non-trivial
    assert float(metrics["skipped"]) == 0.0
    before = _host(state)
    batch = dict(next(data))
    batch["semantic"] = batch["semantic"].copy()
    batch["semantic"][3, 2, 1] = bad
    state, metrics = step_fn(state, batch)
    assert float(metrics["skipped"]) == 1.0 and float(metrics["bad_inputs"]) == 1.0
    assert int(state.step) == 2  # the batch was consumed
    _assert_identical(_host(state), before)
    state, metrics = step_fn(state, next(data))  # and training goes on from there
    assert float(metrics["skipped"]) == 0.0 and np.isfinite(float(metrics["loss"]))


@pytest.mark.parametrize("poison", ["loss", "grad"])
def test_non_finite_loss_or_gradients_are_skipped(tmp_path, poison):
    config = _config(tmp_path, poison_steps=[1], poison=poison)
    task, step_fn, state = _setup(config)
    data = task.dataset(0, 1)
    state, _ = step_fn(state, next(data))
    before = _host(state)
    state, metrics = step_fn(state, next(data))
    assert np.isfinite(float(metrics["loss"])) == (poison == "grad")
    assert np.isfinite(float(metrics["grad_norm"])) == (poison == "loss")
    assert float(metrics["skipped"]) == 1.0 and float(metrics["bad_inputs"]) == 0.0
    _assert_identical(_host(state), before)
    # Adam's own step count (bias correction, lr schedule) did not advance either.
    counts = [x for x in jax.tree.leaves(before[2]) if np.asarray(x).dtype == np.int32]
    assert counts and all(int(c) == 1 for c in counts)


def test_skips_are_counted_and_logged(tmp_path, caplog):
    config = _config(tmp_path / "data", poison_steps=[2, 3, 7], total_steps=8, log_every=4)
    with caplog.at_level(logging.WARNING):
        loop.train(config, str(tmp_path / "run"))
    metrics = read_metrics(str(tmp_path / "run"))
    assert metrics[4]["skipped"] == 2.0 and metrics[8]["skipped"] == 1.0
    lines = [r.getMessage() for r in caplog.records if "skipped:" in r.getMessage()]
    assert [line.split()[1] for line in lines] == ["3", "4", "8"]  # 1-based step numbers
    assert "2 in a row" in lines[1] and "3 in this run" in lines[2]


def test_nan_record_in_the_data_is_skipped_in_training(tmp_path):
    """A record with NaN features (written past records.validate, which refuses them) reaches training:
    every step whose batch holds it is skipped, and the trained params stay finite."""
    config = _config(tmp_path / "data", total_steps=6, log_every=1)
    path = records.shard_paths(config.data.dir)[0]
    reader = ArrayRecordReader(path)
    data = list(reader.read_all())
    reader.close()
    poisoned = dict(records.decode(data[0]))
    poisoned["latents"] = poisoned["latents"].copy()
    poisoned["latents"][:, 0] = np.nan  # in every frame: whatever the crop
    with pytest.raises(records.RecordError, match="'latents' holds NaN or Inf"):
        records.validate(poisoned, config)
    writer = ArrayRecordWriter(path, "group_size:1")
    for i, d in enumerate(data):
        writer.write(records.encode(poisoned) if i == 0 else d)
    writer.close()
    state = loop.train(config, str(tmp_path / "run"))
    metrics = read_metrics(str(tmp_path / "run"))
    skipped = [s for s, m in metrics.items() if m["skipped"]]
    assert len(skipped) == 1  # 48 clips, 6 batches of 8: one epoch, the record in one batch
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))


def test_consecutive_skips_stop_training(tmp_path):
    config = _config(tmp_path / "data", poison_steps=list(range(3, 100)), max_consecutive_skips=4)
    with pytest.raises(skips.TooManySkips, match=r"stopped at step 7: 4 steps in a row") as err:
        loop.train(config, str(tmp_path / "run"))
    assert "\n" not in str(err.value) and "max_consecutive_skips = 4" in str(err.value)


def test_skip_counts_go_on_across_a_resume(tmp_path, caplog):
    """The counts are saved with each checkpoint: two skips before a stop and one after the resume are
    three in a row (stopping at max_consecutive_skips = 3) and three in the run."""
    config = _config(tmp_path / "data", poison_steps=[2, 3, 4], total_steps=4, max_consecutive_skips=3)
    loop.train(config, str(tmp_path / "run"))  # steps 3 and 4 skipped; checkpoint at step 4
    config.total_steps = 8
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(skips.TooManySkips, match="stopped at step 5: 3 steps"),
    ):
        loop.train(config, str(tmp_path / "run"))
    lines = [r.getMessage() for r in caplog.records if "skipped:" in r.getMessage()]
    assert [line.split()[1] for line in lines] == ["3", "4", "5"]  # steps 3 and 4 before the resume
    assert "(3 in a row, 3 in this run)" in lines[-1]


def test_skip_counter_starts_from_saved_counts():
    counter = skips.SkipCounter(5, log=lambda line: None)
    for step, skipped in enumerate([True, False, True, True], 1):
        counter.observe(step, skipped, False)
    resumed = skips.SkipCounter(5, counter.counts(), log=lambda line: None)
    assert (resumed.total, resumed.in_a_row, resumed.since_last_log()) == (3, 2, 3)


def test_unreadable_skip_counts_start_anew(tmp_path, caplog):
    config = _config(tmp_path / "data", poison_steps=[2, 3, 4], total_steps=4, max_consecutive_skips=3)
    loop.train(config, str(tmp_path / "run"))
    for path in (tmp_path / "run" / "checkpoints" / "4" / "skips").iterdir():
        path.write_text("{not json")
    config.total_steps = 8
    with caplog.at_level(logging.WARNING):
        loop.train(config, str(tmp_path / "run"))  # the state resumes; the counts start again: no stop
    messages = [r.getMessage() for r in caplog.records]
    assert any("skip counts of checkpoint step 4" in m and "counting anew" in m for m in messages)
    assert "(1 in a row, 1 in this run)" in [m for m in messages if "skipped:" in m][-1]
