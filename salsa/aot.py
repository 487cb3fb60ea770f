"""Compiles the sharded train step for a TPU topology on this machine and reports whether it fits.

    pip install -e ".[tpu]"
    python -m salsa.aot --config=configs/large.py --topology=v4-8 --batch=300

Needs libtpu (the `tpu` extra) but no TPU: jax.experimental.topologies describes the slice and XLA
compiles for it. Prints per-chip HBM (arguments, temporaries, total) against the chip's capacity,
compiled and analytic FLOPs per step, the bytes the compiled program reads and writes, and the step
time and MFU that the chip's peak rates bound them to; the last line is one JSON object.
"""

from __future__ import annotations

import json
import math
import os
import re
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags
from ml_collections import config_flags

from data_pipelines.features import buckets
from salsa import cli, sharding
from salsa.chips import HBM_BANDWIDTH, HBM_BYTES, PEAK_FLOPS
from salsa.errors import UserError
from salsa.models.generator import remat
from salsa.models.generator.flops import train_step_flops
from salsa.models.generator.model import GeneratorConfig
from salsa.training import setup, tasks
from salsa.training import state as state_lib
from salsa.training.step import batch_sharding, make_train_step, make_update_step

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/large.py.")
_TOPOLOGY = flags.DEFINE_string("topology", "v4-8", "TPU slice: v4-8, v4-16, v4-32, v4-64, v4-128, ...")
_BATCH = flags.DEFINE_integer("batch", None, "Global batch size (default: config.batch_size).")
flags.mark_flags_as_required(["config"])

# The 3-D chip grid of v4 slices. A step takes at least FLOPs / PEAK_FLOPS and at least bytes accessed /
# HBM_BANDWIDTH (salsa/chips.py), whichever is longer.
V4_GRIDS = {8: (2, 2, 1), 16: (2, 2, 2), 32: (2, 2, 4), 64: (2, 4, 4), 128: (4, 4, 4), 256: (4, 4, 8)}


def topology_devices(name: str) -> list:
    """Compile-only devices of a TPU slice such as 'v4-8' (the number counts TensorCores)."""
    # Compiling touches no chip, so other processes holding libtpu (a training run, a second
    # compile) are no reason to refuse.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    from jax.experimental import topologies

    match = re.fullmatch(r"v4-(\d+)", name)
    if not match or int(match.group(1)) not in V4_GRIDS:
        raise UserError(
            f"--topology {name!r} is not supported; use one of v4-{', v4-'.join(map(str, V4_GRIDS))}."
        )
    grid = "x".join(map(str, V4_GRIDS[int(match.group(1))]))
    topo = topologies.get_topology_desc(
        platform="tpu",
        topology_name=f"v4:{grid}",
        chip_config_name="megacore",
        chips_per_host_bounds=(2, 2, 1),
        num_slices=1,
    )
    return list(topo.devices)


def abstract_batch(config: ml_collections.ConfigDict, batch_sh) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes of one global feature batch (see docs/records.md) placed on the batch sharding."""
    crop, f = config.train_crop_s, config.features
    ta = math.ceil(crop * config.audio.sample_rate / config.audio.hop)
    t8, t24 = math.ceil(crop * config.video.semantic_fps), math.ceil(crop * config.video.sync_fps)
    b = config.batch_size
    shapes = {
        "latents": ((b, ta, config.audio.latent_dim), jnp.float32),
        "latent_mask": ((b, ta), jnp.bool_),
        "semantic": ((b, t8, f.semantic_dim), jnp.float32),
        "semantic_mask": ((b, t8), jnp.bool_),
        "sync": ((b, t24, f.sync_dim), jnp.float32),
        "sync_mask": ((b, t24), jnp.bool_),
        "text": ((b, f.text_dim), jnp.float32),
        "text_mask": ((b,), jnp.bool_),
    }
    return {k: jax.ShapeDtypeStruct(s, d, sharding=batch_sh) for k, (s, d) in shapes.items()}


def _per_chip_bytes(tree) -> int:
    """Bytes of one device's shards of the abstract arrays in `tree`."""
    return sum(
        math.prod(x.sharding.shard_shape(x.shape)) * jnp.dtype(x.dtype).itemsize
        for x in jax.tree.leaves(tree)
    )


def compile_report(config: ml_collections.ConfigDict, topology: str) -> dict:
    """Compiles one train step of `config` for `topology`; returns memory and FLOP figures."""
    devices = topology_devices(topology)
    mesh = sharding.make_mesh(dict(config.mesh), devices)
    setup.check_batch(config, mesh)
    task = tasks.get(config.task)(config)
    tx, schedule = task.optimizer()
    spec = state_lib.spec(task, tx, config, mesh)
    step = make_train_step(task, tx, schedule, config, mesh, spec)
    batch = abstract_batch(config, batch_sharding(mesh, config.sharding_rules))
    capacity, chips = HBM_BYTES["v4"], len(devices)
    micro = task.micro_batches(batch)
    flops = bytes_accessed = update_bytes = None
    start = time.monotonic()
    try:
        # The last phase: the loss's full structure (e.g. a GAN's discriminator switched on).
        compiled = step.lower(spec.abstract, batch, task.phase(config.total_steps - 1)).compile()
    except jax.errors.JaxRuntimeError as e:
        # XLA refuses a program whose buffers exceed HBM; its message says how much it needed.
        needed = re.search(r"RESOURCE_EXHAUSTED: .*?temporaries \(([\d.]+)G\)", str(e))
        if needed is None:
            raise
        arguments = _per_chip_bytes((spec.abstract, batch))
        temporaries = float(needed.group(1)) * 2**30
        total = arguments + temporaries
    else:
        mem = compiled.memory_analysis()
        arguments, temporaries = mem.argument_size_in_bytes, mem.temp_size_in_bytes
        total = arguments + mem.output_size_in_bytes - mem.alias_size_in_bytes
        total += temporaries + mem.generated_code_size_in_bytes
        # XLA's cost analysis describes one device's SPMD program: FLOPs and bytes per chip. It counts a
        # loop's body once, so a step of k micro-batches (one loop of k turns) is taken k times, less
        # k - 1 times the update after the loop, compiled on its own (docs/performance.md).
        cost = micro * _flops_bytes(compiled)
        if micro > 1:
            update = make_update_step(tx, config, mesh, spec)
            loss = jax.ShapeDtypeStruct((), jnp.float32)
            update_cost = _flops_bytes(update.lower(spec.abstract, spec.abstract.params, loss).compile())
            cost -= (micro - 1) * update_cost
            update_bytes = float(update_cost[1])
        flops, bytes_accessed = map(float, cost)
    analytic = float(train_step_flops(config))
    g = GeneratorConfig.from_config(config)
    report = {
        "topology": topology,
        "chips": chips,
        "mesh": dict(mesh.shape),
        "batch": config.batch_size,
        "train_crop_s": config.train_crop_s,  # the longest bucket: the step that must fit
        "buckets_s": list(buckets.lengths(config)),
        "remat": remat.for_length(  # the policy of the longest crop, the one compiled
            g.remat, g.remat_long, g.remat_limit_s, batch["latents"].shape[1], g.latent_rate
        ),
        "micro_batches": micro,
        "attention": config.model.attention,
        "compute_dtype": config.model.dtype,
        "fits": bool(total <= capacity),
        "hbm_per_chip_bytes": int(total),
        "hbm_arguments_bytes": int(arguments),
        "hbm_temporaries_bytes": int(temporaries),
        "hbm_capacity_bytes": int(capacity),
        "hbm_headroom": 1 - total / capacity,
        # None when XLA refused to compile (does not fit).
        "compiled_flops_per_step": None if flops is None else flops * chips,
        "analytic_flops_per_step": analytic,
        "compiled_flops_per_chip": flops,
        "bytes_accessed_per_chip": bytes_accessed,
        "update_bytes_per_chip": update_bytes,  # the update after the micro-batches (None: one pass)
        "compile_s": round(time.monotonic() - start, 1),
    }
    return report | step_time_bound(flops, bytes_accessed, analytic, chips)


def _flops_bytes(compiled) -> np.ndarray:
    """(FLOPs, bytes accessed) per chip of a compiled program, by XLA's cost analysis."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return np.array([float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))])


def step_time_bound(
    flops_per_chip: float | None, bytes_per_chip: float | None, analytic_flops: float, chips: int
) -> dict:
    """The step time that v4's peak rates allow for one chip's program (the longer of its FLOPs at
    PEAK_FLOPS and its bytes at HBM_BANDWIDTH), and the model-FLOPs utilisation that time caps."""
    if flops_per_chip is None or bytes_per_chip is None:
        return {"step_s_compute": None, "step_s_memory": None, "step_s_bound": None, "mfu_bound": None}
    compute_s = flops_per_chip / PEAK_FLOPS["v4"]
    memory_s = bytes_per_chip / HBM_BANDWIDTH["v4"]
    bound = max(compute_s, memory_s)
    return {
        "step_s_compute": compute_s,
        "step_s_memory": memory_s,
        "step_s_bound": bound,
        "mfu_bound": analytic_flops / (chips * PEAK_FLOPS["v4"] * bound),
    }


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    if _BATCH.value is not None:
        config.batch_size = _BATCH.value
    report = compile_report(config, _TOPOLOGY.value)
    gib = 2**30
    r = report
    print(
        f"{config.task} on {r['topology']} ({r['chips']} chips, mesh {r['mesh']}), batch {r['batch']} "
        f"in {r['micro_batches']} micro-batch(es), "
        f"crop {r['train_crop_s']:g} s (the longest of the buckets: {', '.join(map(str, r['buckets_s']))} s)"
    )
    print(
        f"  HBM per chip: arguments {r['hbm_arguments_bytes'] / gib:.2f} GiB, "
        f"temporaries {r['hbm_temporaries_bytes'] / gib:.2f} GiB, "
        f"total {r['hbm_per_chip_bytes'] / gib:.2f} GiB of {r['hbm_capacity_bytes'] / gib:.0f} GiB "
        f"-> {'fits' if r['fits'] else 'DOES NOT FIT'}"
    )
    compiled = r["compiled_flops_per_step"]
    print(
        f"  FLOPs per step: compiled {'-' if compiled is None else f'{compiled:.3e}'}, "
        f"analytic {r['analytic_flops_per_step']:.3e}"
    )
    if compiled is not None:
        print(
            f"  per chip: {r['compiled_flops_per_chip']:.3e} FLOPs, {r['bytes_accessed_per_chip']:.3e} bytes "
            f"-> step >= {r['step_s_bound']:.3f} s (compute {r['step_s_compute']:.3f} s, "
            f"HBM {r['step_s_memory']:.3f} s), MFU <= {r['mfu_bound']:.2f}"
        )
    print(json.dumps(report))


if __name__ == "__main__":
    cli.run_absl(main)
