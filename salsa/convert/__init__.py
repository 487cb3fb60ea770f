"""Weight converters: `python -m salsa.convert <component> --src <downloaded weights> --out DIR`."""

from salsa.errors import UserError


class ConvertError(UserError):
    """The source checkpoint (or a flag) is not what the converter accepts; the message says what was
    expected. `python -m salsa.convert` prints it as one line and exits 2."""
