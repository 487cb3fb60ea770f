"""The notebooks in notebooks/ run from top to bottom and show what they promise.

Each is executed with nbclient in a kernel of this Python, from the repository root, against the
random-weight tiny pipeline checkpoint (salsa/testing.py: the sound is noise, every shape, rate
and window is real) with SALSA_NOTEBOOK_QUICK=1, which shortens the long-form video to a few seconds.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import nbclient
import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "salsa-tests"


@pytest.fixture(scope="module")
def compilation_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture
def kernel_env(tmp_path, monkeypatch, compilation_cache):
    """A kernelspec that starts this very interpreter, and the environment the kernel inherits (with
    a JAX compilation cache shared by the notebooks: they compile the same sampler shapes)."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("SALSA_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", compilation_cache)
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    return monkeypatch


def execute(name: str):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=KERNEL, timeout=600, resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()
    return nb


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def count(nb, mime: str, contains: str = "") -> int:
    return sum(
        contains in str(o.get("data", {}).get(mime, "")) for o in outputs(nb) if mime in o.get("data", {})
    )


@pytest.mark.parametrize("name", ["quickstart.ipynb", "shortcut_steps.ipynb", "long_form.ipynb"])
def test_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


def run(name: str, env, checkpoint: str):
    """Executes the notebook; asserts that no cell failed; returns it and the text it printed."""
    env.setenv("SALSA_CHECKPOINT", checkpoint)
    nb = execute(name)
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    return nb, "".join(o.get("text", "") for o in outputs(nb) if o.output_type == "stream")


def test_quickstart(kernel_env, tiny_pipeline_dir):
    """Frames, generated vs ground-truth spectrograms and the prompted one; three audio players."""
    nb, text = run("quickstart.ipynb", kernel_env, tiny_pipeline_dir)
    assert "second call:" in text and "2.00 s of audio" in text
    assert count(nb, "text/html", "<audio") == 3
    assert count(nb, "image/png") == 3


def test_shortcut_steps(kernel_env, tiny_pipeline_dir):
    """A timing row per step count (1, 2, 4, 8, 32), the spectrogram grid and the timing chart."""
    nb, text = run("shortcut_steps.ipynb", kernel_env, tiny_pipeline_dir)
    rows = [line.split() for line in text.splitlines() if line.split() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 4, 8, 32]
    assert float(rows[-1][-1]) == 0.0 and float(rows[0][-1]) > 0  # latent distance to the 32-step sample
    assert count(nb, "image/png") == 2


def test_long_form(kernel_env, tiny_pipeline_dir):
    """6 s (quick) in 2 s windows starting every 1.5 s: 4 windows, the real-time factor, the reference
    and result players, the spectrograms with window boundaries and the per-window chart."""
    nb, text = run("long_form.ipynb", kernel_env, tiny_pipeline_dir)
    assert "4 windows, 6.0 s of audio" in text and "real-time factor" in text
    assert count(nb, "text/html", "<audio") == 2
    assert count(nb, "image/png") == 2


def test_missing_checkpoint_names_the_command(kernel_env, tmp_path):
    kernel_env.setenv("SALSA_CHECKPOINT", str(tmp_path / "nowhere"))
    with pytest.raises(
        nbclient.exceptions.CellExecutionError, match="python -m salsa.train --config=configs/tiny.py"
    ):
        execute("quickstart.ipynb")
