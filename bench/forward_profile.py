"""Where the time of one generator forward goes on this machine: a jax.profiler trace, by kind of work.

    python -m bench.forward_profile [--configs small,large] [--batch 2] [--calls 3] [--dtype float32]

Traces `--calls` calls of the jitted network (the config's window; batch 2 is both CFG branches) and gives
each XLA op of the trace the kind of work its compiled HLO instruction does, read from the instruction
(a fusion: from the operations inside it):

  modulation     the adaLN projections, (tokens, width) · (width, k·width) with k = 2, 6 or 9
  qkv            the q/k/v projections, (tokens, width) · (width, 3·width)
  attention      the score and value products (batched dots) and the query-block loop on CPU
  attention out  attention's output projection, (tokens, width) · (width, width)
  mlp            the MLPs' two projections
  other dots     everything else with a dot: input and output projections, condition embeddings
  convolution    the sync upsampler's transposed convolution
  softmax        fusions with an exponential (attention's softmax)
  norms          fusions with a reciprocal square root (LayerNorm statistics, q/k RMS norms)
  layout         copies and transposes
  elementwise    the other fusions: adaLN's scale and shift, gates, RoPE, GELU, residual adds

and prints, per kind, milliseconds of op time per call, its share and, for the matmuls, GFLOP per call
and GFLOP per second of op time. Op time sums the XLA CPU threads: on 2 cores it is about twice the wall
time, and a rate per op-second is about one thread's.
Writes bench/results/forward_profile.json.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import importlib
import json
import math
import re
import tempfile
import time

import jax

from bench.generator_forward import network
from salsa.io import write_json

KINDS = (
    "modulation",
    "qkv",
    "attention",
    "attention out",
    "mlp",
    "other dots",
    "convolution",
    "softmax",
    "norms",
    "layout",
    "elementwise",
)
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\S+) (\w[\w\-]*)\(")
_SHAPE = re.compile(r"\w+\[([\d,]*)\]")


def _dims(shape: str) -> list[int]:
    m = _SHAPE.search(shape)
    return [int(d) for d in m.group(1).split(",") if d] if m else []


def parse_hlo(text: str) -> tuple[dict[str, list[str]], dict[str, tuple[str, str, str]]]:
    """(instruction lines of each computation, {instruction: (computation, opcode, line)})."""
    computations: dict[str, list[str]] = {}
    where: dict[str, tuple[str, str, str]] = {}
    current = None
    for line in text.splitlines():
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if head and not line.startswith(" "):
            current = head.group(1)
            computations[current] = []
            continue
        m = _INSTRUCTION.match(line)
        if m and current is not None:
            computations[current].append(line)
            where[m.group(1)] = (current, m.group(3), line)
    return computations, where


def _called(line: str) -> list[str]:
    return re.findall(r"(?:calls|to_apply|body|condition)=%?([\w.\-]+)", line)


def _all_lines(name: str, computations: dict[str, list[str]], seen: set[str] | None = None) -> list[str]:
    """Every instruction line of computation `name` and of the computations it calls."""
    seen = set() if seen is None else seen
    if name in seen or name not in computations:
        return []
    seen.add(name)
    lines = list(computations[name])
    for line in computations[name]:
        for callee in _called(line):
            lines += _all_lines(callee, computations, seen)
    return lines


def _operands(line: str) -> list[str]:
    """The operand names of an instruction line."""
    m = re.search(r"= \S+ [\w\-]+\(([^)]*)\)", line)
    return re.findall(r"%([\w.\-]+)", m.group(1)) if m else []


def _dot_flops(line: str, where) -> float:
    """2 · output elements · contracted size of one dot instruction line."""
    out = _dims(line.split("=", 1)[1])
    lhs = _operands(line)[0]
    lhs_dims = _dims(where[lhs][2].split("=", 1)[1]) if lhs in where else []
    contracting = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line)
    k = math.prod(lhs_dims[int(i)] for i in contracting.group(1).split(",") if i) if contracting else 0
    return 2.0 * math.prod(out) * k


def _weight(name: str, where, depth: int = 4) -> str | None:
    """The name of the parameter (a kernel, e.g. st__joint___0___mod_a____proj____kernel___value) that reaches
    instruction `name` through at most `depth` copies, transposes, bitcasts or one-input fusions."""
    if name not in where or depth < 0:
        return None
    _, opcode, line = where[name]
    if opcode == "parameter":  # named after its path: st__joint___0___mod_a____proj____kernel___value
        return name if "kernel" in name else None
    operands = _operands(line)
    # Through layout changes of one array only: a fusion of several inputs is another op's output.
    if opcode not in ("copy", "transpose", "bitcast", "fusion", "reshape") or len(operands) != 1:
        return None
    return _weight(operands[0], where, depth - 1)


def _kind_of_weight(name: str) -> str:
    words = set(re.split(r"_+", name))
    for kind, word in (("modulation", "mod"), ("qkv", "qkv"), ("attention out", "out")):
        if word in words:
            return kind
    if "mlp" in words and not words & {"text", "pooled", "embed"}:  # not the condition embeddings'
        return "mlp"
    return "convolution" if "deconv" in words else "other dots"


def classify(name: str, where, computations) -> tuple[str, float]:
    """(kind, matmul FLOPs) of the entry instruction `name` (see the module docstring)."""
    if name not in where:
        return "elementwise", 0.0
    _, opcode, line = where[name]
    lines = [line] + [x for c in _called(line) for x in _all_lines(c, computations)]
    dots = [x for x in lines if re.search(r"= \S+ dot\(", x)]
    if opcode == "while":  # attention's query blocks on CPU (their dots are in the body)
        return "attention", sum(_dot_flops(x, where) for x in dots)
    if dots:
        flops = sum(_dot_flops(x, where) for x in dots)
        weights = [w for operand in _operands(line) if (w := _weight(operand, where))]
        if weights:
            return _kind_of_weight(weights[0]), flops
        if any("lhs_batch_dims" in x for x in dots):
            return "attention", flops
        return "other dots", flops
    if any(" convolution(" in x for x in lines):
        return "convolution", 0.0
    if any(" exponential(" in x for x in lines):
        return "softmax", 0.0
    if any(" rsqrt(" in x for x in lines):
        return "norms", 0.0
    if opcode in ("copy", "transpose") or all(
        re.search(r" (copy|transpose|bitcast|parameter)\(", x) for x in lines
    ):
        return "layout", 0.0
    return "elementwise", 0.0


def profile(config, batch: int, calls: int) -> dict:
    forward, state, x = network(config, batch)
    compiled = forward.lower(state, x).compile()
    computations, where = parse_hlo(compiled.as_text())
    jax.block_until_ready(forward(state, x))
    start = time.perf_counter()
    jax.block_until_ready(forward(state, x))
    wall = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(calls):
                jax.block_until_ready(forward(state, x))
        (path,) = glob.glob(f"{trace_dir}/**/*perfetto_trace.json.gz", recursive=True)
        with gzip.open(path) as fh:
            events = json.load(fh)
    events = events["traceEvents"] if isinstance(events, dict) else events
    # Entry ops only: a loop's event (attention's query blocks) spans the ops of its body.
    entry = _entry(computations)
    kinds = {name: classify(name, where, computations) for name, (c, _, _) in where.items() if c == entry}
    us = collections.Counter()
    flops = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") in kinds:
            us[kinds[e["name"]][0]] += e.get("dur", 0)
    for kind, fl in kinds.values():
        flops[kind] += fl
    total = sum(us.values())
    rows = []
    for kind in KINDS:
        ms = us[kind] / calls / 1e3
        gflop = flops[kind] / 1e9
        rows.append(
            dict(
                kind=kind,
                ms_per_call=ms,
                share=us[kind] / total if total else 0.0,
                gflop_per_call=gflop,
                gflop_per_op_s=gflop / (ms / 1e3) if ms and gflop else None,
            )
        )
    return dict(window_s=config.window_s, wall_s_per_call=wall, op_ms_per_call=total / calls / 1e3, rows=rows)


def _entry(computations: dict[str, list[str]]) -> str:
    return next(reversed(computations))  # ENTRY is printed last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="small,large")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch", type=int, default=2, help="rows per call (2: both CFG branches)")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--out", default="bench/results/forward_profile.json")
    args = parser.parse_args()
    results = {}
    for name in args.configs.split(","):
        config = importlib.import_module(f"configs.{name}").get_config()
        config.model.dtype = args.dtype
        config.model.remat, config.model.remat_long = "none", ""
        results[name] = profile(config, args.batch, args.calls)
    print(f"device: {jax.devices()[0].device_kind}, dtype {args.dtype}, batch {args.batch}")
    print(f"{'config':>6} {'kind':>13} {'ms/call':>9} {'share':>6} {'GFLOP':>8} {'GFLOP/op-s':>10}")
    for name, r in results.items():
        for row in r["rows"]:
            rate = "" if row["gflop_per_op_s"] is None else f"{row['gflop_per_op_s']:.1f}"
            gflop = f"{row['gflop_per_call']:.1f}" if row["gflop_per_call"] else ""
            print(
                f"{name:>6} {row['kind']:>13} {row['ms_per_call']:>9.1f} {row['share']:>6.1%} "
                f"{gflop:>8} {rate:>10}"
            )
        print(
            f"{name:>6} {'op time':>13} {r['op_ms_per_call']:>9.1f}   (wall {r['wall_s_per_call']:.2f} s, "
            f"{r['window_s']:g} s window)"
        )
    result = dict(device=jax.devices()[0].device_kind, dtype=args.dtype, batch=args.batch, configs=results)
    write_json(args.out, result, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
