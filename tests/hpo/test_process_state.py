"""``dltune.tune()`` called from Python leaves the process as it found it: the environment, the
logging handlers (the user's own among them), Optuna's verbosity, the standard streams and the
open file descriptors."""
from __future__ import annotations

import importlib
import io
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from objectives import curve
from dltune import api


def _search(out: Path, name: str) -> None:
    api.tune(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}}", "tune.metric=loss", "tune.mode=min", "tune.num_samples=2",
                    "train.epochs=2", "tune.searcher=random", "tune.scheduler=asha", f"output.dir={out}", f"output.experiment={name}"],
             verbose=False, fn=curve)


def _process_state() -> dict[str, Any]:
    import optuna

    loggers = {name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate, logging.getLogger(name).level)
               for name in ("", "ray", "ray.tune", "ray.train", "optuna", "dltune")}
    return {"environ": dict(os.environ), "loggers": loggers, "optuna": optuna.logging.get_verbosity(), "streams": (sys.stdout, sys.stderr)}


def _open_files() -> list[str]:
    """What each open descriptor points at (a file, a pipe, a socket)."""
    fds = Path("/proc/self/fd")
    found = []
    for fd in sorted(fds.iterdir(), key=lambda p: int(p.name)):
        try:
            found.append(os.readlink(fd))
        except OSError:
            pass  # the listing's own descriptor, closed by now
    return found


@pytest.mark.ray
@pytest.mark.slow
def test_three_searches_in_one_process_leave_no_trace_in_it(ray_cluster, tmp_path: Path) -> None:
    importlib.import_module("sklearn")  # the report imports it, and importing it sets two KMP_* variables for good: its trace, not ours

    users = logging.StreamHandler(io.StringIO())  # the user's own handler, which must stay where it is
    logging.getLogger().addHandler(users)
    try:
        before = _process_state()
        _search(tmp_path, "first")
        files = _open_files()  # after the first: Ray's own connections are open by then, and stay
        for name in ("second", "third"):
            _search(tmp_path, name)
        after, files_after = _process_state(), _open_files()
    finally:
        logging.getLogger().removeHandler(users)
    for key in before:
        if key == "loggers":
            for name, was in before["loggers"].items():
                assert after["loggers"][name] == was, f"logger {name!r}: (handlers, propagate, level) was {was}, is {after['loggers'][name]}"
        else:
            assert after[key] == before[key], key
    assert sorted(files_after) == sorted(files), "descriptors opened by a search and left open"
