"""dltune: distributed deep-learning hyperparameter optimisation on one YAML config."""
from __future__ import annotations

from typing import Any

from dltune.api import train, tune

__version__ = "0.1.0"
__all__ = ["train", "tune", "RunContext", "TorchDatasets", "__version__"]


def __getattr__(name: str) -> Any:
    # torch-backed names load on first use, so `dltune --help` and config checks stay light
    if name == "RunContext":
        from dltune.train.context import RunContext

        return RunContext
    if name == "TorchDatasets":
        from dltune.data.user import TorchDatasets

        return TorchDatasets
    raise AttributeError(f"module 'dltune' has no attribute {name!r}")
