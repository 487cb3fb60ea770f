"""Preemption storm on the tiny pipeline: SIGKILL `salsa.train --config=configs/tiny.py` at random moments
in every stage, rerun the same command each time, and compare the final outputs with an uninterrupted run.

    python -m bench.preemption_storm [--minimal] [--kills=20] [--seed=0] [--workdir=DIR] [--reference=DIR]

First an uninterrupted run (WORKDIR/reference, or --reference: a finished run of the same command) gives
each stage's wall time (its stages.json). The kills aim at the stages evenly, in pipeline order (20 kills
on 7 stages: 2 or 3 each; fewer kills than stages: the first, the last and some between), each at a
moment drawn uniformly over that stage's reference time, counted from the moment the restarted command
logs the stage's start. Where a kill landed is read from the workdir afterwards (the first stage without
done.json), with any half-written file it left (a `.partial` temporary, an orbax `tmp` folder). After the
kills the command runs to the end, and then:

- every array of every .npz file of the reference (the VAE, sync and SigLIP bundles, each generator
  pipeline's params.npz, the evaluation's audio cache) must be bit-equal in the stormed run, and every
  record shard of the extraction (.array_record) byte-equal;
- eval/metrics.json must be equal (paths compared relative to each run's workdir), except its two
  wall-clock timings (TIMING_KEYS: the evaluation's seconds, the sampling seconds per clip), which
  measure the machine and its load rather than the model.

Each restart pays process start-up and compilation again; set JAX_COMPILATION_CACHE_DIR to let restarts
reuse compiled steps (the runs inherit the environment). Prints one table (kills landed per stage,
survived / total, wall-time overhead) and records it in bench/results/preemption_storm.json. Exit
status 1 when the storm broke something.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from bench import tiny_minimal
from salsa.io import write_json
from salsa.training import stages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results", "preemption_storm.json")
# metrics.json keys that hold wall-clock measurements (salsa.evaluation: the evaluation's duration and
# the sampling time per clip): they measure the machine and its load, not the model; compared for
# presence only.
TIMING_KEYS = ("seconds", "sampling_seconds_per_clip")
RECORD_FILES = (".array_record", ".rec")  # extraction's record shards and per-clip progress
CACHE = ".cache"  # the evaluation's audio cache (salsa.evaluation.cache)


def command(workdir: str, minimal: bool) -> list[str]:
    flags = tiny_minimal.flags() if minimal else []
    return [sys.executable, "-m", "salsa.train", "--config=configs/tiny.py", f"--workdir={workdir}", *flags]


def child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def run_to_end(workdir: str, minimal: bool, log) -> float:
    """Runs the command uninterrupted; its wall time. RuntimeError with the log's tail if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(command(workdir, minimal), cwd=REPO, env=child_env(), stdout=log, stderr=log)
    if proc.returncode != 0:
        raise RuntimeError(f"the command on {workdir} exited {proc.returncode}; see {log.name}")
    return time.perf_counter() - start


def current_stage(workdir: str, names: list[str]) -> str:
    """The stage a kill landed in: the first one without done.json ("finished" when all have one)."""
    return next((n for n in names if not stages.is_done(workdir, n)), "finished")


def leftovers(workdir: str) -> list[str]:
    """Half-written files and folders in workdir: atomic-write temporaries (salsa.io: hidden `.NAME.*`
    siblings, `.partial` files) and orbax `tmp` checkpoint folders."""
    out = []
    for root, dirs, files in os.walk(workdir):
        for name in dirs + files:
            hidden = name.startswith(".") and name != CACHE
            if hidden or ".partial" in name or "tmp" in name.lower():
                out.append(os.path.relpath(os.path.join(root, name), workdir))
    return sorted(out)


def _started(log_path: str, offset: int, names: list[str]) -> str | None:
    """The last stage whose start line the current process has logged (after byte `offset`)."""
    with open(log_path, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    last = None
    for line in text.splitlines():
        if "==== [" in line and "->" in line:
            name = line.split("==== [", 1)[1].split("] ", 1)[-1].split(" ->", 1)[0].strip()
            if name in names:
                last = name
    return last


def kill_once(workdir, minimal, log, target, fraction, seconds, names) -> dict:
    """Starts the command, waits until it logs stage `target` (or a later one), sleeps `fraction` of
    that stage's reference time and sends SIGKILL. Returns what happened."""
    log.flush()
    offset = os.path.getsize(log.name)
    start = time.perf_counter()
    proc = subprocess.Popen(command(workdir, minimal), cwd=REPO, env=child_env(), stdout=log, stderr=log)
    deadline = None
    while proc.poll() is None:
        if deadline is None:
            stage = _started(log.name, offset, names)
            if stage is not None and names.index(stage) >= names.index(target):
                seen = time.perf_counter()
                deadline = seen + fraction * seconds[stage]
        elif time.perf_counter() >= deadline:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    rc = proc.wait()
    event = dict(
        aimed=target, wall_s=time.perf_counter() - start, returncode=rc, landed=rc == -signal.SIGKILL
    )
    event["stage"] = current_stage(workdir, names) if event["landed"] else None
    event["left_partial"] = leftovers(workdir) if event["landed"] else []
    return event


def _arrays_equal(a_path: str, b_path: str) -> list[str]:
    """Differences between two .npz files, one line each (empty when every array is bit-equal)."""
    with np.load(a_path) as a, np.load(b_path) as b:
        if sorted(a.files) != sorted(b.files):
            return [f"{a_path}: arrays {sorted(set(a.files) ^ set(b.files))} in one run only"]
        out = []
        for k in a.files:
            x, y = a[k], b[k]
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                out.append(f"{a_path}: array {k} differs")
        return out


def _npz_digest(path: str) -> str:
    h = hashlib.sha256()
    with np.load(path) as z:
        for k in sorted(z.files):
            h.update(f"{k}:{z[k].dtype}:{z[k].shape}".encode() + z[k].tobytes())
    return h.hexdigest()


def _cache_parts(folder: str) -> list[tuple[str, str]]:
    """(part, digest of its arrays) of each cached audio file: cache file names hash the checkpoint's
    path and time, so the two runs' caches are matched by content, not by name."""
    if not os.path.isdir(folder):
        return []
    names = [n for n in os.listdir(folder) if n.endswith(".npz") and ".partial" not in n]
    return sorted((n.rsplit("-", 1)[0], _npz_digest(os.path.join(folder, n))) for n in names)


def _json_diff(a, b, where: str, roots: tuple[str, str]) -> list[str]:
    """Differences between two JSON values, skipping timing keys; paths compared relative to the
    runs' workdirs (`roots`)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if sorted(a) != sorted(b):
            return [f"{where}: keys {sorted(set(a) ^ set(b))} in one run only"]
        out = []
        for k in a:
            if k not in TIMING_KEYS:
                out += _json_diff(a[k], b[k], f"{where}.{k}", roots)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: lengths {len(a)} and {len(b)}"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in _json_diff(x, y, f"{where}[{i}]", roots)]
    if isinstance(a, str) and isinstance(b, str):
        a, b = a.replace(roots[0], "WORKDIR"), b.replace(roots[1], "WORKDIR")
    return [] if a == b or (a != a and b != b) else [f"{where}: {a!r} vs {b!r}"]  # NaN equals NaN


def compare(reference: str, stormed: str) -> dict:
    """What the two workdirs' outputs differ in (see the module docstring), and what was compared."""
    diffs, arrays, shards, cached = [], 0, 0, 0
    for root, _, files in os.walk(reference):
        rel = os.path.relpath(root, reference)
        if os.path.basename(root) == CACHE:
            want, got = _cache_parts(root), _cache_parts(os.path.join(stormed, rel))
            cached += len(want)
            if want != got:
                diffs.append(f"{rel}: cached audio differs ({len(want)} vs {len(got)} parts)")
            continue
        for name in sorted(files):
            if ".partial" in name or not name.endswith((".npz", *RECORD_FILES)):
                continue
            a, b = os.path.join(root, name), os.path.join(stormed, rel, name)
            if not os.path.exists(b):
                diffs.append(f"{os.path.join(rel, name)} missing from the stormed run")
            elif name.endswith(".npz"):
                with np.load(a) as z:
                    arrays += len(z.files)
                diffs += _arrays_equal(a, b)
            else:
                shards += 1
                with open(a, "rb") as fa, open(b, "rb") as fb:
                    if fa.read() != fb.read():
                        diffs.append(f"{os.path.join(rel, name)} differs")
    metrics = os.path.join("eval", "metrics.json")
    if os.path.exists(os.path.join(reference, metrics)):
        with open(os.path.join(reference, metrics)) as fa, open(os.path.join(stormed, metrics)) as fb:
            diffs += _json_diff(json.load(fa), json.load(fb), "metrics.json", (reference, stormed))
    return dict(equal=not diffs, differences=diffs, arrays=arrays, record_files=shards, cached_parts=cached)


class ReferenceTimes:
    """Each stage's wall time in the reference run (its done.json), waiting for a stage the reference
    has not finished yet: so a reference still running can time the storm (both run at once)."""

    def __init__(self, reference: str):
        self.reference, self.known = reference, {}

    def __getitem__(self, name: str) -> float:
        while name not in self.known:
            try:
                with open(os.path.join(stages.folder(self.reference, name), stages.DONE)) as f:
                    self.known[name] = float(json.load(f)["seconds"])
            except (OSError, ValueError, KeyError):
                time.sleep(1.0)
        return self.known[name]


def aim(k: int, kills: int, stages: int) -> int:
    """The stage kill k of `kills` aims at: spread evenly from the first stage to the last, in order."""
    return 0 if kills == 1 else round(k * (stages - 1) / (kills - 1))


def campaign(
    workdir: str, kills: int, seed: int, minimal: bool, reference: str | None = None, on_event=None
) -> dict:
    """The whole storm (see the module docstring); returns the result record. on_event(event) is called
    after each kill."""
    os.makedirs(workdir, exist_ok=True)
    stormed = os.path.join(workdir, "stormed")
    reference_s = None  # the reference command's wall time, start-up included, when run here
    with open(os.path.join(workdir, "reference.log"), "a") as log:
        if reference is None:
            reference = os.path.join(workdir, "reference")
            reference_s = run_to_end(reference, minimal, log)
    names = [n for n in stages.ORDER if n not in stages.OPTIONAL]  # config.run = "default"
    seconds = ReferenceTimes(reference)
    rng = random.Random(seed)
    plan = [(names[aim(k, kills, len(names))], rng.random()) for k in range(kills)]

    events, failure = [], None
    start = time.perf_counter()
    with open(os.path.join(workdir, "stormed.log"), "a") as log:
        for target, fraction in plan:
            event = kill_once(stormed, minimal, log, target, fraction, seconds, names)
            events.append(event)
            if on_event is not None:
                on_event(event)
            if event["returncode"] not in (0, -signal.SIGKILL):
                failure = f"a restart exited {event['returncode']} (aimed at {target}); see {log.name}"
                break
        if failure is None:
            try:
                run_to_end(stormed, minimal, log)
            except RuntimeError as e:
                failure = str(e)
    stormed_s = time.perf_counter() - start
    if reference_s is None:  # the stages' sum (start-up left out), waiting for a reference still running
        reference_s = sum(seconds[n] for n in names)

    seen: set[str] = set()
    for e in events:  # what each kill left half-written (earlier kills' leftovers not counted again)
        e["left_partial"], seen = sorted(set(e["left_partial"]) - seen), seen | set(e["left_partial"])
    landed = [e for e in events if e["landed"]]
    per_stage = {n: sum(e["stage"] == n for e in landed) for n in [*names, "finished"]}
    result = dict(
        minimal=minimal,
        seed=seed,
        kills=kills,
        landed=len(landed),
        per_stage=per_stage,
        left_partial=sum(bool(e["left_partial"]) for e in landed),
        reference_s=reference_s,
        stormed_s=stormed_s,
        overhead=stormed_s / reference_s,
        failure=failure,
        events=events,
        left_after=leftovers(stormed),
    )
    result.update(compare(reference, stormed) if failure is None else dict(equal=False, differences=[]))
    # A kill is survived when the next start carried on; with different outputs, none is known to be.
    before_failure = sum(1 for e in events[:-1] if e["landed"]) if failure else 0
    result["survived"] = len(landed) if result["equal"] else before_failure
    return result


def table(result: dict) -> str:
    rows = [f"{'stage':<18}{'kills landed':>13}"]
    rows += [f"{n:<18}{k:>13}" for n, k in result["per_stage"].items() if n != "finished" or k]
    rows.append(
        f"kills landed {result['landed']}/{result['kills']} ({result['left_partial']} left a half-written "
        f"file behind); survived {result['survived']}/{result['landed']}"
    )
    rows.append(
        f"outputs {'equal' if result['equal'] else 'DIFFERENT'}: {result['arrays']} arrays bit-equal, "
        f"{result['record_files']} record files byte-equal, {result['cached_parts']} cached audio parts "
        "bit-equal, metrics.json equal but for timings"
        if result["equal"]
        else "outputs DIFFERENT: " + "; ".join((result["differences"] or [result["failure"] or ""])[:5])
    )
    rows.append(
        f"wall time {result['stormed_s']:.0f} s stormed vs {result['reference_s']:.0f} s uninterrupted "
        f"(overhead x{result['overhead']:.2f})"
    )
    return "\n".join(rows)


def print_event(e: dict) -> None:
    where = f"landed in {e['stage']}" if e["landed"] else f"missed (exit {e['returncode']})"
    left = f"; left {', '.join(e['left_partial'])}" if e["left_partial"] else ""
    print(f"kill aimed at {e['aimed']}: {where} after {e['wall_s']:.0f} s{left}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=20, help="SIGKILLs to send (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--minimal", action="store_true", help="the minimal-size pipeline (bench/tiny_minimal.py)")
    p.add_argument("--workdir", default=None, help="where the runs go (default: a temporary folder)")
    p.add_argument(
        "--reference",
        default=None,
        help="an uninterrupted run of the same command, finished or still running (its stage times are "
        "waited for)",
    )
    args = p.parse_args()
    if args.kills < 1:
        p.error(f"--kills must be >= 1, got {args.kills}")
    workdir = args.workdir or tempfile.mkdtemp(prefix="salsa-storm-")
    if os.path.exists(os.path.join(workdir, "stormed")):
        p.error(f"{workdir}/stormed exists already; give a fresh --workdir")
    result = campaign(workdir, args.kills, args.seed, args.minimal, args.reference, on_event=print_event)
    print(table(result))
    write_json(RESULTS, {k: v for k, v in result.items()} | {"cpu_count": os.cpu_count(), "workdir": workdir})
    sys.exit(0 if result["equal"] else 1)


if __name__ == "__main__":
    main()
