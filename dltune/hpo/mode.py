"""A metric's best value under tune.mode ("max" or "min"), and how trials rank by it."""
from __future__ import annotations

from collections.abc import Iterable


def best_of(values: Iterable[float], mode: str) -> float | None:
    """The best of ``values``; None where there are none."""
    values = list(values)
    return (max(values) if mode == "max" else min(values)) if values else None


def rank_key(value: float, failed: bool, mode: str) -> tuple[bool, float]:
    """Sorts trials best first, a failed one after every one that did not fail (the value it
    reported before it broke, often as it diverged, makes no best)."""
    return failed, value if mode == "min" else -value
