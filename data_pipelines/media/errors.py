"""The one exception type media code raises; its message always starts with the file's name."""

from __future__ import annotations

import numpy as np

from salsa.errors import UserError


class MediaError(UserError):
    """A media file cannot be read or written as asked. Command lines print it as one line, exit 2."""


class CorruptMediaError(MediaError):
    """The file breaks off or turns to garbage midway. What could be decoded comes with the error.

    partial: the decoded part, shaped as the full result would have been.
    decoded_seconds: how much of the stream that covers.
    """

    def __init__(self, message: str, partial: np.ndarray, decoded_seconds: float):
        super().__init__(message)
        self.partial = partial
        self.decoded_seconds = decoded_seconds
