"""Read the train/test tables through the storage layer and check them before any search starts."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dltune import storage
from dltune.automl.config import BINARY_METRICS, MULTICLASS_METRICS, AutoMLConfig
from dltune.errors import DataError
from dltune.schema import closest

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
CSV_SUFFIXES = (".csv",)


@dataclass
class Tables:
    X_train: pd.DataFrame
    y_train: pd.Series
    X_test: pd.DataFrame
    y_test: pd.Series
    test_source: str  # where the test rows came from, for metrics.json


def _read_file(path: str, columns: list[str] | None, role: str) -> pa.Table:
    shown = storage.redact(path)
    lower = path.lower()
    with storage.open_read(path) as stream:
        is_parquet = lower.endswith(PARQUET_SUFFIXES) or (not lower.endswith(CSV_SUFFIXES) and stream.read(4) == b"PAR1")
        stream.seek(0)
        try:
            if is_parquet:
                parquet = pq.ParquetFile(stream)
                _check_columns(parquet.schema_arrow.names, columns, shown, role)
                return parquet.read(columns=columns)
            table = pacsv.read_csv(stream)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            kind = "parquet" if is_parquet else "CSV"
            raise DataError(f"{role}: cannot read {shown} as {kind}: {storage.first_line(str(exc))}") from None
    _check_columns(table.column_names, columns, shown, role)
    return table.select(columns) if columns else table


def _check_columns(available: list[str], wanted: list[str] | None, shown: str, role: str) -> None:
    for name in wanted or ():
        if name not in available:
            raise DataError(f"{role}: no column '{name}' in {shown}{_suggest(name, available)}")


def _suggest(name: str, columns: list[str]) -> str:
    """The closest column name, else the first few columns (tables can be wide)."""
    hint = closest(name, columns)
    if "did you mean" in hint or len(columns) <= 8:
        return hint
    return f" (columns: {', '.join(columns[:8])}, ... {len(columns)} in all)"


def read_table(path: str, role: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A parquet/CSV file, a directory of part files or a glob, as one DataFrame.

    ``columns`` restricts what is read; a missing one is reported by name with
    the closest existing column.
    """
    shown = storage.redact(path)
    try:
        files = storage.list_files(path)
        if len(files) > 1 or storage.isdir(path):
            files = [f for f in files if f.lower().endswith(PARQUET_SUFFIXES + CSV_SUFFIXES)]
        if not files:
            raise DataError(f"{role}: no parquet or CSV files in {shown}")
        tables = [_read_file(f, columns, role) for f in files]
    except storage.StorageError as exc:
        raise DataError(f"{role}: {exc}") from None
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"{role}: the files under {shown} have different schemas: {storage.first_line(str(exc))}") from None
    if table.num_rows == 0:
        raise DataError(f"{role}: {shown} has no rows")
    return table.to_pandas()


def split_features(frame: pd.DataFrame, cfg: AutoMLConfig, role: str) -> tuple[pd.DataFrame, pd.Series]:
    if cfg.label_col not in frame.columns:
        raise DataError(f"{role}: no label column '{cfg.label_col}'{_suggest(cfg.label_col, [str(c) for c in frame.columns])}")
    y = frame[cfg.label_col]
    missing = int(y.isna().sum())
    if missing:
        raise DataError(f"{role}: label column '{cfg.label_col}' has {missing} missing values")
    features = cfg.feature_cols or [c for c in frame.columns if c != cfg.label_col]
    if not features:
        raise DataError(f"{role}: no feature columns besides the label '{cfg.label_col}'")
    if cfg.task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise DataError(f"{role}: label column '{cfg.label_col}' is {y.dtype}, regression needs numbers")
    return frame[features], y


def check_labels(y: pd.Series, cfg: AutoMLConfig) -> None:
    """Refuse labels the chosen task and metric cannot work with."""
    if cfg.task != "classification":
        return
    classes = y.unique()
    if len(classes) < 2:
        raise DataError(f"train_data: label column '{cfg.label_col}' has a single class ({classes[0]}); classification needs at least two")
    if len(classes) > 2 and cfg.metric in BINARY_METRICS:
        raise DataError(f"metric: '{cfg.metric}' needs two classes but '{cfg.label_col}' has {len(classes)}; use roc_auc_ovr, macro_f1 or log_loss")
    if len(classes) == 2 and cfg.metric in MULTICLASS_METRICS:
        raise DataError(f"metric: '{cfg.metric}' is for three or more classes but '{cfg.label_col}' has two; use roc_auc")


def load_tables(cfg: AutoMLConfig) -> Tables:
    """Train and test features/labels; without test_data a seeded (stratified) split of train_data."""
    from sklearn.model_selection import train_test_split

    columns = None if cfg.feature_cols is None else [*cfg.feature_cols, cfg.label_col]
    X, y = split_features(read_table(cfg.train_data, "train_data", columns), cfg, "train_data")
    check_labels(y, cfg)
    if cfg.test_data:
        X_test, y_test = split_features(read_table(cfg.test_data, "test_data", [*X.columns, cfg.label_col]), cfg, "test_data")
        unseen = set(y_test.unique()) - set(y.unique()) if cfg.task == "classification" else set()
        if unseen:
            raise DataError(f"test_data: label values not in train_data: {', '.join(map(str, sorted(unseen, key=str)))}")
        return Tables(X, y, X_test, y_test, storage.redact(cfg.test_data))
    stratify = y if cfg.task == "classification" else None
    if stratify is not None and y.value_counts().min() < 2:
        rare = y.value_counts().idxmin()
        raise DataError(f"train_data: label class {rare} has a single row; a stratified test split needs two per class (or give test_data)")
    try:
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=cfg.test_ratio, random_state=cfg.seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(f"train_data: cannot hold out test_ratio={cfg.test_ratio} of {len(y)} rows: {exc}") from None
    how = "stratified split" if stratify is not None else "split"
    return Tables(X_train, y_train, X_test, y_test, f"{how} of train_data, test_ratio={cfg.test_ratio}, seed={cfg.seed}")
