"""Learning, not just running: shortcut training beats flow matching at 1 and 2 sampling steps."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import toy_shortcut  # noqa: E402


def test_shortcut_samples_closer_to_the_data_in_one_and_two_steps():
    results, _ = toy_shortcut.run(steps=1500, batch=256, seed=0)
    print({k: {s: round(v, 4) for s, v in r.items()} for k, r in results.items()})
    for steps in ("1", "2"):
        assert results["shortcut"][steps] < 0.7 * results["flow"][steps], steps
    # and many steps of either model approach the data
    assert results["shortcut"]["128"] < 0.15 and results["flow"]["128"] < 0.15
