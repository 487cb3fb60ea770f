"""A train step split into micro-batches (salsa.training.step): the same update as one pass over the
batch, on one device and on a sharded mesh, with activations that scale with the micro-batch."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salsa.errors import UserError
from tests import train_cli
from tests.toy_task import ToyTask


class RowMeanTask(ToyTask):
    """The test task with a loss that is a mean over rows and draws no noise: one pass over the batch
    and the mean over its micro-batches are the same number."""

    def loss(self, model, ema, batch, key, step, phase=0):
        del ema, key, step
        per_row = jnp.mean((model(self._inputs(batch)) - batch["latents"]) ** 2, axis=(1, 2))
        return per_row.mean(), {"worst_row": per_row.max()}


class GroupedTask(RowMeanTask):
    """Two parameter groups (as a GAN's): the first layer trained on the row-mean error, the second on
    the row-mean absolute error."""

    groups = ("first", "second")

    def param_group(self, path):
        return "first" if path[0] == "fc1" else "second"

    def loss(self, model, ema, batch, key, step, phase=0):
        del ema, key, step
        err = model(self._inputs(batch)) - batch["latents"]
        return {"first": jnp.mean(err**2), "second": jnp.mean(jnp.abs(err))}, {}


def _config(micro_batches: int, batch: int = 16):
    spec_config = train_cli.importlib.util.spec_from_file_location("toy_config", train_cli.TOY_CONFIG)
    module = train_cli.importlib.util.module_from_spec(spec_config)
    spec_config.loader.exec_module(module)
    config = module.get_config()
    config.task = "tests.test_micro_batches:RowMeanTask"
    config.batch_size = batch
    config.micro_batches = micro_batches
    return config


def _run(config, workdir: str, devices, mesh_shape, steps: int = 2) -> dict:
    """Params after `steps` train steps on `devices`, and each step's metrics."""
    from data_pipelines.features import toy
    from salsa import sharding
    from salsa.training import state as state_lib
    from salsa.training import tasks
    from salsa.training.loop import global_batch
    from salsa.training.step import batch_sharding, make_train_step

    config.data.dir = f"{workdir}/data"
    toy.write(config, config.data.dir, n=32, num_shards=1)
    task = tasks.get(config.task)(config)
    it = task.dataset(0, 1)
    tx, schedule = task.optimizer()
    mesh = sharding.make_mesh(mesh_shape, devices)
    spec = state_lib.spec(task, tx, config, mesh)
    state = state_lib.create(task, tx, config, spec)
    step_fn = make_train_step(task, tx, schedule, config, mesh, spec)
    out = {}
    for i in range(steps):
        batch = global_batch(next(it), batch_sharding(mesh, config.sharding_rules))
        state, metrics = step_fn(state, batch)
        out.update({f"{name}/{i}": float(v) for name, v in metrics.items()})
    for path, leaf in jax.tree_util.tree_leaves_with_path(state.params):
        out[f"params{jax.tree_util.keystr(path)}"] = np.asarray(leaf).tolist()
    return out


def _child(workdir: str) -> None:
    """In a process with 8 host devices: one pass on one device, and 2 micro-batches on a mesh that
    shards the batch over 4 devices (and the parameters over fsdp and tensor)."""
    runs = {
        "one_pass": _run(_config(1), f"{workdir}/a", jax.devices()[:1], dict(data=1, fsdp=1, tensor=1)),
        "sharded_micro": _run(_config(2), f"{workdir}/b", jax.devices(), dict(data=2, fsdp=2, tensor=2)),
    }
    with open(f"{workdir}/runs.json", "w") as f:
        json.dump(runs, f)


def _assert_same_training(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        if key.startswith(("skipped", "bad_inputs", "lr")):
            assert got[key] == want[key], key
        else:
            np.testing.assert_allclose(got[key], want[key], rtol=2e-5, atol=2e-6, err_msg=key)


def test_micro_batches_give_the_one_pass_update(tmp_path):
    """Loss, worst-row metric, gradient norm and the parameters after 2 Adam steps: 4 micro-batches of 4
    rows are the step over 16 rows."""
    one = _run(_config(1), str(tmp_path / "one"), jax.devices()[:1], dict(data=1, fsdp=1, tensor=1))
    four = _run(_config(4), str(tmp_path / "four"), jax.devices()[:1], dict(data=1, fsdp=1, tensor=1))
    assert one["worst_row/0"] > one["loss/0"]  # the metric is not a mean: micro-batches average it
    one = {k: v for k, v in one.items() if not k.startswith("worst_row")}
    four = {k: v for k, v in four.items() if not k.startswith("worst_row")}
    _assert_same_training(four, one)


def test_micro_batches_keep_parameter_groups_on_their_own_losses(tmp_path):
    runs = []
    for k in (1, 4):
        config = _config(k)
        config.task = "tests.test_micro_batches:GroupedTask"
        runs.append(_run(config, str(tmp_path / str(k)), jax.devices()[:1], dict(data=1, fsdp=1, tensor=1)))
    assert "loss_first/0" in runs[0] and "loss_second/0" in runs[0]
    _assert_same_training(runs[1], runs[0])


def test_micro_batches_on_a_sharded_mesh_match_one_pass_on_one_device(tmp_path):
    code = f"from tests.test_micro_batches import _child; _child({str(tmp_path)!r})"
    train_cli.run_python(code, devices=8)
    runs = json.loads((tmp_path / "runs.json").read_text())
    one, micro = (
        {k: v for k, v in runs[name].items() if not k.startswith("worst_row")}
        for name in ("one_pass", "sharded_micro")
    )
    _assert_same_training(micro, one)


def test_activations_scale_with_the_micro_batch(tmp_path):
    """XLA's buffers for the step's temporaries: 4 micro-batches need well under half of one pass's."""
    from salsa import sharding
    from salsa.training import state as state_lib
    from salsa.training import tasks
    from salsa.training.step import batch_sharding, make_train_step

    temporaries = {}
    for k in (1, 4):
        config = _config(k, batch=64)
        config.model.width = 512
        task = tasks.get(config.task)(config)
        tx, schedule = task.optimizer()
        mesh = sharding.make_mesh(dict(data=1, fsdp=1, tensor=1), jax.devices()[:1])
        spec = state_lib.spec(task, tx, config, mesh)
        step_fn = make_train_step(task, tx, schedule, config, mesh, spec)
        shapes = {name: (64, *shape) for name, shape in _window_shapes(config).items()}
        sh = batch_sharding(mesh, config.sharding_rules)
        batch = {
            name: jax.ShapeDtypeStruct(s, jnp.bool_ if name.endswith("mask") else jnp.float32, sharding=sh)
            for name, s in shapes.items()
        }
        compiled = step_fn.lower(spec.abstract, batch).compile()
        temporaries[k] = compiled.memory_analysis().temp_size_in_bytes
        if k == 4:
            assert "while" in compiled.as_text()  # the micro-batches run in turn, in one loop
    assert temporaries[4] < 0.4 * temporaries[1], temporaries


def _window_shapes(config) -> dict[str, tuple[int, ...]]:
    from data_pipelines.features import loader

    w = loader.Window.from_config(config)
    n = w.lengths
    return {
        "latents": (n["latents"], config.audio.latent_dim),
        "latent_mask": (n["latents"],),
        "semantic": (n["semantic"], w.semantic_dim),
        "semantic_mask": (n["semantic"],),
        "sync": (n["sync"], w.sync_dim),
        "sync_mask": (n["sync"],),
        "text": (w.text_dim,),
        "text_mask": (),
    }


def test_a_batch_that_does_not_split_evenly_is_refused():
    from salsa import sharding
    from salsa.training.step import split_micro_batches

    mesh = sharding.make_mesh(dict(data=1, fsdp=1, tensor=1), jax.devices()[:1])
    with pytest.raises(UserError, match="a batch of 10 rows does not split into 4 micro-batches"):
        split_micro_batches({"x": jnp.zeros((10, 3))}, 4, mesh, ())


def test_a_split_that_does_not_divide_over_the_mesh_is_refused_before_compiling():
    from salsa.training.setup import BadInput, check_batch

    v4_8 = jax.sharding.AbstractMesh((1, 4, 1), ("data", "fsdp", "tensor"))
    config = _config(1, batch=300)
    config.micro_batches_long = 3
    check_batch(config, v4_8)  # 3 micro-batches of 100 rows: 25 on each chip
    config.micro_batches = 2  # 150 rows do not divide over 4 chips
    with pytest.raises(
        BadInput,
        match=r"batch_size 300 does not split into config\.micro_batches=2 micro-batches that each divide "
        r"over data\*fsdp = 4: batch_size must be a multiple of 8\.",
    ):
        check_batch(config, v4_8)
    config.micro_batches, config.micro_batches_long = 1, -1
    with pytest.raises(BadInput, match=r"config\.micro_batches_long must be a whole number >= 0, got -1"):
        check_batch(config, v4_8)


def test_the_generator_splits_only_crops_longer_than_the_remat_limit(tiny_config):
    from salsa.training.tasks.generator import GeneratorTask

    tiny_config.micro_batches, tiny_config.micro_batches_long = 1, 3
    tiny_config.model.remat_limit_s = 1.0
    task = GeneratorTask(tiny_config)
    rate = tiny_config.audio.sample_rate / tiny_config.audio.hop  # 62.5 latent frames per second
    assert task.micro_batches({"latents": jnp.zeros((30, 63, 16))}) == 1  # 1 s, padded up to 63 frames
    assert task.micro_batches({"latents": jnp.zeros((30, 64, 16))}) == 3
    tiny_config.micro_batches_long = 0
    assert task.micro_batches({"latents": jnp.zeros((30, int(2 * rate), 16))}) == 1
