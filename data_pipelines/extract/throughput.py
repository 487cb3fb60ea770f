"""What extraction costs at scale: a TPU host's clips per second from the encoders' FLOPs and bytes per
clip, and the hours a data set takes on a slice.

A chip spends at least FLOPs / peak rate and at least bytes accessed / HBM bandwidth on a clip (XLA's
cost analysis of the compiled encoders gives both numbers). A clip's encoders run one after another, so
their times add up, and a host whose chips each encode whole clips extracts chips / (seconds per clip)
clips per second. The estimate assumes the chips reach `mfu` of their peak FLOP rate and the full HBM
bandwidth: each encoder takes the longer of FLOPs / (mfu · peak) and bytes / bandwidth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from salsa.chips import CHIPS_PER_HOST, HBM_BANDWIDTH, PEAK_FLOPS


@dataclasses.dataclass(frozen=True)
class Cost:
    """One encoder's work on one clip: FLOPs and bytes accessed (as XLA's cost analysis counts them)."""

    flops: float
    bytes: float


@dataclasses.dataclass(frozen=True)
class Chip:
    peak_flops: float  # FLOP/s
    hbm_bandwidth: float  # bytes/s
    chips_per_host: int


V4 = Chip(PEAK_FLOPS["v4"], HBM_BANDWIDTH["v4"], CHIPS_PER_HOST["v4"])


def _seconds(costs: list[Cost], chip: Chip, mfu: float) -> float:
    return sum(max(c.flops / (mfu * chip.peak_flops), c.bytes / chip.hbm_bandwidth) for c in costs)


def host_rate(costs: Iterable[Cost], chip: Chip = V4, mfu: float = 1.0) -> dict[str, float]:
    """Clips per second of one host whose chips each run every encoder of `costs` on whole clips.

    Returns the rate the chips' peak FLOPs allow (`flops_bound`), the rate their HBM bandwidth allows
    (`bytes_bound`), the roofline (each encoder at the slower of the two, `roofline`) and the same with
    the FLOP rate at `mfu` of peak (`estimate`)."""
    costs = list(costs)
    if not costs:
        raise ValueError("host_rate needs the cost of at least one encoder.")
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}.")
    n = chip.chips_per_host
    return {
        "flops_bound": n * chip.peak_flops / sum(c.flops for c in costs),
        "bytes_bound": n * chip.hbm_bandwidth / sum(c.bytes for c in costs),
        "roofline": n / _seconds(costs, chip, 1.0),
        "estimate": n / _seconds(costs, chip, mfu),
    }


def slice_hours(content_hours: float, clip_seconds: float, clips_per_s_per_host: float, hosts: int) -> float:
    """Wall-clock hours to extract `content_hours` of clips of `clip_seconds` each at
    `clips_per_s_per_host` on `hosts` hosts sharing the shards evenly:
    content_hours · 3600 / clip_seconds clips at hosts · clips_per_s_per_host clips per second."""
    if min(content_hours, clip_seconds, clips_per_s_per_host, hosts) <= 0:
        raise ValueError("content hours, clip seconds, clips per second and hosts must all be positive.")
    clips = content_hours * 3600 / clip_seconds
    return clips / (hosts * clips_per_s_per_host) / 3600
