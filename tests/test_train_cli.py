"""salsa.train's handling of bad input, its default workdir, the task registry, and the multi-host
environment contract."""

import os
import subprocess
import sys

import pytest

from salsa.errors import UserError
from salsa.training import distributed, tasks
from salsa.training.setup import BadInput, default_workdir
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
        ("--config.task=nonsense", "error: unknown task 'nonsense'; known tasks:"),
        ("--config.data.make_toy_if_missing=false", "holds no feature shards"),
        ("--config.mesh.data=3", "needs 3 devices, but 1 are available"),
        ("--config.micro_batches=3", "batch_size 8 does not split into config.micro_batches=3 micro-batches"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, override, message):
    proc = _run(tmp_path, override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last


def test_user_errors_are_one_family():
    assert issubclass(BadInput, UserError) and issubclass(distributed.DistributedEnvError, UserError)


def test_workdir_defaults_to_runs_and_the_config_name(tmp_path):
    assert default_workdir("configs/large.py") == os.path.join("runs", "large")
    assert default_workdir("/abs/configs/generator.py:small") == os.path.join("runs", "generator_small")
    # No --workdir: the run lands in runs/<config name> under the working directory.
    proc = subprocess.run(
        [sys.executable, "-m", "salsa.train", f"--config={train_cli.TOY_CONFIG}", "--config.total_steps=2"],
        cwd=tmp_path,
        env=train_cli.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "runs" / "toy_config"
    assert (run / "metrics.jsonl").is_file() and (run / "checkpoints").is_dir()


def test_registry_names_known_tasks():
    with pytest.raises(UserError, match="unknown task 'nope'; known tasks:"):
        tasks.get("nope")
    assert tasks.get("tests.toy_task:ToyTask").__name__ == "ToyTask"
    with pytest.raises(UserError, match="is not a salsa.training.task.Task subclass"):
        tasks.get("tests.toy_config:get_config")


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
