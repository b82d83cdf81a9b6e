"""User-facing errors: one line, what went wrong, and what to do; mapped to exit codes."""
from __future__ import annotations

import argparse
import signal


def first_line(error: BaseException, limit: int | None = 160) -> str:
    """The first line of an exception's message (its type name when empty), cut to `limit`."""
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:limit]


class UserError(Exception):
    """A problem with the user's input or environment (exit code 1); shown as one line."""

    exit_code = 1


class UsageError(UserError):
    """Invalid command-line usage (exit code 2)."""

    exit_code = 2


class DataError(UserError):
    """A dataset that cannot be read as asked (no layout, unpaired image, label of another size or with
    an id outside its table): bad input, exit code 2 like a usage error."""

    exit_code = 2


TRAIN_HINT = "install the training requirements: pip install -r requirements-train.txt"


class MissingPackages(UserError):
    """A command needs packages of requirements-train.txt that are not installed (exit code 1)."""

    def __init__(self, command: str, missing: list[str]):
        verb = "is" if len(missing) == 1 else "are"
        super().__init__(f"{command} needs {', '.join(missing)}, which {verb} not installed; {TRAIN_HINT}")


class Interrupted(UserError):
    """Stopped by Ctrl-C or SIGTERM after cleaning up; exit code 128 + the signal (130, 143)."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one `error: ...` line (UsageError, exit 2) like every other error."""

    def error(self, message: str):
        raise UsageError(f"{message}; see `{self.prog} --help`")


class Renamed(argparse.Action):
    """A flag's old spelling, kept only to say what to use instead: a one-line usage error (exit 2).

    `hint` is the whole message; the flag takes at most one value, or none with nargs=0. It sets
    nothing, and `--help` does not list it.
    """

    def __init__(self, option_strings, dest, hint: str, nargs="?", **kwargs):
        super().__init__(option_strings, argparse.SUPPRESS, nargs=nargs, default=argparse.SUPPRESS,
                         help=argparse.SUPPRESS, **kwargs)
        self.hint = hint

    def __call__(self, parser, namespace, values, option_string=None):
        raise UsageError(self.hint)


def check_at_least(option: str, value: int | None, low: int) -> None:
    """A usage error unless `value` (when given) is at least `low`."""
    if value is not None and value < low:
        raise UsageError(f"{option} must be {low} or more, got {value}")
