"""Stages of a pipeline side by side (salsa/training/stages.py, config.parallel_stages): which stages
can run at once (`waves`), and the second processes that run them.

Each process is spawned (a fresh interpreter: JAX is not fork-safe), takes the wave's next untaken stage
whenever it is free (`Claims`), runs it through the runner's own function (`run_one(stage, workdir,
label)`: done.json, partial.json and the header lines as in the first process) and logs to the same
stderr. It dies with the pipeline's process
(PR_SET_PDEATHSIG: a `kill -9` of the command takes it along) and a SIGTERM interrupts its stage as
Ctrl-C does (partial.json written; the stage resumes from its checkpoints on the next run).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import signal
import sys
from collections.abc import Sequence

from salsa import compilation_cache, numba_cache
from salsa.training.setup import BadInput


def parallel(config) -> int:
    """config.parallel_stages (default 1): how many stages of a pipeline may run at once."""
    n = config.get("parallel_stages", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise BadInput(f"config.parallel_stages must be a whole number >= 1, got {n!r}.")
    return n


def waves(stages: Sequence) -> list[list]:
    """The stages grouped in order of what they wait for: a stage's wave is one past the latest wave of the
    given stages it comes after (Stage.after); each wave keeps the given order."""
    level: dict[str, int] = {}
    for stage in stages:
        level[stage.name] = 1 + max((level[n] for n in stage.after if n in level), default=-1)
    return [[s for s in stages if level[s.name] == k] for k in range(max(level.values(), default=-1) + 1)]


class StageFailed(RuntimeError):
    """A stage run in a second process ended without finishing."""


class Claims:
    """Which of a wave's n stages are taken, shared by the processes that run them: each process takes the
    next untaken stage (`take`) when it is free, so no process idles while a stage waits behind another
    (the tiny pipeline's first wave: SigLIP runs after the VAE, beside the longer sync stage). Passed to a
    spawned process when it starts."""

    def __init__(self, n: int, taken: int = 0):
        self.n = n
        self._next = multiprocessing.get_context("spawn").Value("i", taken)

    def take(self) -> int | None:
        """The index of the next untaken stage, now taken; None when all are."""
        with self._next.get_lock():
            k = self._next.value
            if k >= self.n:
                return None
            self._next.value = k + 1
            return k


def start(run_one, jobs: dict[int, tuple], claims: Claims, workdir: str) -> multiprocessing.Process:
    """A process running the (stage, label) pairs of `jobs` ({index: pair}) that it takes from `claims`,
    one at a time, until none is left or one fails; each stage's `run` must pickle."""
    numba_cache.warm()  # before any process beside this one compiles librosa's gufuncs (salsa.numba_cache)
    for stage, _ in jobs.values():
        try:
            pickle.dumps(stage)
        except Exception as e:
            raise TypeError(f"stage {stage.name!r} cannot run in a second process: {e}") from e
    process = multiprocessing.get_context("spawn").Process(
        target=_child, args=(run_one, jobs, claims, workdir), name="+".join(s.name for s, _ in jobs.values())
    )
    process.start()
    return process


def stop(children: list[multiprocessing.Process], interrupted: bool) -> None:
    """Ends the processes when the pipeline's own stage did not finish: after up to 30 s each to finish
    their own Ctrl-C (the terminal sends it to all of them) when `interrupted`, else at once (SIGTERM)."""
    for process in children:
        process.join(timeout=30 if interrupted else 0)
        if process.is_alive():
            process.terminate()
        process.join()


def _child(run_one, jobs: dict[int, tuple], claims: Claims, workdir: str) -> None:
    from absl import flags
    from absl import logging as absl_logging

    from salsa.training.command import QuietOrbax

    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    flags.FLAGS.mark_as_parsed()
    absl_logging.use_absl_handler()  # the root logger's handler and level, as absl's app.run sets them
    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logging.get_absl_handler().addFilter(QuietOrbax())
    compilation_cache.enable()  # as the pipeline's own process (salsa.train)
    try:
        while (k := claims.take()) is not None:  # the pipeline gives unfinished stages only
            stage, label = jobs[k]
            run_one(stage, workdir, label, logging.info)
    except KeyboardInterrupt:
        sys.exit(130)
