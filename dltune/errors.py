"""Errors the CLI turns into one line and an exit code."""
from __future__ import annotations

import os
import re
import sysconfig
import traceback
from types import TracebackType

_NOT_USER_CODE = tuple(os.path.realpath(p) + os.sep for p in {os.path.dirname(__file__), sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


class UserError(Exception):
    """Bad input from the user (config, flags, data): exit code 2, one line, no traceback."""


class ConfigError(UserError):
    """A config key or value that cannot be used; the message names the key path."""


class DataError(UserError):
    """A dataset that cannot be read as configured; the message names the file or column."""


class TrainFnError(Exception):
    """A training function raised inside a worker: its exception type, message and file:line,
    carried through Ray's wrappers to the driver's one error line (exit code 1)."""

    def __init__(self, type_name: str, message: str, location: str) -> None:
        super().__init__(type_name, message, location)
        self.type_name, self.message, self.location = type_name, message, location

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" + (f" ({self.location})" if self.location else "")

    @classmethod
    def of(cls, exc: BaseException) -> TrainFnError:
        return _raised_in(str(exc)) or cls(type(exc).__name__, first_line(str(exc)), where(exc.__traceback__))


class RunFailed(Exception):
    """A command ran and failed as a whole (every trial of a search errored): exit code 1,
    the message as it stands; ``result`` keeps what was written."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text


_TRACEBACK_HEAD = "Traceback (most recent call last):"
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)')


def _raised_in(text: str) -> TrainFnError | None:
    """What a traceback's text says was raised, and where: Ray Tune passes some failures on as a
    TuneError whose whole message is the traceback of the real one."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines or lines[0].strip() != _TRACEBACK_HEAD or lines[-1].startswith(" "):
        return None
    type_name, _, message = lines[-1].partition(": ")
    frames = [m for line in lines if (m := _FRAME.match(line))]
    location = f"{_shown(frames[-1]['path'])}:{frames[-1]['line']}" if frames else ""
    return TrainFnError(type_name.rsplit(".", 1)[-1], message.strip(), location)


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def where(tb: TracebackType | None) -> str:
    """file:line of the innermost frame in the user's own code (else the innermost frame)."""
    frames = traceback.extract_tb(tb)
    if not frames:
        return ""
    own = [f for f in frames if not os.path.realpath(f.filename).startswith(_NOT_USER_CODE)]
    frame = (own or frames)[-1]
    return f"{_shown(frame.filename)}:{frame.lineno}"


def describe(exc: BaseException) -> str:
    """'Type: first line of the message (file:line)' for the CLI's one error line."""
    if isinstance(exc, (TrainFnError, RunFailed)):
        return str(exc)
    return str(TrainFnError.of(exc))


class ChildFailed(Exception):
    """A process dltune started (torchrun) failed and has already said why: exit with its code."""

    def __init__(self, returncode: int) -> None:
        super().__init__(returncode)
        self.returncode = returncode

    def __str__(self) -> str:
        return f"a child process exited with code {self.returncode}"
