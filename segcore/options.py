"""argparse type shared by the command lines that pass options to dataset readers."""

import argparse
import ast


def key_value(text):
    """`--option KEY=VALUE` -> (key, Python literal or plain string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"--option expects KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a plain string
