"""evaluate_field(): pair the clips, embed them in batches (resuming from OUT/cache), score, report.

Which embedders run (`plan`): by default every one whose bundle is under --weights (DIR/NAME/config.json),
the others reported as missing with the file they would be converted from; none at all is an error.
`metrics` names embedders explicitly (passt, panns, vggish, swsd, ...): then a missing bundle is an
error. An embedder that needs more than --seconds of each clip (Synchformer: its 4.8 s window) is not
run and its columns say why, or, named in `metrics`, is an error. Reading failures are per
clip: a pair with a clip that is short, silent (no audio stream) or undecodable is excluded and listed
with the reason; a pair with no usable video on either side is excluded from IB and DeSync alone, and listed
with them; clips that pair with nothing are listed; nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from salsa import bundle, io
from salsa.errors import UserError
from salsa.evaluation.field import inputs, report, scoring
from salsa.evaluation.field.cache import EmbeddingCache
from salsa.evaluation.field.embedders import COLUMN_ORDER, REGISTRY, Embedder, Loaded

MISSING, NOT_REQUESTED, TOO_SHORT = "missing weights", "not requested", "not run (--seconds too short)"


@dataclasses.dataclass
class ColumnResult:
    name: str
    embedder: str  # registry name
    better: str
    status: str  # "ok", "undefined", MISSING, NOT_REQUESTED, TOO_SHORT
    value: float | None = None
    std: float | None = None
    note: str = ""
    per_clip: np.ndarray | None = None  # NaN for a pair excluded from this column alone
    excluded: dict[str, str] = dataclasses.field(default_factory=dict)  # pair name -> why (IB: no video)
    details: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # more per-pair values (CSV)


@dataclasses.dataclass
class FieldResult:
    real: str
    generated: str
    seconds: float
    columns: list[ColumnResult]
    protocols: dict[str, str]  # embedder title -> how it reads and what the columns take
    weights: dict[str, dict]
    pairing: inputs.Pairing
    scored: list[inputs.Pair]
    excluded: dict[str, str]  # pair name -> why
    embedded: int  # clips embedded by this run (not from the cache)
    cached: int  # clips whose every embedding came from the cache
    elapsed_s: float
    device: str


def plan(
    weights: str | None, metrics: Sequence[str] | None, seconds: float = 8.0
) -> tuple[list[tuple[Embedder, str | None]], dict]:
    """(embedders to run with their bundle folder, {embedder name: why not run}); UserError as above."""
    if weights is not None and not os.path.isdir(weights):
        raise UserError(f"--weights {weights}: no such folder; it holds converted bundles (docs/metrics.md).")
    if metrics is not None:
        unknown = [m for m in metrics if m not in REGISTRY]
        if unknown:
            raise UserError(f"--metrics {','.join(unknown)}: unknown; choose from {', '.join(REGISTRY)}.")
    chosen, skipped = [], {}
    for e in REGISTRY.values():
        requested = metrics is None or e.name in metrics
        path = os.path.join(weights, e.name) if weights is not None and e.needs_weights else None
        if not requested:
            skipped[e.name] = NOT_REQUESTED
        elif e.needs_weights and (path is None or not os.path.isfile(os.path.join(path, bundle.CONFIG))):
            where = os.path.join(path or os.path.join("--weights", e.name), bundle.CONFIG)
            if metrics is not None:
                raise UserError(f"--metrics {e.name}: no bundle, expected {where} (from {e.source}).")
            skipped[e.name] = f"{MISSING}: expected {where} (from {e.source})"
        elif seconds < e.min_seconds:
            why = f"--seconds {seconds:g} is shorter than the {e.min_seconds:g} s {e.title} reads"
            if metrics is not None:
                raise UserError(f"--metrics {e.name}: {why}; give --seconds {e.min_seconds:g} or more.")
            skipped[e.name] = f"{TOO_SHORT}: {why}"
        else:
            chosen.append((e, path))
    if metrics is None and not any(e.needs_weights for e, _ in chosen):
        short = [n for n, why in skipped.items() if why.startswith(TOO_SHORT)]
        if short:
            raise UserError(
                f"--seconds {seconds:g}: every bundle under --weights {weights} needs more "
                f"({'; '.join(skipped[n].split(': ', 1)[1] for n in short)})."
            )
        expected = ", ".join(
            os.path.join(weights or "--weights", e.name) for e in REGISTRY.values() if e.needs_weights
        )
        raise UserError(
            f"--weights {weights}: no bundle found; expected at least one of {expected} "
            "(python -m salsa.convert passt|panns|vggish|imagebind|synchformer, docs/metrics.md)."
        )
    return chosen, skipped


class _Outputs(Sequence):
    """The cached outputs of clips, read back from the cache on access (SWSD frames of thousands of clips
    would not fit in memory)."""

    def __init__(self, cache: EmbeddingCache, paths: list[str]):
        self.cache, self.paths = cache, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        got = self.cache.get(self.paths[i])
        if got is None:
            raise RuntimeError(f"{self.paths[i]}: an embedding just written cannot be read back.")
        return got


def _padded(inputs: list, batch: int):
    """The inputs stacked and zero-padded to `batch` rows (a reader's dict of arrays: each key so)."""
    if isinstance(inputs[0], dict):
        return {k: _padded([x[k] for x in inputs], batch) for k in inputs[0]}
    x = np.stack(inputs)
    return np.concatenate([x, np.zeros((batch - len(inputs), *x.shape[1:]), x.dtype)])


def _embed(loaded: Loaded, items: list[tuple[str, np.ndarray]], batch: int, cache: EmbeddingCache) -> None:
    """Runs `loaded` over (cache path, input) items in batches padded to `batch` (one compilation)."""
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        out = loaded.run(_padded([a for _, a in chunk], batch))
        for i, (path, _) in enumerate(chunk):
            cache.put(path, {k: np.asarray(v[i]) for k, v in out.items()})


def evaluate_field(
    real: str,
    generated: str,
    weights: str | None,
    out: str,
    *,
    metrics: Sequence[str] | None = None,
    seconds: float = 8.0,
    batch: int = 8,
    progress: Callable[[int], object] | None = None,
) -> FieldResult:
    """Scores GEN against REAL (see the module doc); writes OUT/metrics.md, metrics.json, per_clip.csv."""
    io.check_creatable(out, "--out", folder=True)
    pairing = inputs.pair_folders(real, generated)
    chosen, skipped = plan(weights, metrics, seconds)
    loaded = {e.name: e.load(path, seconds) for e, path in chosen}
    cache = EmbeddingCache(os.path.join(out, "cache"))
    hashes: dict[str, str] = {}
    where: dict[tuple[str, str], str] = {}  # (embedder, clip path) -> cache file
    excluded: dict[str, str] = {}
    fresh: set[str] = set()  # clips embedded by this run
    cached, start = 0, time.perf_counter()
    bar = progress(2 * len(pairing.pairs)) if progress is not None else None
    for g in range(0, len(pairing.pairs), batch):
        todo: dict[str, dict[str, np.ndarray]] = {name: {} for name in loaded}
        for pair in pairing.pairs[g : g + batch]:
            reasons, queued, reads = [], [], {}
            for side, path in (("real", pair.real), ("generated", pair.generated)):
                if path not in hashes:
                    hashes[path] = io.file_sha256(path)
                missing = False
                for name, lo in loaded.items():
                    cp = where[name, path] = cache.path(name, hashes[path], lo.signature, lo.reader.key())
                    if cp in todo[name] or any(cp == q[1] for q in queued):
                        missing = True  # the same content is queued already (real against itself)
                        continue
                    if cache.get(cp) is not None:  # an unreadable file is recomputed
                        continue
                    missing = True
                    try:
                        key = (lo.reader.key(), path)
                        if key not in reads:
                            reads[key] = lo.reader.read(path)
                        queued.append((name, cp, reads[key], path))
                    except inputs.Skip as s:
                        reasons.append(f"{side}: {s}")
                        break
                cached += not missing
            if reasons:
                excluded[pair.name] = "; ".join(reasons)
                continue
            for name, cp, x, path in queued:
                todo[name][cp] = x
                fresh.add(path)
        for name, items in todo.items():
            _embed(loaded[name], list(items.items()), batch, cache)
        if bar is not None:
            bar.update(2 * len(pairing.pairs[g : g + batch]))
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - start
    scored = [p for p in pairing.pairs if p.name not in excluded]
    embedded = len(fresh)
    columns = _columns(loaded, skipped, scored, where, cache)
    result = FieldResult(
        real=real,
        generated=generated,
        seconds=seconds,
        columns=sorted(columns, key=lambda c: COLUMN_ORDER.index(c.name)),
        protocols={REGISTRY[n].title: lo.protocol for n, lo in loaded.items()},
        weights={n: lo.weights for n, lo in loaded.items() if lo.weights},
        pairing=pairing,
        scored=scored,
        excluded=excluded,
        embedded=embedded,
        cached=cached,
        elapsed_s=elapsed,
        device=str(jax.devices()[0]),
    )
    report.write(out, result)
    rate = embedded / elapsed if elapsed > 0 else 0.0
    logging.info(
        "%d clips embedded in %.1f s (%.2f clips/s), %d from the cache", embedded, elapsed, rate, cached
    )
    return result


def _columns(loaded, skipped, scored, where, cache) -> list[ColumnResult]:
    columns = []
    for e in REGISTRY.values():
        for c in e.columns:
            if e.name in skipped:
                status = skipped[e.name].split(":")[0]
                columns.append(ColumnResult(c.name, e.name, c.better, status, note=skipped[e.name]))
                continue
            if not scored:
                columns.append(ColumnResult(c.name, e.name, c.better, "undefined", note="no pair was scored"))
                continue
            real = _Outputs(cache, [where[e.name, p.real] for p in scored])
            gen = _Outputs(cache, [where[e.name, p.generated] for p in scored])
            score = loaded[e.name].scorers.get(c.kind) or scoring.KINDS[c.kind]
            s = score(real, gen, c.output)
            status = "ok" if s.value is not None else "undefined"
            excluded = {scored[i].name: why for i, why in s.excluded.items()}
            columns.append(
                ColumnResult(
                    c.name, e.name, c.better, status, s.value, s.std, s.note, s.per_clip, excluded, s.details
                )
            )
    return columns
