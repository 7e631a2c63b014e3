"""The shard check's fixed-size exchange: right answers, and memory that does not grow with rows."""
from __future__ import annotations

import pickle
import tracemalloc

import pytest
import torch

from dltune.train import shard_check

WORLD = 4


def rank_shards(rows: int) -> list[torch.Tensor]:
    """A shuffled table's row ids, split the way the built-in loop splits them."""
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(0))
    return [order[r::WORLD] for r in range(WORLD)]


def sketch_peak_bytes(ids: torch.Tensor) -> tuple[shard_check.ShardSketch, int]:
    tracemalloc.start()
    try:
        made = shard_check.sketch(ids)
        return made, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_on_a_2m_row_table_the_checks_memory_and_message_do_not_grow_with_rows() -> None:
    small, large = rank_shards(200_000), rank_shards(2_000_000)
    small_sketch, small_peak = sketch_peak_bytes(small[0])
    large_sketch, large_peak = sketch_peak_bytes(large[0])
    # Gathering the ids would put WORLD x 4 MB on every rank; the sketch stays near 1 MB at any size.
    assert large_peak <= small_peak * 1.05 and large_peak < large[0].numel() * large[0].element_size()
    assert len(pickle.dumps(large_sketch)) <= len(pickle.dumps(small_sketch)) * 1.01
    assert large_sketch.samples == 500_000
    assert shard_check.ranks_disjoint([shard_check.sketch(s) for s in large]) is True


def test_an_overlap_between_ranks_is_found() -> None:
    shards = rank_shards(2_000_000)
    leaked = torch.cat([shards[0], shards[1][: len(shards[1]) // 100]])  # rank 0 also reads 1% of rank 1's rows
    assert shard_check.ranks_disjoint([shard_check.sketch(x) for x in (leaked, *shards[1:])]) is False
    every_rank_reads_all = torch.arange(100_000)
    assert shard_check.ranks_disjoint([shard_check.sketch(every_rank_reads_all)] * WORLD) is False


def test_below_the_sketch_size_the_check_is_exact() -> None:
    ids = torch.arange(shard_check.SKETCH_SIZE)
    halves = [ids[0::2], ids[1::2]]
    assert shard_check.ranks_disjoint([shard_check.sketch(x) for x in halves]) is True
    one_shared = [halves[0], torch.cat([halves[1], halves[0][-1:]])]
    assert shard_check.ranks_disjoint([shard_check.sketch(x) for x in one_shared]) is False
    repeated_within_a_rank = [torch.tensor([5, 7, 5]), torch.tensor([1, 2])]
    assert shard_check.ranks_disjoint([shard_check.sketch(x) for x in repeated_within_a_rank]) is False
    assert shard_check.ranks_disjoint([shard_check.sketch(torch.zeros(0, dtype=torch.long))]) is True
    with pytest.raises(TypeError, match="integer sample ids"):
        shard_check.sketch(torch.tensor([1.5, 1.7]))  # truncated to one id, they would look shared
