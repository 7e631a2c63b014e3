"""scikit-learn's bundled datasets written as parquet, the way our users' tables arrive."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split

LOADERS = {"breast_cancer": load_breast_cancer, "digits": load_digits, "diabetes": load_diabetes}


def frame(name: str) -> pd.DataFrame:
    """Features with plain column names plus a ``label`` column."""
    X, y = LOADERS[name](return_X_y=True, as_frame=True)
    X.columns = [f"f{i}" for i in range(X.shape[1])]
    return X.assign(label=y.to_numpy())


def write_split(name: str, directory: Path, seed: int = 0, test_size: float = 0.25) -> tuple[Path, Path]:
    """train.parquet and test.parquet (stratified for classification) under ``directory``."""
    data = frame(name)
    stratify = None if name == "diabetes" else data["label"]
    train, test = train_test_split(data, test_size=test_size, random_state=seed, stratify=stratify)
    directory.mkdir(parents=True, exist_ok=True)
    train_path, test_path = directory / "train.parquet", directory / "test.parquet"
    train.to_parquet(train_path, index=False)
    test.to_parquet(test_path, index=False)
    return train_path, test_path
