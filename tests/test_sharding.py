"""The train step gives the same losses and parameters on one device and on a sharded mesh, and a
checkpoint written on one mesh restores onto another."""

import json

import numpy as np

from tests import train_cli

# One sharded mesh uses every axis (a compilation for 8 devices is most of this test's time).
MESHES = {
    "single": dict(data=1, fsdp=1, tensor=1),
    "sharded": dict(data=2, fsdp=2, tensor=2),
}
STEPS = 3


def _child(workdir: str) -> None:
    """Runs in a process with 8 host devices; writes results.npz and shardings.json into `workdir`."""
    import jax

    from data_pipelines.features import toy
    from salsa import sharding
    from salsa.training import checkpoints, tasks
    from salsa.training import state as state_lib
    from salsa.training.loop import global_batch
    from salsa.training.step import batch_sharding, make_train_step

    config = train_cli.system_config()
    config.data.dir = f"{workdir}/data"
    toy.write(config, config.data.dir, n=24, num_shards=2)
    task = tasks.get(config.task)(config)
    it = task.dataset(0, 1)
    batches = [next(it) for _ in range(STEPS)]
    tx, schedule = task.optimizer()
    results, specs = {}, {}
    for name, shape in MESHES.items():
        devices = jax.devices()[: 1 if name == "single" else 8]
        mesh = sharding.make_mesh(shape, devices)
        spec = state_lib.spec(task, tx, config, mesh)
        state = state_lib.create(task, tx, config, spec)
        step_fn = make_train_step(task, tx, schedule, config, mesh, spec)
        for i, batch in enumerate(batches):
            state, metrics = step_fn(state, global_batch(batch, batch_sharding(mesh, config.sharding_rules)))
            results[f"{name}/loss/{i}"] = np.asarray(metrics["loss"])
        for tree in ("params", "ema"):
            for path, leaf in jax.tree_util.tree_leaves_with_path(getattr(state, tree)):
                results[f"{name}/{tree}{jax.tree_util.keystr(path)}"] = np.asarray(leaf)
        params = jax.tree_util.tree_leaves_with_path(state.params)
        mu = jax.tree.leaves(state.opt_state[-1][0].mu)
        specs[name] = {
            "params": {jax.tree_util.keystr(p): str(x.sharding.spec) for p, x in params},
            "adam_mu": [str(x.sharding.spec) for x in mu],
            "devices": max(len(x.sharding.device_set) for _, x in params),
        }
        if name == "single":  # save here, restore below onto the 8-device mesh
            mngr = checkpoints.manager(f"{workdir}/run", config)
            checkpoints.save(mngr, STEPS, state, it, force=True)
            mngr.wait_until_finished()
            saved = jax.device_get(state)
    mesh = sharding.make_mesh(MESHES["sharded"], jax.devices())
    spec = state_lib.spec(task, tx, config, mesh)
    restored = checkpoints.restore_latest(checkpoints.manager(f"{workdir}/run", config), spec.abstract, it)
    specs["restored"] = {
        "params": {
            jax.tree_util.keystr(p): str(x.sharding.spec)
            for p, x in jax.tree_util.tree_leaves_with_path(restored.params)
        },
        "step": int(restored.step),
    }
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), saved, jax.device_get(restored))
    specs["restored"]["equal"] = all(jax.tree.leaves(same))
    np.savez(f"{workdir}/results.npz", **results)
    with open(f"{workdir}/shardings.json", "w") as f:
        json.dump(specs, f)


def test_sharded_step_matches_single_device(tmp_path):
    code = f"from tests.test_sharding import _child; _child({str(tmp_path)!r})"
    train_cli.run_python(code, devices=8)
    specs = json.loads((tmp_path / "shardings.json").read_text())
    # Parameters and Adam moments are really sharded: embed -> fsdp, mlp/heads -> tensor.
    sharded = specs["sharded"]
    assert any("fsdp" in s for s in sharded["params"].values())
    assert any("tensor" in s for s in sharded["params"].values())
    assert sorted(sharded["adam_mu"]) == sorted(sharded["params"].values())
    assert sharded["devices"] == 8 and specs["single"]["devices"] == 1
    assert specs["restored"] == {"params": sharded["params"], "step": STEPS, "equal": True}

    results = np.load(tmp_path / "results.npz")
    single = {k.split("/", 1)[1]: results[k] for k in results.files if k.startswith("single/")}
    for name in MESHES:
        for key, want in single.items():
            got = results[f"{name}/{key}"]
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6, err_msg=f"{name}: {key}")
