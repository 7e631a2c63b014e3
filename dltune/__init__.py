"""dltune: distributed deep-learning hyperparameter optimisation on one YAML config."""
from __future__ import annotations

__version__ = "0.1.0"
