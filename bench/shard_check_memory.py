"""Per-rank memory of the shard check: every rank's ids gathered (the check before the sketch)
against dltune's fixed-size sketch (dltune.train.shard_check).

    python bench/shard_check_memory.py [--rows 200000,2000000,8000000] [--world 4] [--out DIR] [--quick]

A shuffled table's row ids are split the way the built-in loop splits them. For each variant,
one rank's peak traced allocation during the check is measured with tracemalloc (numpy reports
its buffers to it): what that rank receives from the others and what it computes. The ids the
rank already holds are not counted. Both variants must give the same verdict, with and without
an overlap. Writes shard_check_memory.md to --out (default bench/results).
"""
from __future__ import annotations

import argparse
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import invocation, machine_line, markdown_table, parse_bench_args, write_markdown  # noqa: E402
from dltune.train import shard_check  # noqa: E402


def gather_ids(shards: list[torch.Tensor]) -> bool:
    """What every rank did before: receive every rank's ids and count the distinct ones."""
    received = [s.numpy().copy() for s in shards]  # all_gather_object hands each rank a copy of each
    return len(np.unique(np.concatenate(received))) == sum(len(r) for r in received)


def sketches(shards: list[torch.Tensor]) -> bool:
    """This rank's sketch, then everyone's (received as the same fixed-size objects) merged."""
    mine = shard_check.sketch(shards[0])
    others = [shard_check.sketch(s) for s in shards[1:]]  # built on the other ranks: not counted below
    tracemalloc.reset_peak()
    received = [shard_check.ShardSketch(o.samples, o.hashes.copy(), o.counts.copy()) for o in others]
    return shard_check.ranks_disjoint([mine, *received])


def peak_bytes(check: Callable[[list[torch.Tensor]], bool], shards: list[torch.Tensor]) -> tuple[int, bool]:
    tracemalloc.start()
    try:
        verdict = check(shards)
        return tracemalloc.get_traced_memory()[1], verdict
    finally:
        tracemalloc.stop()


def sketch_peak(shards: list[torch.Tensor]) -> int:
    """The larger of the two phases of the sketch variant: sketching this rank's ids, and merging."""
    tracemalloc.start()
    try:
        shard_check.sketch(shards[0])
        own = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    merge, _ = peak_bytes(sketches, shards)
    return max(own, merge)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="200000,2000000,8000000", help="table sizes, comma-separated")
    parser.add_argument("--world", type=int, default=4, help="ranks")
    args = parse_bench_args(parser, {"rows": "20000,200000"})
    rows_list = [int(r) for r in str(args.rows).split(",")]
    table = []
    for rows in rows_list:
        order = torch.randperm(rows, generator=torch.Generator().manual_seed(0))
        shards = [order[r::args.world] for r in range(args.world)]
        overlapping = [torch.cat([shards[0], shards[1][: len(shards[1]) // 100]]), *shards[1:]]
        gathered, verdict = peak_bytes(gather_ids, shards)
        sketched = sketch_peak(shards)
        same = verdict is sketches(shards) is True and gather_ids(overlapping) is sketches(overlapping) is False
        if not same:
            raise SystemExit(f"rows {rows}: the two checks disagree")
        table.append([f"{rows:,}", f"{gathered / 2**20:.1f}", f"{sketched / 2**20:.2f}", f"{gathered / sketched:.0f}x"])
        print(f"rows {rows:,}: gather {gathered / 2**20:.1f} MiB, sketch {sketched / 2**20:.2f} MiB", flush=True)
    text = "\n\n".join([
        "# Shard check: per-rank memory",
        f"`{invocation()}`",
        machine_line(),
        f"{args.world} ranks; peak bytes one rank allocates for the check (tracemalloc). Both variants agree on a "
        "disjoint split and on one where rank 0 also reads 1% of rank 1's rows.",
        markdown_table(["table rows", "gather every id (MiB)", "sketch (MiB)", "gather / sketch"], table),
    ]) + "\n"
    print(text)
    write_markdown(args.out, "shard_check_memory", text)


if __name__ == "__main__":
    main()
