"""Data loading: dltune's readers against plain pyarrow / pickle code that builds the same tensors.

    python bench/data_loading.py [--rows 300000] [--files 6] [--row-group-rows 10000]
                                 [--cifar-per-batch 10000] [--repeats 7] [--out DIR] [--quick]

(a) Tabular: generated Criteo-shaped parquet (13 dense, 26 categorical columns, a
    label; several files of several row groups) read with the columns of
    configs/ctr_deepfm.yaml through ``dltune.data.build_datasets`` and iterated
    batch by batch as the training loop does, against ``pyarrow.parquet.read_table``
    + ``torch.from_numpy`` into the same tensors (checked equal) and the same
    shuffled batches. Prints rows/s and the ratio dltune / raw (target >= 0.9).
(b) Images: CIFAR-10 python batches through dltune's cifar10 reader (augmentation
    off and on) against pickle + numpy into the same tensors; batches/s of a whole
    epoch (train and validation batches) including the read.

Variants alternate round by round; medians and paired ratios are reported.
Writes data_loading.md and data_loading.png to --out (default bench/results).
"""
from __future__ import annotations

import argparse
import math
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    REPO, interleave, invocation, machine_line, markdown_table, median, paired_ratio, parse_bench_args, save_bars, spread,
    write_ctr_parquet, write_markdown,
)
from dltune.config import Config, load_config  # noqa: E402
from dltune.data import build_datasets  # noqa: E402
from dltune.data.batches import Batch, TensorBatches  # noqa: E402
from dltune.data.images import CIFAR_MEAN, CIFAR_STD, CIFAR_TEST, CIFAR_TRAIN  # noqa: E402
from tests.conftest import write_cifar_batches  # noqa: E402

CTR_CONFIG = REPO / "configs" / "ctr_deepfm.yaml"
Tensors = tuple[torch.Tensor, ...]


def drain(batches: Iterable[Batch]) -> int:
    """Samples in ``batches``, pulling every batch as the training loop would."""
    return sum(len(target) for _, target in batches)


def shuffled_batches(inputs: Tensors, labels: torch.Tensor, batch_size: int, shuffle: bool) -> Iterator[Batch]:
    order = torch.randperm(len(labels)) if shuffle else torch.arange(len(labels))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield tuple(t[idx] for t in inputs), labels[idx]


def timed(fn: Callable[[], int], expected: int) -> float:
    started = time.perf_counter()
    count = fn()
    elapsed = time.perf_counter() - started
    if count != expected:
        raise RuntimeError(f"read {count} samples, expected {expected}")
    return elapsed


# (a) tabular ------------------------------------------------------------------


def hash_column(column: pa.ChunkedArray, buckets: int) -> np.ndarray:
    """dltune's id for each value (pandas hash of the text, null as ''), hashing each distinct value once."""
    encoded = pc.dictionary_encode(pc.fill_null(pc.cast(column, pa.string()), ""))
    if encoded.num_chunks == 0:
        return np.zeros(0, dtype=np.int64)
    # A chunked dictionary_encode shares one dictionary between its chunks.
    uniques = encoded.chunk(0).dictionary.to_numpy(zero_copy_only=False).astype(object)
    ids = (pd.util.hash_array(uniques, categorize=False) % np.uint64(buckets)).astype(np.int64)
    return ids[np.concatenate([chunk.indices.to_numpy() for chunk in encoded.chunks])]


def raw_tabular_tensors(folder: Path, cfg: Config) -> tuple[Tensors, torch.Tensor]:
    data = cfg.data
    columns = [*data.feature_cols, *data.sparse_cols, *data.label_cols]
    table = pa.concat_tables(pq.read_table(path, columns=columns) for path in sorted(folder.glob("*.parquet")))
    dense = np.stack([pc.fill_null(table[c], 0.0).to_numpy().astype(np.float32) for c in data.feature_cols], axis=1)
    sparse = np.stack([hash_column(table[c], data.hash_buckets) for c in data.sparse_cols], axis=1)
    labels = np.stack([table[c].to_numpy().astype(np.float32) for c in data.label_cols], axis=1)
    return (torch.from_numpy(dense), torch.from_numpy(sparse)), torch.from_numpy(labels)


# (b) CIFAR-10 python batches ----------------------------------------------------


def raw_cifar_tensors(folder: Path, names: list[str]) -> tuple[Tensors, torch.Tensor]:
    entries = []
    for name in names:
        with open(folder / name, "rb") as f:
            entries.append(pickle.load(f, encoding="bytes"))  # our own generated files
    images = np.concatenate([e[b"data"] for e in entries]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([np.asarray(e[b"labels"], dtype=np.int64) for e in entries])
    x = torch.from_numpy(images).float() / 255.0
    x = (x - torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)) / torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x,), torch.from_numpy(labels)


def cifar_config(folder: Path, augment: bool) -> Config:
    return load_config(str(REPO / "configs" / "cifar10_resnet18.yaml"), [f"data.path={folder}", f"data.augment={str(augment).lower()}"])


# both --------------------------------------------------------------------------------


def raw_epoch(train: tuple[Tensors, torch.Tensor], val: tuple[Tensors, torch.Tensor], batch_size: int) -> int:
    return drain(shuffled_batches(*train, batch_size, True)) + drain(shuffled_batches(*val, batch_size, False))


def dltune_epoch(cfg: Config) -> int:
    data = build_datasets(cfg.data, cfg.train.batch_size, cfg.train.seed)
    return drain(data.train) + drain(data.val)


def check_same(cfg: Config, raw_train: tuple[Tensors, torch.Tensor]) -> None:
    """The raw path must build exactly dltune's training tensors, or the comparison means nothing."""
    train: TensorBatches = build_datasets(cfg.data, cfg.train.batch_size, cfg.train.seed).train
    mine = (*train.inputs, train.labels)
    if not all(torch.equal(a, b) for a, b in zip(mine, (*raw_train[0], raw_train[1]), strict=True)):
        raise RuntimeError(f"the raw path does not build dltune's tensors for data.name={cfg.data.name}")


# report --------------------------------------------------------------------------


def rates(seconds: dict[str, list[float]], samples: int) -> dict[str, list[float]]:
    return {name: [samples / s for s in values] for name, values in seconds.items()}


def tabular_section(args: argparse.Namespace, cfg: Config, rows: int, per_s: dict[str, list[float]]) -> str:
    names = list(per_s)
    table = markdown_table(
        ["reader", "rows/s, median (min-max)"],
        [*([name, spread(per_s[name])] for name in names),
         ["**ratio dltune / raw** (paired median, target >= 0.9)", f"**{paired_ratio(per_s[names[0]], per_s[names[1]]):.2f}**"]],
    )
    data = cfg.data
    return (
        f"## (a) Tabular parquet\n\n{rows:,} rows ({args.rows:,} train in {args.files} files of {args.row_group_rows:,}-row groups, "
        f"{args.rows // 10:,} validation), {len(data.feature_cols)} dense + {len(data.sparse_cols)} categorical columns + label, "
        f"hash_buckets {data.hash_buckets:,}, batch {cfg.train.batch_size}; the raw path builds tensors equal to dltune's (checked). "
        f"One epoch = read, convert, then every train and validation batch.\n\n{table}\n"
    )


def cifar_section(args: argparse.Namespace, images: int, batches: int, per_s: dict[str, list[float]]) -> str:
    names = list(per_s)
    raw = per_s[names[-1]]
    table = markdown_table(
        ["reader", "images/s, median (min-max)", "batches/s, median", "ratio to raw (paired median)"],
        [[name, spread(values), f"{median(values) * batches / images:,.1f}", f"{paired_ratio(values, raw):.2f}"] for name, values in per_s.items()],
    )
    return (
        f"## (b) CIFAR-10 python batches\n\n{images:,} images (5 x {args.cifar_per_batch:,} train + {args.cifar_per_batch:,} test), "
        f"batch 128, {batches} batches per epoch; the raw path builds tensors equal to dltune's (checked). "
        f"One epoch = unpickle, normalise, then every train and validation batch.\n\n{table}\n"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000, help="training rows of the parquet table")
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--row-group-rows", type=int, default=10_000)
    parser.add_argument("--cifar-per-batch", type=int, default=10_000, help="images per CIFAR batch file (the real files hold 10000)")
    parser.add_argument("--repeats", type=int, default=7)
    return parse_bench_args(parser, {"rows": 30_000, "files": 3, "row_group_rows": 2_500, "cifar_per_batch": 500, "repeats": 2})


def tabular_bench(args: argparse.Namespace, root: Path) -> tuple[str, dict[str, list[float]]]:
    train_dir, val_dir = root / "train", root / "val"
    rows = write_ctr_parquet(train_dir, args.rows, args.files, args.row_group_rows)
    rows += write_ctr_parquet(val_dir, args.rows // 10, 1, args.row_group_rows, seed=1)
    cfg = load_config(str(CTR_CONFIG), [f"data.path={train_dir}", f"data.val_path={val_dir}"])
    check_same(cfg, raw_tabular_tensors(train_dir, cfg))
    batch = cfg.train.batch_size
    seconds = interleave({
        "dltune tabular reader + batches": lambda: timed(lambda: dltune_epoch(cfg), rows),
        "pyarrow read_table + torch.from_numpy": lambda: timed(lambda: raw_epoch(raw_tabular_tensors(train_dir, cfg), raw_tabular_tensors(val_dir, cfg), batch), rows),
    }, args.repeats)
    per_s = rates(seconds, rows)
    return tabular_section(args, cfg, rows, per_s), per_s


def cifar_bench(args: argparse.Namespace, root: Path) -> tuple[str, dict[str, list[float]]]:
    folder = write_cifar_batches(root / "cifar", per_batch=args.cifar_per_batch)
    plain, augmented = cifar_config(folder, False), cifar_config(folder, True)
    check_same(plain, raw_cifar_tensors(folder, CIFAR_TRAIN))
    images = 6 * args.cifar_per_batch
    batch = plain.train.batch_size
    seconds = interleave({
        "dltune cifar10 reader, augment off": lambda: timed(lambda: dltune_epoch(plain), images),
        "dltune cifar10 reader, augment on": lambda: timed(lambda: dltune_epoch(augmented), images),
        "pickle + numpy + torch (augment off)": lambda: timed(lambda: raw_epoch(raw_cifar_tensors(folder, CIFAR_TRAIN), raw_cifar_tensors(folder, [CIFAR_TEST]), batch), images),
    }, args.repeats)
    per_s = rates(seconds, images)
    batches = math.ceil(5 * args.cifar_per_batch / batch) + math.ceil(args.cifar_per_batch / batch)  # train is one tensor
    return cifar_section(args, images, batches, per_s), per_s


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="dltune-bench-data-") as tmp:
        tab_text, tab_rates = tabular_bench(args, Path(tmp))
        img_text, img_rates = cifar_bench(args, Path(tmp))
    text = "\n".join(["# Data loading", "", machine_line(), f"Command: `{invocation()}`; {args.repeats} alternating rounds.", "", tab_text, img_text])
    print(text)
    write_markdown(args.out, "data_loading", text)
    save_bars(args.out, "data_loading", [("(a) tabular parquet", "rows/s", tab_rates), ("(b) CIFAR-10 python batches", "images/s", img_rates)])


if __name__ == "__main__":
    main()
