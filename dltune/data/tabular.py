"""Tabular data (parquet or CSV) with dense, sparse and label columns, read shard by shard.

Each process reads only its own contiguous range of rows: parquet footers give
every row group's size, so a rank opens just the row groups that overlap its
range. No process ever holds the whole table.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import torch

from dltune import storage
from dltune.config import DataConfig
from dltune.data.spec import DataSpec, Datasets
from dltune.data.batches import TensorBatches
from dltune.errors import DataError

TABLE_SUFFIXES = (".parquet", ".pq", ".parq", ".csv", ".csv.gz", ".tsv")


@dataclass
class TableFile:
    path: str
    num_rows: int  # -1 for CSV: unknown until read
    row_group_rows: list[int]

    @property
    def is_csv(self) -> bool:
        return self.path.lower().endswith((".csv", ".csv.gz", ".tsv"))


@dataclass
class Shard:
    dense: torch.Tensor  # float32 [N, D]
    sparse: torch.Tensor  # int64 [N, S]
    labels: np.ndarray  # [N, L]
    ids: torch.Tensor  # global row ids, int64 [N]


def table_files(path: str) -> list[TableFile]:
    try:
        paths = storage.list_files(path, TABLE_SUFFIXES)
    except storage.StorageError as exc:
        raise DataError(f"data: {exc}") from exc
    if not paths:
        raise DataError(f"no parquet or CSV files at {storage.redact(path)}")
    return [_describe(p) for p in paths]


def _describe(path: str) -> TableFile:
    if path.lower().endswith((".csv", ".csv.gz", ".tsv")):
        return TableFile(path, -1, [])
    meta = _parquet(path).metadata
    return TableFile(path, meta.num_rows, [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])


def _parquet(path: str) -> pq.ParquetFile:
    """A parquet file opened for random access: reading its footer or one row group
    fetches only those bytes, never the whole file."""
    fs, inner = storage.filesystem(path)
    try:
        if fs.get_file_info(inner).size == 0:
            raise DataError(f"empty file (0 bytes): {storage.redact(path)}")
        return pq.ParquetFile(fs.open_input_file(inner))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"unreadable parquet file {storage.redact(path)}: {storage.first_line(str(exc))}") from exc


def _read_csv(path: str, columns: list[str]) -> pa.Table:
    data = storage.read_bytes(path)
    if not data.strip():
        raise DataError(f"empty file (0 bytes): {storage.redact(path)}")
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    try:
        table = pacsv.read_csv(pa.BufferReader(data), parse_options=pacsv.ParseOptions(delimiter=delimiter))
    except pa.ArrowInvalid as exc:
        raise DataError(f"unreadable CSV file {storage.redact(path)}: {storage.first_line(str(exc))}") from exc
    _check_columns(table.schema.names, columns, path)
    return table.select(columns)


def _check_columns(available: list[str], wanted: list[str], path: str) -> None:
    for col in wanted:
        if col not in available:
            near = difflib.get_close_matches(col, available, n=1, cutoff=0.6)
            hint = f" (did you mean '{near[0]}'?)" if near else f" (columns: {', '.join(available[:20])})"
            raise DataError(f"column '{col}' not found in {storage.redact(path)}{hint}")


def row_range(total: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous [start, stop) of ``total`` rows for ``rank``; sizes differ by at most one."""
    base, extra = divmod(total, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _read_parquet_range(files: list[TableFile], columns: list[str], start: int, stop: int) -> tuple[list[pa.Table], list[np.ndarray]]:
    """Tables and global row ids for rows [start, stop) across ``files``, opening only overlapping row groups."""
    tables, ids = [], []
    offset = 0
    for f in files:
        pf = None
        for i, n in enumerate(f.row_group_rows):
            lo, hi = max(start, offset), min(stop, offset + n)
            if lo < hi:
                if pf is None:  # open each file once, and only if one of its row groups is ours
                    pf = _parquet(f.path)
                    _check_columns(pf.schema_arrow.names, columns, f.path)
                table = pf.read_row_group(i, columns=columns).slice(lo - offset, hi - lo)
                tables.append(table)
                ids.append(np.arange(lo, hi, dtype=np.int64))
            offset += n
    return tables, ids


def _read_csv_share(files: list[TableFile], columns: list[str], rank: int, world: int) -> tuple[list[pa.Table], list[np.ndarray]]:
    """CSV has no footer to plan from: whole files go round-robin to ranks when there
    are enough of them; otherwise each rank reads every file and keeps its row range."""
    if len(files) >= world:
        mine = files[rank::world]
        tables = [_read_csv(f.path, columns) for f in mine]
        ids = [np.arange(len(t), dtype=np.int64) + (files.index(f) << 40) for f, t in zip(mine, tables)]
        return tables, ids
    tables = [_read_csv(f.path, columns) for f in files]
    whole = pa.concat_tables(tables)
    start, stop = row_range(len(whole), rank, world)
    return [whole.slice(start, stop - start)], [np.arange(start, stop, dtype=np.int64)]


def hash_ids(column: pa.ChunkedArray | pa.Array, buckets: int) -> np.ndarray:
    """Stable hash of each value (as text; null -> '') into [0, buckets).

    Each distinct value is hashed once (categorical columns repeat a lot): the
    column is dictionary-encoded in Arrow and the codes index the hashed values.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(pc.fill_null(pc.cast(column, pa.string()), ""))
    uniques = encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)
    ids = (pd.util.hash_array(uniques, categorize=False) % np.uint64(buckets)).astype(np.int64)
    return ids[encoded.indices.to_numpy()]


def _to_shard(table: pa.Table, ids: np.ndarray, cfg: DataConfig, source: str) -> Shard:
    n = table.num_rows
    if cfg.feature_cols:
        dense_cols = []
        for col in cfg.feature_cols:
            try:
                arr = table.column(col).to_numpy(zero_copy_only=False).astype(np.float32)
            except (ValueError, pa.ArrowInvalid) as exc:
                raise DataError(f"data.feature_cols: column '{col}' in {storage.redact(source)} is not numeric") from exc
            dense_cols.append(np.nan_to_num(arr, nan=0.0))  # missing dense values count as 0
        dense = np.stack(dense_cols, axis=1)
    else:
        dense = np.zeros((n, 0), dtype=np.float32)
    sparse = np.stack([hash_ids(table.column(c), cfg.hash_buckets) for c in cfg.sparse_cols], axis=1) if cfg.sparse_cols else np.zeros((n, 0), dtype=np.int64)
    labels = []
    for col in cfg.label_cols:
        try:
            arr = table.column(col).to_numpy(zero_copy_only=False).astype(np.float64)
        except (ValueError, pa.ArrowInvalid) as exc:
            raise DataError(f"data.label_cols: column '{col}' in {storage.redact(source)} is not numeric") from exc
        missing = int(np.isnan(arr).sum())
        if missing:
            raise DataError(f"data.label_cols: column '{col}' has {missing} missing (NaN/null) labels in {storage.redact(source)}")
        labels.append(arr)
    return Shard(torch.from_numpy(dense), torch.from_numpy(sparse), np.stack(labels, axis=1), torch.from_numpy(ids))


def read_shard(cfg: DataConfig, path: str, rank: int, world: int) -> Shard:
    """This rank's rows of the table at ``path``."""
    files = table_files(path)
    columns = list(dict.fromkeys([*cfg.feature_cols, *cfg.sparse_cols, *cfg.label_cols]))
    parquet = [f for f in files if not f.is_csv]
    csv = [f for f in files if f.is_csv]
    if parquet and csv:
        raise DataError(f"{storage.redact(path)} mixes parquet and CSV files; keep one format per dataset")
    if parquet:
        total = sum(f.num_rows for f in parquet)
        if total == 0:
            raise DataError(f"no rows in {storage.redact(path)} ({len(parquet)} parquet file(s), all empty)")
        start, stop = row_range(total, rank, world)
        tables, ids = _read_parquet_range(parquet, columns, start, stop)
    else:
        tables, ids = _read_csv_share(csv, columns, rank, world)
        if sum(t.num_rows for t in tables) == 0 and world == 1:
            raise DataError(f"no rows in {storage.redact(path)}")
    if not tables:
        table = pa.table({c: pa.array([], pa.float64()) for c in columns})
        all_ids = np.zeros(0, dtype=np.int64)
    else:
        table = pa.concat_tables(tables, promote_options="permissive")
        all_ids = np.concatenate(ids)
    return _to_shard(table, all_ids, cfg, path)


def _labels_for_task(labels: np.ndarray, task: str, cfg: DataConfig, source: str) -> torch.Tensor:
    if task == "binary":
        bad = ~np.isin(labels, (0.0, 1.0))
        if bad.any():
            col = cfg.label_cols[int(np.argwhere(bad)[0][1])]
            raise DataError(f"data.label_cols: binary labels must be 0 or 1; column '{col}' in {storage.redact(source)} has {labels[bad][0]:g}")
        return torch.from_numpy(labels.astype(np.float32))
    if task == "multiclass":
        if labels.shape[1] != 1:
            raise DataError("data.label_cols: multiclass data takes exactly one label column")
        y = labels[:, 0]
        if (y != np.round(y)).any() or (y < 0).any() or (y >= cfg.num_classes).any():
            raise DataError(f"data.label_cols: multiclass labels must be integers in [0, {cfg.num_classes}) in {storage.redact(source)}")
        return torch.from_numpy(y.astype(np.int64))
    return torch.from_numpy(labels.astype(np.float32))


def tabular(cfg: DataConfig, batch_size: int, seed: int, rank: int, world: int) -> Datasets:
    task = "binary" if cfg.task == "auto" else cfg.task
    train = read_shard(cfg, cfg.path, rank, world)
    if cfg.val_path:
        val = read_shard(cfg, cfg.val_path, rank, world)
        val_source = cfg.val_path
    else:
        order = torch.from_numpy(np.random.default_rng(seed + rank).permutation(len(train.ids)))
        n_val = int(round(len(order) * cfg.val_fraction))
        val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
        val = Shard(train.dense[val_idx], train.sparse[val_idx], train.labels[val_idx.numpy()], train.ids[val_idx])
        train = Shard(train.dense[train_idx], train.sparse[train_idx], train.labels[train_idx.numpy()], train.ids[train_idx])
        val_source = cfg.path
    y_train = _labels_for_task(train.labels, task, cfg, cfg.path)
    y_val = _labels_for_task(val.labels, task, cfg, val_source)
    spec = DataSpec(
        kind="tabular",
        task=task,
        num_outputs=cfg.num_classes if task == "multiclass" else len(cfg.label_cols),
        num_dense=len(cfg.feature_cols),
        num_sparse=len(cfg.sparse_cols),
        hash_buckets=cfg.hash_buckets,
        label_names=list(cfg.label_cols),
    )
    return Datasets(
        train=TensorBatches((train.dense, train.sparse), y_train, batch_size, True, seed + rank, ids=train.ids),
        val=TensorBatches((val.dense, val.sparse), y_val, batch_size, False, seed, ids=val.ids),
        spec=spec,
        pre_sharded=True,
    )
