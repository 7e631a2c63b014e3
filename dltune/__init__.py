"""dltune: distributed deep-learning hyperparameter optimisation on one YAML config."""
from __future__ import annotations

from dltune.api import train, tune

__version__ = "0.1.0"
__all__ = ["train", "tune", "__version__"]
