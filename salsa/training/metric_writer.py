"""Scalar metrics to TensorBoard (`<workdir>/tb`) and to `<workdir>/metrics.jsonl`.

metrics.jsonl holds one JSON object per logged step: {"step": int, "loss": float, ..., "steps_per_s":
float}. A resumed run appends, so a step logged before a crash may appear again; the last line wins.
"""

from __future__ import annotations

import json
import os

from tensorboardX import SummaryWriter


class MetricWriter:
    def __init__(self, workdir: str):
        os.makedirs(workdir, exist_ok=True)
        self._tb = SummaryWriter(os.path.join(workdir, "tb"))
        self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")  # noqa: SIM115 (closed in close())

    def write(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self._tb.add_scalar(name, value, step)
        self._jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
        self._jsonl.flush()

    def close(self) -> None:
        self._tb.close()
        self._jsonl.close()


def read_metrics(workdir: str) -> dict[int, dict[str, float]]:
    """metrics.jsonl as {step: metrics}, the last line for a step winning."""
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                out[row.pop("step")] = row
    return out
