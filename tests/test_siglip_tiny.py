"""Tiny SigLIP towers on the synthetic world: caption tokenizer, the `siglip` task and its export, and
(slow) image -> caption retrieval on held-out clips after a short training run."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from configs.siglip_tiny import get_config
from data_pipelines.synthetic import WorldConfig
from data_pipelines.synthetic.captioned import CaptionedClips, build_tokenizer, encode
from salsa import bundle
from salsa.inference import encoders
from salsa.models.encoders.siglip2 import Siglip, SiglipConfig
from salsa.training import loop, tasks
from salsa.training.tasks.siglip import SiglipTask, retrieval_top1

pytest.importorskip("tokenizers")


def test_caption_tokenizer_round_trip(tmp_path):
    captions = ["a metal ball bounces twice, as rain falls outside", "a wooden block slides, as wind blows"]
    tok = build_tokenizer(captions)
    tok.save(str(tmp_path / "tokenizer.json"))
    ids = encode(tok, captions + ["A METAL drum"], 12)
    # The feature functions read the saved file the same way: <pad> = 0 fills, unknown words are <unk>.
    np.testing.assert_array_equal(
        encoders.tokenize(str(tmp_path / "tokenizer.json"), captions + ["A METAL drum"], 12), ids
    )
    assert ids.shape == (3, 12) and ids[0, 10] == 0 and ids[0, 5] == tok.token_to_id(",")
    assert list(ids[2, :3]) == [tok.token_to_id("a"), tok.token_to_id("metal"), 1]


def test_siglip_task_trains_and_exports(tmp_path):
    """Two steps on four clips; the export is a bundle the feature functions load, with its tokenizer."""
    assert tasks.get("siglip") is SiglipTask
    config = get_config()
    config.batch_size, config.data.clips, config.data.world.seconds = 4, 4, 2.0
    config.total_steps, config.log_every, config.checkpoint_every = 2, 1, 2
    logged = []
    loop.train(config, str(tmp_path), hooks=[lambda s, m: logged.append(m)])
    assert len(logged) == 2 and all(np.isfinite(m["loss"]) for m in logged)
    out = tmp_path / "export"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "params.npz", "tokenizer.json"]
    assert json.loads((out / "config.json").read_text())["kind"] == "siglip2"
    model = bundle.from_bundle(str(out), "siglip2", Siglip, SiglipConfig)
    clips = CaptionedClips(WorldConfig(**dict(config.data.world)), config.data.seed, 2)
    ids = encoders.tokenize(str(out / "tokenizer.json"), clips.captions, model.config.text_len)
    assert (ids != 1).all()  # the training captions' words are all in the vocabulary
    assert encoders.text(model, ids).shape == (2, 64)
    assert encoders.semantic(model, clips.frames[0][:3]).shape == (3, 64)


@pytest.mark.slow
def test_tiny_siglip_retrieves_captions(tmp_path):
    config = get_config()
    start = time.perf_counter()
    loop.train(config, str(tmp_path))
    minutes = (time.perf_counter() - start) / 60
    out = str(tmp_path / "export")
    model = bundle.from_bundle(out, "siglip2", Siglip, SiglipConfig)
    held = CaptionedClips(WorldConfig(**dict(config.data.world)), seed=12345, count=200)
    images = np.stack([f[f.shape[0] // 2] for f in held.frames])
    tokens = encoders.tokenize(out + "/tokenizer.json", held.captions, model.config.text_len)
    top1, chance = retrieval_top1(model, images, tokens)
    print(f"image -> caption top-1, 200 held-out clips: {top1:.3f} (chance {chance:.3f}), {minutes:.1f} min")
    assert top1 >= 2 * chance
