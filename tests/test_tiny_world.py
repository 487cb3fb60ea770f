"""configs/tiny.py's world: one switch (data.world) read by every stage that renders the world."""

from __future__ import annotations

import json

import numpy as np

from configs import tiny
from data_pipelines.extract.sources import Decoding, make
from data_pipelines.synthetic.heldout import world_settings
from salsa.training import stages


def _worlds(c) -> dict:
    """The world settings (hidden acoustics, caption fraction, shutter) each consumer of the tiny
    pipeline sees; the VAE's clips are sound only."""
    fields = ("hidden_acoustics", "hidden_caption_fraction", "shutter")
    gen = stages.generator_config(c)
    extract = c.stages.extract.source
    return {
        "sync": tuple(c.stages.sync.data.world[k] for k in fields),
        "siglip": tuple(c.stages.siglip.data.world[k] for k in fields),
        "extract": tuple(extract[k] for k in fields),
        "vae": (c.stages.vae.data.world.hidden_acoustics, None),
        "evaluation": tuple(world_settings(json.loads(gen.to_json())["data"]["world"]).values()),
    }


def test_world_is_the_same_everywhere_and_one_override_changes_it_everywhere():
    c = tiny.get_config()
    on = (True, 0.5, 0.0)
    assert _worlds(c) == {"sync": on, "siglip": on, "extract": on, "vae": (True, None), "evaluation": on}
    c.data.world.hidden_acoustics = False  # --config.data.world.hidden_acoustics=false
    c.data.world.shutter = 0.5  # --config.data.world.shutter=0.5
    off = (False, 0.0, 0.5)
    assert _worlds(c) == {"sync": off, "siglip": off, "extract": off, "vae": (False, None), "evaluation": off}


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
