"""configs/tiny.py's world: one switch (data.world) read by every stage that renders the world."""

from __future__ import annotations

import json

import numpy as np

from configs import tiny
from data_pipelines.extract.sources import Decoding, make
from data_pipelines.synthetic.heldout import hidden_settings
from salsa.training import stages


def _worlds(c) -> dict:
    """The hidden-acoustics settings each consumer of the tiny pipeline sees."""
    gen = stages.generator_config(c)
    extract = c.stages.extract.source
    return {
        "sync": (c.stages.sync.data.world.hidden_acoustics, c.stages.sync.data.world.hidden_caption_fraction),
        "siglip": (
            c.stages.siglip.data.world.hidden_acoustics,
            c.stages.siglip.data.world.hidden_caption_fraction,
        ),
        "extract": (extract.hidden_acoustics, extract.hidden_caption_fraction),
        "vae": (c.stages.vae.data.world.hidden_acoustics, None),
        "evaluation": tuple(hidden_settings(json.loads(gen.to_json())["data"]["world"]).values()),
    }


def test_hidden_world_is_on_everywhere_by_default_and_one_override_turns_it_off():
    c = tiny.get_config()
    assert _worlds(c) == {
        "sync": (True, 0.5),
        "siglip": (True, 0.5),
        "extract": (True, 0.5),
        "vae": (True, None),
        "evaluation": (True, 0.5),
    }
    c.data.world.hidden_acoustics = False  # --config.data.world.hidden_acoustics=false
    assert _worlds(c) == {
        "sync": (False, 0.0),
        "siglip": (False, 0.0),
        "extract": (False, 0.0),
        "vae": (False, None),
        "evaluation": (False, 0.0),
    }


def test_extraction_renders_the_configured_world():
    c = tiny.get_config()
    d = Decoding(
        sample_rate=16000, channels=1, sync_fps=24.0, semantic_fps=8.0, sync_size=32, semantic_size=32
    )
    on = make(dict(c.stages.extract.source, clips=1, seconds=2.0)).load(0, d)
    c.data.world.hidden_acoustics = False
    off = make(dict(c.stages.extract.source, clips=1, seconds=2.0)).load(0, d)
    # the same picture, heard differently
    assert np.array_equal(on.frames24, off.frames24) and not np.allclose(on.audio, off.audio)
