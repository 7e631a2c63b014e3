"""Helpers shared by the benchmarks: machine description, interleaved repeats,
results files (markdown + bar chart) and a CTR-shaped parquet generator.

Imports nothing beyond numpy and pyarrow at module level, so the GPU check can
use it on a machine without Ray or matplotlib.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import textwrap
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

Panel = tuple[str, str, dict[str, list[float]]]  # title, y label, bar label -> repeated measurements
Key = TypeVar("Key", bound=Hashable)


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_line() -> str:
    versions = ", ".join(f"{pkg} {package_version(pkg)}" for pkg in ("torch", "ray", "pyarrow"))
    # The load average shows how much of the machine other processes took while this ran.
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return f"Machine: {os.cpu_count()} CPU cores, Python {platform.python_version()}, {versions}; load average (1/5/15 min) at the end: {load}"


def parse_bench_args(parser: argparse.ArgumentParser, quick: dict[str, object]) -> argparse.Namespace:
    """Parse the command line with the options every benchmark has: ``--out`` (where the
    results files go) and ``--quick`` (a smoke run: the options named in ``quick`` replaced)."""
    shown = ", ".join(f"{name.replace('_', '-')} {value}" for name, value in quick.items())
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results files (default bench/results)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {shown}")
    args = parser.parse_args()
    if args.quick:
        vars(args).update(quick)
    return args


def invocation() -> str:
    """The command line this benchmark was started with, for the results file."""
    return " ".join(["python", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def interleave(variants: dict[Key, Callable[[], float]], repeats: int) -> dict[Key, list[float]]:
    """Each variant ``repeats`` times, alternating; the order rotates every round so that
    load from other users of a shared machine falls on every variant alike."""
    names = list(variants)
    results: dict[Key, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(variants[name]())
    return results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median of the per-round ratios: rounds ran back to back, so each pair shared the machine's load."""
    return median([a / b for a, b in zip(numerator, denominator)])


def spread(values: Sequence[float], digits: int = 0) -> str:
    """'median (min-max)' of repeated measurements."""
    return f"{median(values):,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def run_rate(exp_dir: Path) -> float:
    """A finished dltune run's training samples/s (all ranks together, from its metrics.jsonl):
    the median over epochs after the first, which pays for warm-up (and compilation)."""
    epochs = [json.loads(line) for line in (exp_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return median([e["samples_per_s"] for e in epochs[1:] or epochs])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(out_dir: Path, name: str, text: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.md"
    path.write_text(text)
    return path


def save_bars(out_dir: Path, name: str, panels: Sequence[Panel]) -> Path:
    """One bar chart per panel: bar height is the median, the whisker spans min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = sum(max(4.0, 1.8 * len(bars)) for _, _, bars in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.2), squeeze=False)
    for ax, (title, ylabel, bars) in zip(axes[0], panels):
        labels = list(bars)
        mids = [median(bars[k]) for k in labels]
        err = [[m - min(bars[k]) for k, m in zip(labels, mids)], [max(bars[k]) - m for k, m in zip(labels, mids)]]
        ax.bar([textwrap.fill(k, 15, break_long_words=False) for k in labels], mids, yerr=err, capsize=4, color=[f"C{i}" for i in range(len(labels))])
        ax.set_title(title)
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_ctr_parquet(folder: Path, rows: int, files: int, row_group_rows: int, seed: int = 0, dense: int = 13, sparse: int = 26) -> int:
    """Criteo-shaped part files: I1..I<dense> float with ~5% nulls, C1..C<sparse> strings
    of mixed cardinality with ~2% nulls, binary ``label``. Returns the rows written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cardinality = np.geomspace(10, 200_000, sparse).astype(np.int64)
    per_file = rows // files
    for i in range(files):
        n = per_file if i < files - 1 else rows - per_file * (files - 1)
        columns: dict[str, pa.Array] = {}
        for j in range(dense):
            columns[f"I{j + 1}"] = pa.array(rng.lognormal(size=n), mask=rng.random(n) < 0.05)
        for j in range(sparse):
            ids = pa.array(rng.integers(0, cardinality[j], size=n), mask=rng.random(n) < 0.02)
            columns[f"C{j + 1}"] = ids.cast(pa.string())
        columns["label"] = pa.array(rng.integers(0, 2, size=n))
        pq.write_table(pa.table(columns), folder / f"part-{i:05d}.parquet", row_group_size=row_group_rows)
    return rows
