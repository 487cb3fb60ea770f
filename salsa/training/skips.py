"""Counting the steps the train step skipped (non-finite inputs, loss or gradients; salsa.training.step)
and stopping a run that only skips.

The loop reads each step's `skipped` and `bad_inputs` flags one step late (while the next step runs), so
counting costs no wait. Every skipped step is logged as one warning line with its step number; the logged
metrics carry `skipped`, the number of steps skipped since the previous logged step. After
config.max_consecutive_skips skips in a row training stops with TooManySkips: a model that has diverged,
or data that is broken beyond one batch, will not mend by skipping on.

The counts belong to the run, not the process: they are saved with each checkpoint (counts()) and a
resumed run starts from the checkpoint's (SkipCounter(limit, counts)), so the total and the run of
consecutive skips go on across a kill and restart as if there had been none.
"""

from __future__ import annotations

import logging

from salsa.errors import UserError


class TooManySkips(UserError):
    """Training met config.max_consecutive_skips non-finite steps in a row."""


class SkipCounter:
    def __init__(self, limit: int, counts: dict | None = None, log=logging.warning):
        """`counts`: those of the checkpoint the run resumes from (counts()); None for a fresh run."""
        if limit < 1:
            raise UserError(f"config.max_consecutive_skips must be >= 1, got {limit}.")
        self.limit = limit
        counts = counts or {}
        self.total = int(counts.get("total", 0))  # skipped steps since the run began, across restarts
        self.in_a_row = int(counts.get("in_a_row", 0))
        self._since_log = int(counts.get("since_log", 0))
        self._log = log

    def counts(self) -> dict[str, int]:
        """The counts to save with a checkpoint (JSON-able), for SkipCounter(limit, counts) on resume."""
        return {"total": self.total, "in_a_row": self.in_a_row, "since_log": self._since_log}

    def observe(self, step: int, skipped: bool, bad_inputs: bool) -> None:
        """Counts step `step` (1-based: the step just taken); raises TooManySkips at the limit."""
        if not skipped:
            self.in_a_row = 0
            return
        self.total += 1
        self.in_a_row += 1
        self._since_log += 1
        why = "the batch holds NaN or Inf" if bad_inputs else "the loss or gradients are not finite"
        self._log(
            f"step {step} skipped: {why}; params, EMA and optimizer state kept "
            f"({self.in_a_row} in a row, {self.total} in this run)"
        )
        if self.in_a_row >= self.limit:
            raise TooManySkips(
                f"training stopped at step {step}: {self.in_a_row} steps in a row were skipped because "
                f"their inputs, loss or gradients were not finite (config.max_consecutive_skips = "
                f"{self.limit}); check the training data and lower the learning rate."
            )

    def since_last_log(self) -> int:
        """Skipped steps since the previous call (for the logged `skipped` metric)."""
        n, self._since_log = self._since_log, 0
        return n
