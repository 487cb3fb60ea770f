"""Scalar metrics to TensorBoard (`<workdir>/tb`) and to `<workdir>/metrics.jsonl`.

metrics.jsonl holds one JSON object per logged step: {"step": int, "loss": float, ..., "steps_per_s":
float}. A resumed run appends, so a step logged before a crash may appear again; the last line wins.

The workdir may be a local path or a URL such as gs://bucket/run (etils.epath; gs:// needs the `gcs`
extra). Object stores cannot append, so there metrics.jsonl is rewritten whole at every logged step.
"""

from __future__ import annotations

import json

from etils import epath
from tensorboardX import SummaryWriter

from salsa.io import is_remote


class MetricWriter:
    def __init__(self, workdir: str):
        root = epath.Path(workdir)
        root.mkdir(parents=True, exist_ok=True)
        self._tb = SummaryWriter(str(root / "tb"))  # tensorboardX writes gs:// itself
        self._path = root / "metrics.jsonl"
        self._remote = is_remote(workdir)
        if self._remote:  # the whole file, kept here and uploaded at every write
            self._text = self._path.read_text() if self._path.exists() else ""
        else:
            self._jsonl = self._path.open("a")

    def write(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self._tb.add_scalar(name, value, step)
        line = json.dumps({"step": step, **metrics}) + "\n"
        if self._remote:
            self._text += line
            self._path.write_text(self._text)
        else:
            self._jsonl.write(line)
            self._jsonl.flush()

    def close(self) -> None:
        self._tb.close()
        if not self._remote:
            self._jsonl.close()


def read_metrics(workdir: str) -> dict[int, dict[str, float]]:
    """metrics.jsonl as {step: metrics}, the last line for a step winning."""
    out = {}
    with (epath.Path(workdir) / "metrics.jsonl").open() as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                out[row.pop("step")] = row
    return out
