"""The training state inside a Ray (Train or Tune) checkpoint, both ways.

A checkpoint directory holds either the state itself (``CHECKPOINT_FILE``) or, where the
experiment dir keeps that state already, its name relative to the experiment dir
(``POINTER_FILE``): relative, so no credential of the experiment's URI is written.

The directory is staged in the temp dir while Ray copies it to storage. A trial killed in that
window (SIGKILL, a lost node, the search's end) leaves it behind, with a copy of the model; a
process's first staged checkpoint removes those whose process is gone.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dltune import storage
from dltune.errors import UserError
from dltune.train import checkpoint

CHECKPOINT_FILE = "state.pt"
POINTER_FILE = "experiment_checkpoint.txt"
PREFIX = "dltune-ckpt-"
# An orphan is also this old: a process id seen dead may be another pid namespace's (a shared /tmp).
ORPHAN_AGE_S = 3600.0


@contextlib.contextmanager
def checkpoint_dir(state: dict[str, Any], kept_as: str | None = None) -> Iterator[str]:
    """A temporary directory to hand to ``Checkpoint.from_directory``: the name ``kept_as`` when
    given, otherwise ``state``. Ray copies it to its storage before the directory goes."""
    _remove_orphans_once(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-") as tmp:
        if kept_as is not None:
            with open(os.path.join(tmp, POINTER_FILE), "w", encoding="utf-8") as f:
                f.write(kept_as)
        else:
            checkpoint.save(state, os.path.join(tmp, CHECKPOINT_FILE))
        yield tmp


def remove_orphans(folder: str) -> list[str]:
    """Remove the staged checkpoint dirs in ``folder`` whose process has ended, an hour or more
    old; their names."""
    now, removed = time.time(), []
    for path in Path(folder).glob(f"{PREFIX}*-*"):
        pid = path.name[len(PREFIX):].split("-", 1)[0]
        try:
            old = now - path.stat().st_mtime >= ORPHAN_AGE_S
        except OSError:  # removed meanwhile
            continue
        if pid.isdigit() and old and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed


@functools.cache
def _remove_orphans_once(folder: str) -> None:
    """Once a process: a checkpoint is staged every epoch, and the temp dir can be large to list."""
    remove_orphans(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def load_ray_checkpoint(ckpt: Any, map_location: str = "cpu", exp_dir: str | None = None) -> dict[str, Any]:
    """The training state inside a Ray checkpoint; a pointer is read from ``exp_dir``."""
    with ckpt.as_directory() as path:
        pointer = os.path.join(path, POINTER_FILE)
        if not os.path.exists(pointer):
            return checkpoint.load(os.path.join(path, CHECKPOINT_FILE), map_location)
        with open(pointer, encoding="utf-8") as f:
            kept_as = f.read().strip()
    if exp_dir is None:
        raise ValueError(f"this Ray checkpoint names {kept_as} of an experiment dir, and none was given")
    kept = storage.join(exp_dir, kept_as)
    if not storage.exists(kept):  # e.g. the run went on under another launcher, which rotated it away
        raise UserError(f"resume: Ray Train's latest checkpoint is {storage.redact(kept)}, which is gone; start again with --overwrite")
    return checkpoint.load(kept, map_location)


def ray_storage_path(exp_dir: str) -> str:
    """Ray wants an absolute local path or a URI for its own checkpoints."""
    return exp_dir if "://" in exp_dir else os.path.abspath(exp_dir)
