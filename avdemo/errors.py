"""The one exception type for problems a user can meet (bad files, missing data, wrong shapes)."""


class AVDemoError(Exception):
    """A user-facing error: the message says what was wrong with which input and what to do."""
