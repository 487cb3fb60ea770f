"""The extraction estimate's arithmetic (data_pipelines/extract/throughput.py): from FLOPs and bytes per
clip to a host's clips per second, and from there to the hours a data set takes on a slice."""

from __future__ import annotations

import pytest

from data_pipelines.extract.throughput import V4, Chip, Cost, host_rate, slice_hours

CHIP = Chip(peak_flops=100.0, hbm_bandwidth=10.0, chips_per_host=4)


def test_a_compute_bound_clip_runs_at_the_chips_flops():
    rate = host_rate([Cost(flops=200.0, bytes=1.0)], CHIP)  # 2 s of FLOPs, 0.1 s of bytes per chip
    assert rate["flops_bound"] == pytest.approx(CHIP.chips_per_host / 2.0)
    assert rate["bytes_bound"] == pytest.approx(CHIP.chips_per_host / 0.1)
    assert rate["roofline"] == pytest.approx(rate["flops_bound"])
    assert rate["estimate"] == pytest.approx(rate["roofline"])


def test_a_memory_bound_clip_runs_at_the_chips_bandwidth():
    rate = host_rate([Cost(flops=1.0, bytes=50.0)], CHIP)
    assert rate["roofline"] == pytest.approx(rate["bytes_bound"])
    assert rate["bytes_bound"] < rate["flops_bound"]


def test_the_encoders_of_a_clip_take_turns_and_each_is_held_by_its_own_bound():
    compute, memory = Cost(flops=300.0, bytes=1.0), Cost(flops=1.0, bytes=30.0)
    both = host_rate([compute, memory], CHIP)
    alone = [host_rate([c], CHIP)["roofline"] for c in (compute, memory)]
    # Times add: one clip takes each encoder's time in turn.
    assert 1 / both["roofline"] == pytest.approx(sum(1 / r for r in alone))
    # Each encoder waits on its own bottleneck, so the pair is slower than either summed bound says.
    assert both["roofline"] < min(both["flops_bound"], both["bytes_bound"])


def test_mfu_slows_the_compute_bound_part_and_chips_scale_the_host():
    compute, memory = [Cost(flops=200.0, bytes=1.0)], [Cost(flops=1.0, bytes=50.0)]
    assert host_rate(compute, CHIP, mfu=0.25)["estimate"] == pytest.approx(
        0.25 * host_rate(compute, CHIP)["flops_bound"]
    )
    # A clip held by its bytes stays there while the FLOPs at that MFU still take less time.
    assert host_rate(memory, CHIP, mfu=0.25)["estimate"] == pytest.approx(
        host_rate(memory, CHIP)["bytes_bound"]
    )
    eight = Chip(CHIP.peak_flops, CHIP.hbm_bandwidth, 2 * CHIP.chips_per_host)
    assert host_rate(compute, eight)["roofline"] == pytest.approx(2 * host_rate(compute, CHIP)["roofline"])
    assert V4.chips_per_host == 4 and V4.peak_flops == 275e12 and V4.hbm_bandwidth == 1.2e12


@pytest.mark.parametrize("mfu", [0.0, 1.5])
def test_an_mfu_outside_zero_to_one_is_refused(mfu):
    with pytest.raises(ValueError, match="mfu"):
        host_rate([Cost(1.0, 1.0)], CHIP, mfu)


def test_slice_hours_is_clips_over_the_slices_rate():
    hours = slice_hours(content_hours=900.0, clip_seconds=10.0, clips_per_s_per_host=2.5, hosts=4)
    clips = 900.0 * 3600 / 10.0
    assert hours * 3600 * 4 * 2.5 == pytest.approx(clips)
    assert slice_hours(900.0, 10.0, 2.5, 1) == pytest.approx(4 * hours)  # a v4-8 against a v4-32
    with pytest.raises(ValueError, match="positive"):
        slice_hours(900.0, 10.0, 0.0, 4)
