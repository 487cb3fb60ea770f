"""Two processes on localhost, 4 CPU devices each, train on one data=2 x fsdp=4 mesh.

Each process reads its own share of the data; both must log the same (global) losses, save their own
data-iterator state into the shared checkpoint and resume from it. The model is the test task's
(tests/toy_task.py: the same loader, EMA and logical axes as the generator): what is tested is the
multi-process machinery (34 CPU s; 177 with the generator compiled in both processes); the generator's
own sharded step is tests/test_sharding.py's.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np

from tests import train_cli

STEPS = 3  # one checkpoint (config.checkpoint_every), then two resumed steps


def _child(workdir: str, total_steps: int) -> None:
    """One process of the job; the JAX_* environment variables say which."""
    from salsa.training import distributed

    assert distributed.maybe_initialize()
    import jax

    from data_pipelines.features import records, toy
    from salsa.training import loop, tasks
    from tests import toy_config

    config = toy_config.get_config()
    config.mesh = dict(data=2, fsdp=4, tensor=1)
    config.total_steps = total_steps
    config.checkpoint_every = STEPS
    config.data.dir = os.path.join(workdir, "data")
    if not records.shard_paths(config.data.dir):  # both processes may write it; the files are identical
        toy.write(config, config.data.dir, n=48)
    losses = {}
    loop.train(config, workdir, hooks=[lambda step, m: losses.update({step: m["loss"]})])

    # The batches this process trained on, identified by their (per-clip) text embeddings.
    it = tasks.get(config.task)(config).dataset(jax.process_index(), jax.process_count())
    texts = set()
    for _ in range(total_steps):
        batch = next(it)
        texts.update(t.tobytes().hex() for t in batch["text"][batch["text_mask"]])
    out = {
        "process_count": jax.process_count(),
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "losses": losses,
        "texts": sorted(texts),
    }
    with open(os.path.join(workdir, f"process_{jax.process_index()}.json"), "w") as f:
        json.dump(out, f)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(workdir, total_steps: int) -> list[dict]:
    """Runs the two-process job to `total_steps`; returns each process's report."""
    port = _free_port()
    code = f"from tests.test_multihost import _child; _child({str(workdir)!r}, {total_steps})"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=train_cli.REPO,
            env=train_cli.env(
                devices=4,
                JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        errors = [p.communicate(timeout=300)[1] for p in procs]
    finally:  # a timed-out job is not left training beside the rest of the suite
        for p in procs:
            p.kill()
            p.wait()
    for p, err in zip(procs, errors, strict=True):
        assert p.returncode == 0, err[-4000:]
    return [json.loads((workdir / f"process_{i}.json").read_text()) for i in range(2)]


def test_two_processes_train_together_and_resume(tmp_path):
    out = _launch(tmp_path, STEPS)
    for o in out:
        assert (o["process_count"], o["devices"], o["local_devices"]) == (2, 8, 4)
        assert sorted(int(s) for s in o["losses"]) == list(range(1, STEPS + 1))
        assert all(np.isfinite(v) for v in o["losses"].values())
    assert out[0]["losses"] == out[1]["losses"]  # one global computation, seen by both
    shares = [set(o["texts"]) for o in out]
    assert shares[0] and shares[1] and not shares[0] & shares[1]
    data_dir = tmp_path / "checkpoints" / str(STEPS) / "data"
    assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(os.listdir(data_dir))

    # Both processes restore their own iterator position and continue from the shared checkpoint.
    out = _launch(tmp_path, STEPS + 2)
    assert sorted(int(s) for s in out[0]["losses"]) == [STEPS + 1, STEPS + 2]
    assert out[0]["losses"] == out[1]["losses"]
