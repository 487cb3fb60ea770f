"""bench/preemption_storm.py's own logic, fast: what its comparison calls equal (the tolerance documented
in docs/reliability.md) and that its kills land in the stages they aim at. The real campaign on the
tiny pipeline is tests/test_faults_preemption.py (slow)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from bench import preemption_storm
from salsa.training import stages

# A stand-in pipeline: each stage not done logs its start as the stage runner does, works for a while,
# writes an array and its done.json; evaluate writes metrics.json with a wall-clock timing. Its done.json
# claims less time than a stage takes, so each kill (drawn over the claimed time) lands inside the stage
# even on a loaded machine.
FAKE = """
import json, os, sys, time
import numpy as np
workdir, names = sys.argv[1], sys.argv[2].split(",")
for i, n in enumerate(names, 1):
    out = os.path.join(workdir, "eval" if n == "evaluate" else n)
    if os.path.exists(os.path.join(out, "done.json")):
        continue
    print(f"I stages.py:161] ==== [{i}/{len(names)}] {n} -> {out} ====", file=sys.stderr, flush=True)
    os.makedirs(out, exist_ok=True)
    time.sleep(1.5)
    np.savez(os.path.join(out, "params.npz"), w=np.arange(4.0) * i)
    if n == "evaluate":
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump({"fad": 1.5, "seconds": time.time(), "checkpoint": workdir + "/generator"}, f)
    with open(os.path.join(out, "done.json"), "w") as f:
        json.dump({"seconds": 0.6}, f)
"""


def _write(root, metrics=None, arrays=None, cache=None):
    os.makedirs(root / "generator" / "pipeline", exist_ok=True)
    np.savez(root / "generator" / "pipeline" / "params.npz", **(arrays or {"w": np.ones(3, np.float32)}))
    os.makedirs(root / "eval" / ".cache", exist_ok=True)
    for name, audio in (cache or {}).items():
        np.savez(root / "eval" / ".cache" / name, a0=audio)
    with open(root / "eval" / "metrics.json", "w") as f:
        json.dump(metrics or {"fad": 1.0}, f)


def test_comparison_is_bit_exact_but_for_timings_paths_and_cache_names(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _write(
        a,
        {"fad": 1.0, "seconds": 10.0, "x": {"sampling_seconds_per_clip": 0.1, "ckpt": f"{a}/g"}},
        cache={"steps-1111.npz": np.zeros(4)},
    )
    _write(
        b,
        {"fad": 1.0, "seconds": 99.0, "x": {"sampling_seconds_per_clip": 0.7, "ckpt": f"{b}/g"}},
        cache={"steps-2222.npz": np.zeros(4)},
    )
    result = preemption_storm.compare(str(a), str(b))
    assert result["equal"], result["differences"]
    assert (result["arrays"], result["cached_parts"]) == (1, 1)

    changed = {"fad": 1.0 + 1e-12, "seconds": 1.0, "x": {"sampling_seconds_per_clip": 0.1, "ckpt": f"{b}/g"}}
    _write(b, changed, arrays={"w": np.nextafter(np.ones(3, np.float32), 2)})
    diffs = preemption_storm.compare(str(a), str(b))["differences"]
    assert any("array w differs" in d for d in diffs) and any("metrics.json.fad" in d for d in diffs)


def test_cached_audio_that_differs_is_caught(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _write(a, cache={"steps-1111.npz": np.zeros(4)})
    _write(b, cache={"steps-2222.npz": np.full(4, 1e-30)})
    assert not preemption_storm.compare(str(a), str(b))["equal"]


def test_kills_land_in_the_stages_they_aim_at(tmp_path, monkeypatch):
    names = ("vae", "extract", "evaluate")
    script = tmp_path / "fake_pipeline.py"
    script.write_text(FAKE)
    monkeypatch.setattr(stages, "ORDER", names)
    monkeypatch.setattr(stages, "OPTIONAL", ())
    monkeypatch.setattr(
        preemption_storm, "command", lambda w, minimal: [sys.executable, str(script), w, ",".join(names)]
    )
    result = preemption_storm.campaign(str(tmp_path / "storm"), kills=3, seed=0, minimal=True)
    assert [e["stage"] for e in result["events"]] == list(names)  # one kill per stage, each landed there
    assert result["per_stage"] == {"vae": 1, "extract": 1, "evaluate": 1, "finished": 0}
    assert result["equal"] and result["survived"] == result["landed"] == 3
    assert result["overhead"] > 1
