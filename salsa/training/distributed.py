"""Multi-process start-up: `jax.distributed.initialize` only when the environment asks for it.

Environment variables read (all optional; a single process needs none):

    JAX_COORDINATOR_ADDRESS  host:port of process 0's coordinator; with it, JAX_NUM_PROCESSES and
                             JAX_PROCESS_ID are required (e.g. two processes on one machine).
    JAX_NUM_PROCESSES        total number of processes.
    JAX_PROCESS_ID           this process's index, 0 .. JAX_NUM_PROCESSES - 1.
    JAX_LOCAL_DEVICE_IDS     optional comma-separated local device ids this process uses.
    SALSA_DISTRIBUTED=1      let JAX auto-detect the cluster (SLURM, Open MPI, Kubernetes, Cloud TPU VMs).

On GKE TPU slices (TPU_WORKER_HOSTNAMES lists several hosts) and multislice jobs
(MEGASCALE_COORDINATOR_ADDRESS is set) JAX's own detection is used without any variable. TPU VMs made
with `gcloud compute tpus tpu-vm create` keep their worker list in the VM metadata instead, so there
SALSA_DISTRIBUTED=1 is needed (launch/tpu.sh sets it on multi-host slices).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax

from salsa.errors import UserError


class DistributedEnvError(UserError):
    """The multi-process environment variables are inconsistent."""


def _required_int(env: Mapping[str, str], name: str) -> int:
    value = env.get(name)
    if value is None or not value.strip().lstrip("-").isdigit():
        raise DistributedEnvError(
            f"JAX_COORDINATOR_ADDRESS is set, so {name} must be an integer; got {value!r}."
        )
    return int(value)


def initialize_kwargs(env: Mapping[str, str] | None = None) -> dict | None:
    """Arguments for jax.distributed.initialize from the environment; None for a single process."""
    env = os.environ if env is None else env
    if env.get("JAX_COORDINATOR_ADDRESS"):
        kwargs = {
            "coordinator_address": env["JAX_COORDINATOR_ADDRESS"],
            "num_processes": _required_int(env, "JAX_NUM_PROCESSES"),
            "process_id": _required_int(env, "JAX_PROCESS_ID"),
        }
        if env.get("JAX_LOCAL_DEVICE_IDS"):
            kwargs["local_device_ids"] = [int(i) for i in env["JAX_LOCAL_DEVICE_IDS"].split(",")]
        return kwargs
    multi_tpu_host = "," in env.get("TPU_WORKER_HOSTNAMES", "") or env.get("MEGASCALE_COORDINATOR_ADDRESS")
    if multi_tpu_host or env.get("SALSA_DISTRIBUTED") == "1":
        return {}
    return None


def maybe_initialize() -> bool:
    """Initialises multi-process JAX if the environment says so; returns whether it did.

    Must run before anything touches a JAX backend.
    """
    kwargs = initialize_kwargs()
    if kwargs is None:
        return False
    jax.distributed.initialize(**kwargs)
    return True
