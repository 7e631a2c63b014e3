"""Tabular AutoML with FLAML: ``dltune automl`` (see docs/automl.md)."""
from __future__ import annotations

from dltune.automl.config import AutoMLConfig, build_config

__all__ = ["AutoMLConfig", "build_config"]
