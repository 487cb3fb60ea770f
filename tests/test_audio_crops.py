"""The VAE's synthetic audio source keeps each rendered clip when the set is small (one render per clip,
not per crop) and renders on every read when it is not; both give the world's clip exactly."""

import numpy as np
import pytest

from data_pipelines.audio.crops import SyntheticAudio
from data_pipelines.synthetic import make_clip


def _rendered(source, index):
    return make_clip(source.world, source.seed, index).audio


def test_a_small_set_renders_each_clip_once_and_keeps_it_read_only():
    source = SyntheticAudio(4, 7, 2.0, 8000, 1)
    first = source[2]
    assert source[np.int64(2)] is first  # kept, not rendered again
    np.testing.assert_array_equal(first, _rendered(source, 2))
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1.0  # a crop can never write into the kept clip


def test_a_set_past_the_cache_budget_renders_on_every_read(monkeypatch):
    budget = 4 * 16000 * 4 - 1  # one byte short of 4 clips of 2 s at 8 kHz
    monkeypatch.setattr(SyntheticAudio, "CACHE_BYTES", budget)
    source = SyntheticAudio(4, 7, 2.0, 8000, 1)
    assert source[1] is not source[1]
    np.testing.assert_array_equal(source[1], _rendered(source, 1))
