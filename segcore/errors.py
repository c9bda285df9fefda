"""Errors that carry a one-line message for the user.

Every bad input (a file, an argument, a dataset) is reported with one of these;
the command-line entry points print the message and exit with a non-zero status
instead of showing a stack trace.
"""


class SegmentationError(Exception):
    """Base class: the message names the file or argument and what was expected."""


class DataError(SegmentationError):
    """A dataset file or directory is missing, unreadable or inconsistent."""


class ConfigError(SegmentationError):
    """An argument, preset or option is unknown or inconsistent."""
