"""Score a table with a saved AutoML model: ``dltune automl predict --model DIR --data PATH --out PATH``.

The same ``prediction_frame`` writes the job's predictions.parquet, so scoring
the job's test data again reproduces that file.
"""
from __future__ import annotations

import io
import json
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dltune import storage
from dltune.automl.data import read_table
from dltune.errors import DataError, UserError


def prediction_frame(automl: Any, X: pd.DataFrame, task: str, y: pd.Series | None, label_col: str) -> pd.DataFrame:
    """One row per input row: the label when known, the prediction and, for classification, one proba_<class> column per class."""
    frame = pd.DataFrame({"prediction": np.asarray(automl.predict(X))})
    if task == "classification":
        proba = automl.predict_proba(X)
        for i, label in enumerate(automl.classes_):
            frame[f"proba_{label}"] = proba[:, i]
    if y is not None:
        frame.insert(0, label_col, y.to_numpy())
    return frame


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    return buffer.getvalue()


def load_model(model_dir: str) -> tuple[Any, dict[str, Any]]:
    """The pickled model of a finished job and its summary.json (unpickling runs code: only load your own jobs)."""
    shown = storage.redact(model_dir)
    try:
        summary = json.loads(storage.read_text(storage.join(model_dir, "summary.json")))
        model = pickle.loads(storage.read_bytes(storage.join(model_dir, "model.pkl")))
    except storage.StorageError:
        raise UserError(f"--model: {shown} is not the output directory of a finished dltune automl job (needs summary.json and model.pkl)") from None
    return model, summary


def predict(model_dir: str, data: str, out: str) -> int:
    """Write predictions for ``data`` to ``out`` (parquet); returns the number of rows scored."""
    automl, summary = load_model(model_dir)
    frame = read_table(data, "data")
    features, label = summary["feature_cols"], summary["label_col"]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise DataError(f"data: {storage.redact(data)} lacks feature columns the model was trained on: {', '.join(missing)}")
    y = frame[label] if label in frame.columns else None
    predictions = prediction_frame(automl, frame[features], summary["task"], y, label)
    try:
        storage.write_bytes(out, parquet_bytes(predictions))
    except storage.StorageError as exc:
        raise UserError(f"--out: {exc}") from None
    return len(predictions)
