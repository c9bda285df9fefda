"""The exit status every command line of the package shares.

A bad input (a `SegmentationError`, or an in-graph data check's `OpError`) is one
line "PROG: error: ..." on stderr and exit status 2; success is 0. Its own module
so that `segcore.evaluate` and `segcore.cli` both use it without importing each other.
"""

import sys

import tensorflow as tf

from segcore.data.images import data_error_from
from segcore.errors import SegmentationError


def exit_status(prog, action):
    """`action()`'s exit status, bad input turned into one line on stderr and status 2."""
    try:
        return action()
    except SegmentationError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except tf.errors.OpError as error:
        print(f"{prog}: error: {data_error_from(error)}", file=sys.stderr)
        return 2
