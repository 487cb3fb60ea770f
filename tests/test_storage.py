"""Object-store workdirs: the gs:// code paths on a local directory, and a clear error without gcsfs."""

from __future__ import annotations

import os

import numpy as np
import pytest


def test_object_store_code_paths_on_a_local_directory(tmp_path, monkeypatch):
    """The gs:// branches (whole-file metrics rewrite, shards written locally then uploaded, listing by
    etils.epath) run against a local directory by treating it as remote; GCS itself is not reached."""
    from data_pipelines.features import durations, records, toy
    from salsa.training import metric_writer
    from tests.toy_config import get_config

    monkeypatch.setattr(metric_writer, "is_remote", lambda path: True)
    monkeypatch.setattr(records, "is_remote", lambda path: True)
    run = tmp_path / "run"
    writer = metric_writer.MetricWriter(str(run))
    writer.write(1, {"loss": 2.0})
    writer.write(2, {"loss": 1.5})
    writer.close()
    resumed = metric_writer.MetricWriter(str(run))  # a restarted run appends to what is there
    resumed.write(2, {"loss": 1.25})
    resumed.close()
    assert metric_writer.read_metrics(str(run)) == {1: {"loss": 2.0}, 2: {"loss": 1.25}}
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 3

    config = get_config()
    originals = list(toy.make_records(config, n=5, seed=0))
    paths = records.write_shards(originals, run / "data", num_shards=2, config=config)
    written = [os.path.basename(f(p)) for p in paths for f in (str, durations.index_path)]
    assert sorted(os.listdir(run / "data")) == sorted(written)  # shards and their index, no temporaries
    assert records.shard_paths(str(run / "data")) == paths
    back = {r["id"]: r for r in records.read_all(paths)}
    assert sorted(back) == sorted(r["id"] for r in originals)
    np.testing.assert_array_equal(back[originals[0]["id"]]["latents"], originals[0]["latents"])


def test_gcs_paths_without_gcsfs_are_one_clear_error():
    import importlib.util

    from salsa.training import setup

    if importlib.util.find_spec("gcsfs") or importlib.util.find_spec("tensorflow"):
        pytest.skip("gcsfs is installed here")
    with pytest.raises(setup.BadInput, match=r"'gs://b/run' is on GCS, which needs gcsfs: pip install"):
        setup.check_storage("/tmp/local", "gs://b/run")
    setup.check_storage("/tmp/local", "")  # local paths need nothing


@pytest.fixture
def fake_gcs(tmp_path, monkeypatch):
    """gs://BUCKET/... served from tmp_path/gcs/BUCKET/... through fsspec, as gcsfs would serve it
    (etils.epath asks fsspec for its "gcs" file system); returns that local root."""
    import importlib

    from etils.epath import backend
    from fsspec.implementations.local import LocalFileSystem

    registry = importlib.import_module("fsspec.registry")  # the module; fsspec.registry is its mapping

    root = tmp_path / "gcs"
    root.mkdir()

    class FakeGCS(LocalFileSystem):
        protocol = ("gs", "gcs")

        def __init__(self, *args, finalize_on_close=True, **kwargs):
            super().__init__(*args, **kwargs)

        @classmethod
        def _strip_protocol(cls, path):
            path = os.fspath(path)
            for scheme in ("gs://", "gcs://"):
                if path.startswith(scheme):
                    return os.path.join(root, path[len(scheme) :])
            return super()._strip_protocol(path)

    for name in ("gs", "gcs"):
        monkeypatch.setitem(registry._registry, name, FakeGCS)
    backend.fsspec_backend._get_filesystem.cache_clear()
    yield root
    backend.fsspec_backend._get_filesystem.cache_clear()


def test_a_gs_workdir_and_data_dir_reach_the_bucket(fake_gcs, tiny_pipeline_dir, tmp_path, monkeypatch):
    """Training with --workdir gs://... and features in gs://...: the features' extraction.json is read from
    the bucket (so the export is a whole pipeline), and the export is uploaded there, its pipeline.json
    last, replacing an older export; nothing is written to a local folder named after the URL."""
    from configs.generator import get_config
    from data_pipelines.features import extraction
    from salsa import bundle, io, testing
    from salsa.inference import checkpoint, pipeline
    from salsa.models.generator.model import Generator, GeneratorConfig

    monkeypatch.chdir(tmp_path)
    components = {n: os.path.join(os.path.dirname(tiny_pipeline_dir), n) for n in ("vae", "siglip", "sync")}
    extraction.write("gs://bucket/features", {"format": 1, "components": {**components, "tokenizer": None}})
    assert (fake_gcs / "bucket" / "features" / "extraction.json").is_file()
    config = get_config("tiny")
    config.data.dir = "gs://bucket/features"
    uploads = []
    copy = io.copy_file

    def recorded(local, dest):
        uploads.append(os.fspath(dest))
        copy(local, dest)

    monkeypatch.setattr(io, "copy_file", recorded)
    for seed in (5, 6):
        params = testing.random_params(Generator, GeneratorConfig.from_config(config), seed)
        uploads.clear()
        assert checkpoint.export(config, params, "gs://bucket/run") == "gs://bucket/run/pipeline"
        assert uploads[-1] == "gs://bucket/run/pipeline/pipeline.json"
        p = pipeline.load(fake_gcs / "bucket" / "run" / "pipeline")
        np.testing.assert_array_equal(
            bundle.flatten(bundle.params_of(p.generator))["final/kernel"], params["final"]["kernel"]
        )
    assert sorted(os.listdir(tmp_path)) == ["gcs"]  # no ./gs:/... beside it


def test_a_pipeline_in_the_bucket_is_made_and_used_from_the_bucket(fake_gcs, tmp_path, monkeypatch, capsys):
    """Components, pipeline and generator bundle all on gs://: the export copies the components it names
    from the bucket into a whole pipeline there; `assemble --generator gs://WORKDIR` and a VAE's
    `init_bundle` read from it; and salsa.extend --checkpoint gs://... writes a soundtrack for a video,
    its prompt tokenized with the pipeline's tokenizer.json read from the bucket."""
    from configs import vae_tiny
    from configs.generator import get_config
    from data_pipelines.features import extraction
    from data_pipelines.media import write_video
    from salsa import bundle, cli, extend, pipeline, testing
    from salsa.inference import checkpoint
    from salsa.models.generator.model import Generator, GeneratorConfig
    from salsa.models.vae import model as vae_lib
    from salsa.training.tasks.vae import VaeTask

    monkeypatch.chdir(tmp_path)
    config = get_config("tiny")
    local = testing.random_components(str(fake_gcs / "bucket" / "parts"), config)
    parts = {n: f"gs://bucket/parts/{os.path.basename(p)}" for n, p in local.items()}
    extraction.write("gs://bucket/features", {"format": 1, "components": parts})
    config.data.dir = "gs://bucket/features"
    params = testing.random_params(Generator, GeneratorConfig.from_config(config), 7)
    assert checkpoint.export(config, params, "gs://bucket/run") == "gs://bucket/run/pipeline"
    assert sorted(os.listdir(fake_gcs / "bucket" / "run" / "pipeline")) == [
        "generator", "pipeline.json", "siglip", "sync", "tokenizer.json", "vae"
    ]  # fmt: skip

    _, got = checkpoint.generator_bundle("gs://bucket/run")
    np.testing.assert_array_equal(bundle.flatten(got)["final/kernel"], params["final"]["kernel"])
    out = tmp_path / "assembled"
    argv = ["assemble", "--generator", "gs://bucket/run", "--out", str(out)]
    argv += [f"--{n}={parts[n]}" for n in ("vae", "siglip", "sync", "tokenizer")]
    assert cli.run(pipeline.main, argv) == 0
    assert sorted(os.listdir(out / "vae")) == sorted(os.listdir(local["vae"]))

    vae = vae_tiny.get_config()
    source = testing.random_params(vae_lib.VAE, VaeTask(vae).vae_config, 3)
    bundle.save_vae("gs://bucket/init", VaeTask(vae).vae_config, source)
    vae.init_bundle = "gs://bucket/init"
    got = bundle.flatten(VaeTask(vae).initial_params()["vae"])
    assert got.keys() == bundle.flatten(source).keys()
    np.testing.assert_array_equal(got["decoder/conv2/g"], source["decoder"]["conv2"]["g"])

    frames = np.random.default_rng(0).integers(0, 256, (48, 32, 32, 3), np.uint8)
    write_video(tmp_path / "clip.mp4", frames, 24.0)
    argv = ["--video", "clip.mp4", "--checkpoint", "gs://bucket/run/pipeline", "--wav", "clip.wav"]
    argv += ["--text", "rain on a tin roof", "--steps", "1", "--window", "2", "--context", "0.5"]
    assert cli.run(extend.main, argv) == 0, capsys.readouterr().err
    assert (tmp_path / "clip.wav").stat().st_size > 0
