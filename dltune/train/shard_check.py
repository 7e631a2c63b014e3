"""Whether any two ranks (or one rank twice) train on the same sample, with a fixed-size exchange.

Each rank sends its sample count and a bottom-k sketch of its sample ids: the ``SKETCH_SIZE``
smallest values of a bijective 64-bit mix of the ids, each with how often this rank holds it.
The smallest ``SKETCH_SIZE`` values of the union are then a uniform random sample of the union's
distinct ids, and for each of them every rank's sketch says exactly how often that rank holds it
(an id of a rank that is among the union's smallest is among that rank's smallest too).

So the check never reports an overlap that is not there. When the union has at most
``SKETCH_SIZE`` distinct ids it is exact; beyond that, an overlap touching a fraction ``f`` of the
distinct ids goes unseen with probability ``(1 - f) ** SKETCH_SIZE`` (about 1e-18 at f = 1%).
Each rank sends about 64 KiB and, hashing its ids in chunks, peaks near 1.5 MiB for the check,
however many rows there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SKETCH_SIZE = 4096
_CHUNK = 1 << 14  # ids hashed at a time, so the check's own memory does not grow with the shard


@dataclass(frozen=True)
class ShardSketch:
    """One rank's part of the exchange: its sample count and its bottom-k (hash, count) pairs."""

    samples: int
    hashes: np.ndarray  # uint64, ascending, distinct
    counts: np.ndarray  # int64, how often this rank holds each


def _mix(ids: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection on 64-bit words, so distinct ids never collide."""
    with np.errstate(over="ignore"):
        z = ids.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _smallest(hashes: np.ndarray, counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest distinct hashes, with their summed counts."""
    unique, inverse = np.unique(hashes, return_inverse=True)
    summed = np.bincount(inverse, weights=counts, minlength=len(unique)).astype(np.int64)
    return unique[:k], summed[:k]


def sketch(ids: torch.Tensor, k: int = SKETCH_SIZE) -> ShardSketch:
    """This rank's sketch of the integer sample ids ``ids``, read ``_CHUNK`` ids at a time."""
    flat = ids.reshape(-1)
    if flat.is_floating_point() or flat.is_complex() or flat.dtype == torch.bool:
        raise TypeError(f"the shard check takes integer sample ids, not {flat.dtype}")
    hashes, counts = np.zeros(0, np.uint64), np.zeros(0, np.int64)
    for start in range(0, len(flat), _CHUNK):
        chunk = _mix(flat[start:start + _CHUNK].numpy())
        if len(hashes) == k:  # only hashes below the current k-th can enter
            chunk = chunk[chunk <= hashes[-1]]
        hashes, counts = _smallest(np.concatenate([hashes, chunk]), np.concatenate([counts, np.ones(len(chunk), np.int64)]), k)
    return ShardSketch(int(len(flat)), hashes, counts)


def ranks_disjoint(sketches: list[ShardSketch], k: int = SKETCH_SIZE) -> bool:
    """False when a sampled id is held more than once over all ranks (see the module docstring)."""
    if not sketches:
        return True
    _, totals = _smallest(np.concatenate([s.hashes for s in sketches]), np.concatenate([s.counts for s in sketches]), k)
    return not bool((totals > 1).any())
