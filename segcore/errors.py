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


def check_choice(argument, value, choices):
    """ConfigError naming `argument` and its choices unless `value` is one of them."""
    if value not in choices:
        raise ConfigError(f"{argument} must be one of {', '.join(choices)}; got {value!r}")


def check_positive_int(argument, value):
    """ConfigError naming `argument` unless `value` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{argument} must be a positive integer, got {value!r}")
