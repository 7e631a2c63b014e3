"""A metric's best value under tune.mode ("max" or "min")."""
from __future__ import annotations

from collections.abc import Iterable


def best_of(values: Iterable[float], mode: str) -> float | None:
    """The best of ``values``; None where there are none."""
    values = list(values)
    return (max(values) if mode == "max" else min(values)) if values else None
