"""Errors the CLI turns into one line and an exit code."""
from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, flags, data): exit code 2, one line, no traceback."""


class ConfigError(UserError):
    """A config key or value that cannot be used; the message names the key path."""


class DataError(UserError):
    """A dataset that cannot be read as configured; the message names the file or column."""
