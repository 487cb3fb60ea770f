"""Damaged or foreign files at load time: a bundle with a missing, misshapen or corrupt array, and a
pipeline checkpoint of another format, each end in one line naming the file (and the array, the
formats)."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from salsa import bundle
from salsa.inference import checkpoint
from salsa.models.encoders import sync as sync_lib


@pytest.fixture(scope="module")
def sync_bundle(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("sync") / "sync")
    config = sync_lib.variant("tiny")
    bundle.save(path, "sync", config.to_dict(), bundle.params_of(bundle.build(sync_lib.SyncModel, config)))
    return path


def _load(path):
    return bundle.from_bundle(path, "sync", sync_lib.SyncModel, sync_lib.SyncConfig)


def _rewrite_params(src, dst, change):
    """A copy of bundle `src` at `dst` whose params.npz arrays went through change(dict) -> dict."""
    os.makedirs(dst)
    for name in os.listdir(src):
        if name != bundle.PARAMS:
            with open(os.path.join(src, name), "rb") as f, open(os.path.join(dst, name), "wb") as g:
                g.write(f.read())
    with np.load(os.path.join(src, bundle.PARAMS)) as z:
        arrays = change({k: z[k] for k in z.files})
    np.savez(os.path.join(dst, bundle.PARAMS), **arrays)
    return dst


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_bundle_loads(sync_bundle):
    _load(sync_bundle)


def test_bundle_with_a_missing_array_names_file_and_array(sync_bundle, tmp_path):
    with np.load(os.path.join(sync_bundle, bundle.PARAMS)) as z:
        victim = sorted(z.files)[3]
    path = _rewrite_params(
        sync_bundle, str(tmp_path / "b"), lambda a: {k: v for k, v in a.items() if k != victim}
    )
    with pytest.raises(bundle.BundleError) as err:
        _load(path)
    text = _one_line(err)
    assert os.path.join(path, bundle.PARAMS) in text and victim in text and "missing" in text


def test_bundle_with_a_misshapen_array_names_file_array_and_shapes(sync_bundle, tmp_path):
    with np.load(os.path.join(sync_bundle, bundle.PARAMS)) as z:
        victim = next(k for k in sorted(z.files) if z[k].ndim == 2)
        shape = z[victim].shape

    def shrink(arrays):
        arrays[victim] = arrays[victim][:-1]
        return arrays

    path = _rewrite_params(sync_bundle, str(tmp_path / "b"), shrink)
    with pytest.raises(bundle.BundleError) as err:
        _load(path)
    text = _one_line(err)
    assert os.path.join(path, bundle.PARAMS) in text and victim in text
    assert str((shape[0] - 1, shape[1])) in text and str(shape) in text


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_bundle_with_damaged_arrays_names_the_file(sync_bundle, tmp_path, damage):
    path = _rewrite_params(sync_bundle, str(tmp_path / "b"), lambda a: a)
    npz = os.path.join(path, bundle.PARAMS)
    with zipfile.ZipFile(npz) as z:  # the middle of the largest array's stored bytes
        info = max(z.infolist(), key=lambda i: i.file_size)
        middle = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    with open(npz, "r+b") as f:
        if damage == "truncate":
            f.truncate(middle)
        else:
            f.seek(middle)
            byte = f.read(1)[0]
            f.seek(middle)
            f.write(bytes([byte ^ 0x01]))
    with pytest.raises(bundle.BundleError) as err:
        _load(path)
    assert npz in _one_line(err)


@pytest.mark.parametrize(("fmt", "words"), [(2, "newer"), (0, "older"), ("v1", "not known")])
def test_pipeline_checkpoint_of_another_format_names_both(tmp_path, fmt, words):
    directory = tmp_path / "ckpt"
    directory.mkdir()
    # A later format may lay out everything else differently: the format alone decides.
    (directory / checkpoint.FILE).write_text(json.dumps({"format": fmt, "parts": {}}))
    with pytest.raises(checkpoint.PipelineError) as err:
        checkpoint.load(str(directory))
    text = _one_line(err)
    assert words in text and f"format {fmt!r}" in text
    assert f"reads format {checkpoint.FORMAT}" in text and str(directory / checkpoint.FILE) in text
