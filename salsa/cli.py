"""The one way every `python -m salsa...` and `python -m data_pipelines...` command ends.

A `UserError` (salsa/errors.py) is printed as one line, `error: <message>`, on stderr, and the command
exits 2; success exits 0; anything else is a bug and keeps its traceback. argparse commands call
`run(main)`; absl commands (those that take `--config=`) call `run_absl(main)`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from salsa.errors import UserError


def report(error: UserError) -> int:
    """Prints `error` as one line on stderr; returns the exit code 2."""
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    return 2


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Calls `main(argv)`; a UserError becomes one line and exit code 2. Returns the exit code."""
    try:
        code = main(argv)
    except UserError as e:
        return report(e)
    return 0 if code is None else code


def run_absl(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)` with the same convention: a UserError is one line and exit code 2."""
    from absl import app

    def wrapped(argv: list[str]) -> None:
        try:
            main(argv)
        except UserError as e:
            sys.exit(report(e))

    app.run(wrapped)
