"""User code carried to the processes a launcher starts (Ray workers, torchrun ranks).

A worker imports ``train.fn``, ``data.target``, ``train.loss`` and
``model.target`` by name, so it needs the directories their modules were
found in here (unless they are installed packages); a function object given
from Python (a notebook, a script) travels pickled, and is unpickled only
after those directories are on the worker's path.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from dltune.config import Config

_INSTALLED = tuple(os.path.realpath(p) for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def _module_root(module_name: str) -> str | None:
    """The sys.path entry ``module_name`` loads from, unless it is an installed package."""
    top = module_name.split(".")[0]
    if top == "__main__":
        return None
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        location = list(spec.submodule_search_locations)[0]
    elif spec.origin and os.path.isabs(spec.origin):
        location = spec.origin
    else:
        return None
    root = os.path.dirname(os.path.realpath(location))
    return None if root.startswith(_INSTALLED) else root


def _plugin_modules(cfg: Config) -> Iterable[str]:
    for path in (cfg.train.fn, cfg.train.loss, cfg.data.target, cfg.model.target):
        if path:
            yield path.partition(":")[0]


@dataclass
class UserCode:
    paths: list[str] = field(default_factory=list)
    fn: bytes | None = None  # a function object from Python, cloudpickled

    @classmethod
    def of(cls, cfg: Config, fn: Callable[..., Any] | None = None) -> UserCode:
        modules = [*_plugin_modules(cfg), *([fn.__module__] if fn is not None else [])]
        roots = [root for root in (_module_root(m) for m in modules) if root]
        return cls(sorted(set(roots)), cloudpickle.dumps(fn) if fn is not None else None)

    def load(self) -> Callable[..., Any] | None:
        """In a worker: make the user's modules importable, then return the function object (if any)."""
        for path in self.paths:
            if path not in sys.path and os.path.isdir(path):
                sys.path.insert(0, path)  # this worker process exists to run the user's code
        return cloudpickle.loads(self.fn) if self.fn is not None else None

    def pythonpath(self, env: dict[str, str]) -> str:
        """PYTHONPATH for a child process that must import the same modules."""
        return os.pathsep.join([*self.paths, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
