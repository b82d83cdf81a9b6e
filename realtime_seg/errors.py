"""User-facing errors: one line, what went wrong, and what to do; mapped to exit codes."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or environment (exit code 1); shown as one line."""

    exit_code = 1


class UsageError(UserError):
    """Invalid command-line usage (exit code 2)."""

    exit_code = 2
