"""salsa.train's handling of bad input, the task registry, and the multi-host environment contract."""

import subprocess

import pytest

from salsa.training import distributed, tasks
from tests import train_cli


def _run(tmp_path, *overrides):
    return subprocess.run(
        train_cli.command(str(tmp_path / "run"), *overrides),
        cwd=train_cli.REPO,
        env=train_cli.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("--config.task=nonsense", "salsa.train: unknown task 'nonsense'; known tasks:"),
        ("--config.data.make_toy_if_missing=false", "holds no feature shards"),
        ("--config.mesh.data=3", "needs 3 devices, but 1 are available"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, override, message):
    proc = _run(tmp_path, override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("salsa.train: ") and message in last


def test_registry_names_known_tasks():
    with pytest.raises(ValueError, match="unknown task 'nope'; known tasks:"):
        tasks.get("nope")
    assert tasks.get("tests.toy_task:ToyTask").__name__ == "ToyTask"


def test_distributed_is_env_gated():
    assert distributed.initialize_kwargs({}) is None
    env = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "2"}
    assert distributed.initialize_kwargs(env) == {
        "coordinator_address": "10.0.0.1:1234",
        "num_processes": 4,
        "process_id": 2,
    }
    with pytest.raises(ValueError, match="JAX_PROCESS_ID must be an integer"):
        distributed.initialize_kwargs({"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "2"})
    assert distributed.initialize_kwargs({"TPU_WORKER_HOSTNAMES": "a,b,c,d"}) == {}
    assert distributed.initialize_kwargs({"TPU_WORKER_HOSTNAMES": "localhost"}) is None
