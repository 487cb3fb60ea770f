"""The one way every `python -m salsa...` and `python -m data_pipelines...` command ends.

A `UserError` (salsa/errors.py) is printed as one line, `error: <message>`, on stderr, and the command
exits 2; so is an OSError that says an output could not be stored (disk full, quota, file size limit,
read-only file system: `out_of_space`), whichever writer met it; success exits 0; anything else is a
bug and keeps its traceback. argparse commands call
`run(main)`; absl commands (those that take `--config=`) call `run_absl(main)`.

argparse commands build their parser with `Parser` (a flag argparse refuses is a UserError too, not a
usage block) and check numbers at the flag layer with the types below (`finite`, `positive`, ...), so
`--cfg nan` or `--steps -1` is refused before any work starts. `run_absl` does the same for absl flags
and ml_collections configs: an unknown override, a value of the wrong type or a config file that does
not load is one line and exit 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence

from salsa import io
from salsa.errors import UserError


def report(error: UserError) -> int:
    """Prints `error` as one line on stderr; returns the exit code 2."""
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    return 2


def out_of_space(error: OSError) -> UserError | None:
    """The one line for an OSError that means an output could not be stored (disk full, quota, file
    size limit, read-only file system), or None for any other OSError (a bug keeps its traceback)."""
    if error.errno not in io.OUT_OF_SPACE:
        return None
    return io.write_error(error.filename or "an output", error)


def run(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Calls `main(argv)`; a UserError, or an OSError saying the disk is full (`out_of_space`), becomes
    one line and exit code 2. Returns the exit code."""
    try:
        code = main(argv)
    except UserError as e:
        return report(e)
    except OSError as e:
        if (line := out_of_space(e)) is None:
            raise
        return report(line)
    return 0 if code is None else code


class Parser(argparse.ArgumentParser):
    """argparse's parser whose refusals (unknown flag, missing value, bad type) raise a UserError."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message}.")


def _number(kind: type, text: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a{'n integer' if kind is int else ' number'}"
        ) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def finite(text: str) -> float:
    """An argparse type: any finite float (nan and inf are refused)."""
    return _number(float, text)


def _at_least(kind: type, bound: float, strict: bool, doc: str):
    """An argparse type: a finite `kind` above `bound` (strictly when `strict`)."""

    def parse(text: str):
        value = _number(kind, text)
        if value < bound or (strict and value == bound):
            raise argparse.ArgumentTypeError(f"{text!r} is not {'>' if strict else '>='} {bound}")
        return value

    parse.__doc__ = doc
    return parse


positive = _at_least(float, 0, True, "An argparse type: a finite float > 0.")
non_negative = _at_least(float, 0, False, "An argparse type: a finite float >= 0.")
positive_int = _at_least(int, 1, False, "An argparse type: an integer >= 1.")
non_negative_int = _at_least(int, 0, False, "An argparse type: an integer >= 0.")


def _flag_error(error: Exception) -> UserError:
    """A flag or config file absl or ml_collections could not read, as one line (no traceback text)."""
    if isinstance(error, (KeyError, AttributeError)):
        key = str(error).strip("\"'")
        return UserError(
            f"the config has no key {key!r}; an override --config.KEY=VALUE must name one it has."
        )
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if any(line.startswith("Traceback") for line in lines):
        lines = lines[-1:]  # config_flags folds a config's traceback into the message: keep its last line
    return UserError(" ".join(lines) or type(error).__name__)


def _parse_absl_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, where every refusal (and a config that does not load) is a UserError."""
    from absl import flags
    from ml_collections.config_flags import config_flags

    try:
        rest = flags.FLAGS(argv)
    except (flags.Error, KeyError, AttributeError, TypeError, ValueError, OSError, SyntaxError) as e:
        sys.exit(report(_flag_error(e)))
    for name in flags.FLAGS:
        flag = flags.FLAGS[name]
        if isinstance(flag.parser, config_flags.ConfigFileFlagParser) and flag.present:
            path = flag.config_filename.split(":", 1)[0]
            if not os.path.isfile(path):
                sys.exit(report(UserError(f"--{name}={flag.config_filename}: no such config file.")))
            try:
                flag.value.keys()  # a config file that failed to load raises here, not at parse time
            except OSError as e:
                sys.exit(report(UserError(f"--{name}={flag.config_filename}: {_flag_error(e)}")))
    return rest


def run_absl(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)` with the same convention: a UserError is one line and exit code 2."""
    from absl import app

    def wrapped(argv: list[str]) -> None:
        try:
            main(argv)
        except UserError as e:
            sys.exit(report(e))
        except OSError as e:
            if (line := out_of_space(e)) is None:
                raise
            sys.exit(report(line))

    app.run(wrapped, flags_parser=_parse_absl_flags)
