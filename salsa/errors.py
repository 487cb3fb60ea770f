"""The one family of errors a user can cause: a bad flag, a missing file, a checkpoint that does not fit.

Every user-facing error derives from `UserError`; `salsa.cli.run` prints it as one line and exits 2.
Anything else that escapes is a bug in salsa and keeps its traceback. The message is one sentence that
names the bad input and what is accepted.
"""

from __future__ import annotations


class UserError(ValueError):
    """A user's input cannot be used as given. Command lines print it as one line and exit 2."""
