from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from conftest import CTR_OVERRIDES, write_cifar_batches, write_ctr_parquet
from dltune.config import load_config
from dltune.data import build_datasets
from dltune.data.tabular import hash_ids, row_range
from dltune.errors import DataError


def _data(overrides: list[str], batch: int = 16, rank: int = 0, world: int = 1):
    cfg = load_config(None, overrides)
    return build_datasets(cfg.data, batch, cfg.train.seed, rank, world)


def test_digits_split_is_seeded_and_disjoint() -> None:
    a, b = _data([]), _data([])
    other = _data(["train.seed=1"])
    assert a.spec.input_shape == (1, 8, 8) and a.spec.num_outputs == 10
    assert a.train.num_samples + a.val.num_samples == 1797
    assert torch.equal(a.val.labels, b.val.labels)
    assert not torch.equal(a.val.labels, other.val.labels)


def test_image_ranks_see_disjoint_samples_and_equal_steps() -> None:
    ranks = [_data([], rank=r, world=3) for r in range(3)]
    ids = [set(d.train.sample_ids().tolist()) for d in ranks]
    assert all(not (ids[i] & ids[j]) for i in range(3) for j in range(i + 1, 3))
    assert len({len(d.train) for d in ranks}) == 1
    assert sum(d.val.num_samples for d in ranks) == ranks[0].val.size  # validation keeps every sample


def test_cifar10_batches_and_augmentation(tmp_path: Path) -> None:
    write_cifar_batches(tmp_path, per_batch=8)
    data = _data(["data.name=cifar10", f"data.path={tmp_path}"])
    assert data.train.num_samples == 40 and data.val.num_samples == 8
    (x,), y = next(iter(data.train))
    assert x.shape == (16, 3, 32, 32) and y.dtype == torch.long
    plain = _data(["data.name=cifar10", f"data.path={tmp_path}/cifar-10-batches-py", "data.augment=false"])
    assert plain.train.transform is None and data.train.transform is not None


def test_cifar10_missing_file_is_named(tmp_path: Path) -> None:
    folder = write_cifar_batches(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="CIFAR-10 file missing: .*data_batch_3"):
        _data(["data.name=cifar10", f"data.path={tmp_path}"])


def test_imagefolder_tree(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = _data(["data.name=imagefolder", f"data.path={tmp_path}", "data.image_size=16", "data.val_fraction=0.25"], batch=4)
    assert data.spec.num_outputs == 2 and data.spec.label_names == ["cat", "dog"]
    assert data.train.num_samples == 9 and data.val.num_samples == 3
    (x,), y = next(iter(data.train))
    assert x.shape == (4, 3, 16, 16)


def test_tabular_dense_sparse_and_labels(ctr_dir: Path) -> None:
    data = _data([f"data.path={ctr_dir}", *CTR_OVERRIDES])
    assert data.spec.kind == "tabular" and data.spec.task == "binary"
    assert data.spec.num_dense == 3 and data.spec.num_sparse == 2
    (dense, sparse), y = next(iter(data.train))
    assert dense.dtype == torch.float32 and dense.shape[1] == 3
    assert sparse.dtype == torch.long and int(sparse.max()) < 64
    assert set(y.unique().tolist()) <= {0.0, 1.0} and y.shape[1] == 1
    assert data.train.num_samples + data.val.num_samples == 600


def test_tabular_ranks_read_disjoint_shards(ctr_dir: Path) -> None:
    world = 4
    shards = [_data([f"data.path={ctr_dir}", *CTR_OVERRIDES, "data.val_fraction=0.1"], rank=r, world=world) for r in range(world)]
    ids = [np.concatenate([s.train.ids.numpy(), s.val.ids.numpy()]) for s in shards]
    assert sorted(np.concatenate(ids).tolist()) == list(range(600))
    assert [len(i) for i in ids] == [150] * 4


def test_row_range_covers_everything() -> None:
    ranges = [row_range(10, r, 3) for r in range(3)]
    assert ranges == [(0, 4), (4, 7), (7, 10)]


def test_hashing_is_the_same_in_every_process() -> None:
    """Ranks and resumed runs hash in processes of their own: Python's salted str hash would differ."""
    values = ["x", "y", None, "x", "12345", "\u00e9t\u00e9"]
    here = hash_ids(pa.array(values), 1000)
    assert here[0] == here[3] and here.min() >= 0 and here.max() < 1000 and len(set(here.tolist())) == 5
    code = f"import pyarrow as pa; from dltune.data.tabular import hash_ids; print(hash_ids(pa.array({values!r}), 1000).tolist())"
    for salt in ("1", "2"):
        other = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": salt}, capture_output=True, text=True, check=True)
        assert json.loads(other.stdout) == here.tolist()


def test_tabular_csv_and_glob(tmp_path: Path, ctr_dir: Path) -> None:
    table = pq.read_table(ctr_dir / "part-00000.parquet")
    (tmp_path / "csv").mkdir()
    table.to_pandas().to_csv(tmp_path / "csv" / "a.csv", index=False)
    data = _data([f"data.path={tmp_path}/csv/*.csv", *CTR_OVERRIDES])
    assert data.train.num_samples + data.val.num_samples == table.num_rows


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: pq.write_table(pa.table({"I1": [1.0], "I2": [1.0], "I3": [1.0], "C1": ["a"], "C2": ["b"], "lbl": [1]}), d / "part-00001.parquet"), "column 'label' not found in .*part-00001.parquet \\(did you mean 'lbl'"),
        (lambda d: pq.write_table(pa.table({"I1": [1.0], "I2": [1.0], "I3": [1.0], "C1": ["a"], "C2": ["b"], "label": [None]}, schema=pa.schema([("I1", pa.float64()), ("I2", pa.float64()), ("I3", pa.float64()), ("C1", pa.string()), ("C2", pa.string()), ("label", pa.float64())])), d / "part-00002.parquet"), "column 'label' has 1 missing"),
        (lambda d: (d / "part-00001.parquet").write_bytes(b""), "empty file \\(0 bytes\\): .*part-00001.parquet"),
        (lambda d: (d / "part-00001.parquet").write_bytes(b"not parquet at all"), "unreadable parquet file .*part-00001.parquet"),
    ],
    ids=["missing-column", "nan-label", "empty-file", "unreadable"],
)
def test_tabular_bad_input(ctr_dir: Path, mutate, message: str) -> None:
    mutate(ctr_dir)
    with pytest.raises(DataError, match=message):
        _data([f"data.path={ctr_dir}", *CTR_OVERRIDES])


def test_tabular_non_binary_label_and_no_files(tmp_path: Path) -> None:
    write_ctr_parquet(tmp_path / "d", rows=50)
    pq.write_table(pa.table({"I1": [1.0], "I2": [1.0], "I3": [1.0], "C1": ["a"], "C2": ["b"], "label": [3]}), tmp_path / "d" / "part-00009.parquet")
    with pytest.raises(DataError, match="binary labels must be 0 or 1; column 'label' .* has 3"):
        _data([f"data.path={tmp_path}/d", *CTR_OVERRIDES, "data.val_fraction=0.5"])
    with pytest.raises(DataError, match="multiclass labels must be integers in \\[0, 2\\)"):
        _data([f"data.path={tmp_path}/d", *CTR_OVERRIDES, "data.task=multiclass", "data.num_classes=2", "data.val_fraction=0.5"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no parquet or CSV files"):
        _data([f"data.path={tmp_path}/empty", *CTR_OVERRIDES])


def test_synthetic_image_and_tabular() -> None:
    img = _data(["data.name=synthetic", "data.num_samples=64", "data.image_size=8", "data.channels=3"])
    assert img.spec.input_shape == (3, 8, 8) and img.train.num_samples == 64
    tab = _data(["data.name=synthetic", "data.task=binary", "data.num_samples=64", "data.num_features=5"])
    (dense, sparse), y = next(iter(tab.train))
    assert dense.shape[1] == 5 and sparse.dtype == torch.long and tab.spec.task == "binary"
