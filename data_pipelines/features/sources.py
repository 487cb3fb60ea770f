"""The feature sets a generator trains on: one folder (`data.dir`) or a weighted mixture (`data.sources`).

    c.data.sources = {
        "av": dict(dir="gs://bucket/features/vggsound", weight=0.5),
        "audio_text": dict(dir="gs://bucket/features/wavcaps", weight=0.5),
    }

Weights are relative (normalised to sum to 1): the share of rows each source gives every batch, in a
fixed interleaving (docs/training.md). A config sets `data.dir` or `data.sources`, never both; with
`data.dir` alone training reads that one folder exactly as it always has.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from salsa.errors import UserError

_NAME = re.compile(r"[a-z][a-z0-9_]*")


class SourcesError(UserError):
    """`data.sources` (or `data.dir`) does not describe a set of feature folders."""


@dataclasses.dataclass(frozen=True)
class Source:
    name: str  # per-source losses are logged as `<name>_loss`
    dir: str
    weight: float  # normalised: the weights of a config's sources sum to 1


def sources(config: Any) -> list[Source]:
    """The config's feature sources, sorted by name (a row's `source` is its index here): `data.sources`,
    or `data.dir` as one source named "data". Raises SourcesError naming the field when the description
    is not usable."""
    data = config.data
    mixture = dict(data.get("sources") or {})
    if not mixture:
        return [Source("data", str(data.get("dir") or ""), 1.0)]
    if data.get("dir"):
        raise SourcesError(
            f"data.dir={data.dir!r} and data.sources ({', '.join(mixture)}) are both set; give one folder "
            "in data.dir or a mixture in data.sources."
        )
    out = []
    for name, spec in sorted(mixture.items()):
        if not _NAME.fullmatch(name):
            raise SourcesError(f"data.sources name {name!r} must be lower-case letters, digits and _.")
        spec = dict(spec)
        unknown = sorted(set(spec) - {"dir", "weight"})
        if unknown or not spec.get("dir"):
            raise SourcesError(f"data.sources.{name} must be dict(dir=FOLDER, weight=W), got {spec!r}.")
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise SourcesError(f"data.sources.{name}.weight must be a number, got {weight!r}.")
        if not (math.isfinite(weight) and weight > 0):
            raise SourcesError(f"data.sources.{name}.weight must be positive and finite, got {weight}.")
        out.append(Source(name, str(spec["dir"]), float(weight)))
    total = sum(s.weight for s in out)
    return [dataclasses.replace(s, weight=s.weight / total) for s in out]


def is_mixture(config: Any) -> bool:
    """Whether the config trains on `data.sources` (rows carry a `source` index) rather than one folder."""
    return bool(config.data.get("sources"))
