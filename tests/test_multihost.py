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
    return _two_processes(
        workdir, f"from tests.test_multihost import _child; _child({str(workdir)!r}, {total_steps})"
    )


def _two_processes(workdir, code: str, devices: int = 4) -> list[dict]:
    """Runs `code` in two processes of one job (`devices` CPU devices each); returns the report each
    wrote to workdir/process_<i>.json."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=train_cli.REPO,
            env=train_cli.env(
                devices=devices,
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


def _bucketed_child(workdir: str) -> None:
    """One process of a job reading bucketed batches, in which process 1 cannot open the second shard."""
    from salsa.training import distributed

    assert distributed.maybe_initialize()
    import logging

    import jax

    from data_pipelines.features import loader, records
    from tests.test_buckets import bucketed_config

    me = jax.process_index()
    c = bucketed_config(os.path.join(workdir, "data"))
    second = records.shard_paths(c.data.dir)[1]
    if me == 1:  # a storage error on this host only
        count = loader._count
        loader._count = lambda path, log: None if path == second else count(path, log)
    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logging.getLogger().addHandler(handler)
    ds = loader.bucketed_batches(c, me, 2)
    rows, _, batches = ds._plan(0)
    out = {
        "rows": rows.tolist(),
        "buckets": [int(b) for b, _ in batches],
        "ids": [[int(t[0]) for t in ds[i]["text"]] for i in range(len(batches))],
        "said": said,
        "second": second,
    }
    with open(os.path.join(workdir, f"process_{me}.json"), "w") as f:
        json.dump(out, f)


def test_a_shard_one_host_cannot_read_is_left_out_on_every_host(tmp_path):
    """The bucketed plan (which bucket, so which batch shape, each step has) must be the same on every
    process: a shard that fails on one host only is left out on all, and both cut the same batches."""
    from tests.test_buckets import bucketed_config, write_bucketed

    write_bucketed(bucketed_config(str(tmp_path / "data")))
    out = _two_processes(
        tmp_path,
        f"from tests.test_multihost import _bucketed_child; _bucketed_child({str(tmp_path)!r})",
        devices=1,
    )
    second = out[0]["second"]
    assert out[0]["rows"] == out[1]["rows"] and out[0]["buckets"] == out[1]["buckets"]
    assert f"feature shard {second} is unreadable on another process; skipped here too" in out[0]["said"]
    for o in out:
        assert "training on 2 of 3 feature shards; 1 unreadable shard(s) skipped" in o["said"]
    for a, b in zip(out[0]["ids"], out[1]["ids"], strict=True):  # halves of the same global batches
        assert len(a) == len(b) == 4 and not set(a) & set(b)
    import grain

    from data_pipelines.features import records

    source = grain.sources.ArrayRecordDataSource([second])
    lost = {int(records.decode(source[i])["text"][0]) for i in range(len(source))}
    trained = {i for o in out for ids in o["ids"] for i in ids}
    assert len(lost) == 13 and trained and trained.isdisjoint(lost)  # none of the second shard's clips
