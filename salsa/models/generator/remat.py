"""Rematerialisation policies of the generator's blocks (`model.remat`): what the backward pass keeps
from the forward and what it computes again.

  none         keep everything XLA needs (fastest step, the most memory)
  block        keep each block's inputs only and run the block's forward again (the least memory:
               one forward of every block more per step)
  dots         keep every projection's output (jax's dots_with_no_batch_dims_saveable) and recompute
               attention and the elementwise work (norms, RoPE, GELU, adaLN) from them
  projections  keep the q/k/v, attention-output and MLP projections (tags below) and recompute the
               adaLN modulation projections, attention and the elementwise work

Older configs and checkpoints say `remat = True` (block) or `False` (none).

With length buckets (docs/training.md) one policy rarely suits every bucket: the longest may need the
least memory, the shorter ones can afford to keep more. `model.remat_long` (a policy, "" for none) then
applies to crops longer than `model.remat_limit_s` seconds, `model.remat` to the rest (`for_length`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
from flax import nnx

from salsa.models.layers import MLP_HIDDEN, MLP_OUT, MODULATION

# checkpoint_name tags on the blocks' matmul outputs: the adaLN modulation (B, T, k·width) and the MLP's
# up- and down-projections (salsa/models/layers.py), the q/k/v projections before their norms and RoPE
# and attention's output projection (attention.py).
QKV = "qkv"
ATTENTION_OUT = "attention_out"
NAMES = (MODULATION, QKV, ATTENTION_OUT, MLP_HIDDEN, MLP_OUT)

_POLICIES: dict[str, Callable[..., bool] | None] = {
    "block": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "projections": jax.checkpoint_policies.save_only_these_names(QKV, ATTENTION_OUT, MLP_HIDDEN, MLP_OUT),
}
POLICIES = ("none", *_POLICIES)


def normalise(remat: str | bool) -> str:
    """`model.remat` as a policy name; True and False (older configs, checkpoints) are block and none."""
    if isinstance(remat, bool):
        return "block" if remat else "none"
    if remat not in POLICIES:
        raise ValueError(f"model.remat={remat!r} must be one of {', '.join(POLICIES)} (or True/False).")
    return remat


def is_long(limit_s: float, frames: int, rate: float) -> bool:
    """Whether a crop of `frames` audio tokens at `rate` Hz has more tokens than one of `limit_s` seconds
    (ceil(limit_s · rate), as the loader pads)."""
    return frames > math.ceil(limit_s * rate - 1e-9)


def for_length(policy: str, long: str, limit_s: float, frames: int, rate: float) -> str:
    """The policy of a crop of `frames` audio tokens at `rate` Hz: `long` when it is set and the crop is
    longer than `limit_s` seconds (`is_long`), else `policy`."""
    return normalise(long) if long and is_long(limit_s, frames, rate) else normalise(policy)


def wrap(block: nnx.Module, policy: str) -> Callable:
    """`block`'s call, rematerialised under `policy` (one of POLICIES)."""
    if policy == "none":
        return block
    return nnx.remat(block, policy=_POLICIES[policy])
