"""Padding waste of bucketed crops (data_pipelines/features/buckets.py) on the data recipe's lengths.

    PYTHONPATH=. python bench/buckets.py [--rows 200000] [--batch 300]
    PYTHONPATH=. python bench/buckets.py --features DIR [DIR ...]     # your folders' durations index

Without --features, rows are drawn from a model of docs/data.md's mixture (vggsound 0.3, wild 0.2,
wavcaps 0.4, foley 0.1 of rows). Published facts: VGGSound clips are 10 s; Moments-in-Time clips are 3 s;
Panda-70M clips average 8.5 s; WavCaps' parts and their mean lengths (FreeSound 262,300 clips of 86.0 s
on average, BBC Sound Effects 31,201 of 115.0 s, SoundBible 1,232 of 13.1 s, AudioSet-SL 108,317 of
10.0 s). Assumed (no published distribution): 3% of VGGSound clips end early (uniform 2-10 s); the
"wild" set is half Moments-in-Time, half Panda-70M; lengths within a part are log-normal with the
published mean and spread `--sigma` (default 1.0; the table also gives 0.5 and 1.5); the Foley set is
log-normal with mean 5 s. Every crop is at most 15 s (train_crop_s), so what is longer is cut, not padded.

Prints one table (padding share of the frames of a chunk's batches, per bucket set and spread) and
writes bench/results/buckets.json.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from data_pipelines.features import buckets
from salsa.io import write_json

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "buckets.json")
CROP_S = 15.0
BUCKET_SETS = {
    "15": (15.0,),
    "10, 15": (10.0, 15.0),
    "5, 10, 15": (5.0, 10.0, 15.0),
    "3, 10, 15": (3.0, 10.0, 15.0),
    "3, 6, 10, 15": (3.0, 6.0, 10.0, 15.0),
    "3, 5, 8, 10, 12, 15": (3.0, 5.0, 8.0, 10.0, 12.0, 15.0),
}
# (share of the source's clips, mean seconds, log-normal spread or None for a fixed length)
PARTS = {
    "vggsound": [(0.97, 10.0, None), (0.03, "short", None)],
    "wild": [(0.5, 3.0, None), (0.5, 8.5, "sigma")],
    "wavcaps": [
        (262_300 / 403_050, 85.98, "sigma"),
        (31_201 / 403_050, 115.04, "sigma"),
        (1_232 / 403_050, 13.12, "sigma"),
        (108_317 / 403_050, 10.0, None),
    ],
    "foley": [(1.0, 5.0, "sigma")],
}
WEIGHTS = {"vggsound": 0.3, "wild": 0.2, "wavcaps": 0.4, "foley": 0.1}


def recipe_rows(rows: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Durations of `rows` rows of the modelled mixture, in a random order."""
    out = []
    for source, weight in WEIGHTS.items():
        n = round(rows * weight)
        for share, mean, spread in PARTS[source]:
            k = round(n * share)
            if mean == "short":
                out.append(rng.uniform(2.0, 10.0, k))
            elif spread is None:
                out.append(np.full(k, mean))
            else:  # log-normal with this mean: mu = ln(mean) - sigma^2 / 2
                out.append(rng.lognormal(np.log(mean) - sigma**2 / 2, sigma, k))
    seconds = np.concatenate(out)
    return seconds[rng.permutation(len(seconds))]


def folder_rows(folders: list[str]) -> np.ndarray:
    from data_pipelines.features import durations, records

    return np.concatenate([durations.read(records.shard_paths(f)) for f in folders])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=300)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--features", nargs="*", default=None, help="feature folders to read instead")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    if args.features:
        spreads = {"folders": folder_rows(args.features)}
    else:
        spreads = {f"sigma {s:g}": recipe_rows(args.rows, s, rng) for s in (0.5, args.sigma, 1.5)}
    table = {}
    for name, edges in BUCKET_SETS.items():
        table[name] = {
            label: buckets.padding_waste(seconds, edges, args.batch) for label, seconds in spreads.items()
        }
    first = next(iter(spreads.values()))
    under = {f"<= {b:g} s": float(np.mean(first <= b + 1e-6)) for b in (3, 5, 10, 15)}
    print(
        f"rows {len(first)}, batch {args.batch}; share of clips "
        + ", ".join(f"{k} {v:.0%}" for k, v in under.items())
    )
    print("| buckets (s) | " + " | ".join(f"padding, {label}" for label in spreads) + " |")
    print("|---|" + "---|" * len(spreads))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{v:.1%}" for v in row.values()) + " |")
    write_json(
        RESULTS,
        {
            "rows": len(first),
            "batch": args.batch,
            "features": args.features,
            "share_of_clips": under,
            "padding": table,
        },
    )


if __name__ == "__main__":
    main()
