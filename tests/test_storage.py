from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli, write_ctr_parquet
from dltune import storage
from dltune.config import load_config
from dltune.data import build_datasets


def test_local_list_glob_and_markers(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    for name in ("part-0.parquet", "part-1.parquet", "_SUCCESS", ".part-0.parquet.crc", "notes.txt"):
        (tmp_path / "t" / name).write_text("x")
    got = storage.list_files(str(tmp_path / "t"), (".parquet",))
    assert [Path(p).name for p in got] == ["part-0.parquet", "part-1.parquet"]
    assert [Path(p).name for p in storage.list_files(str(tmp_path / "t" / "part-*.parquet"))] == ["part-0.parquet", "part-1.parquet"]
    assert storage.list_files(str(tmp_path / "t" / "part-1.parquet")) == [str(tmp_path / "t" / "part-1.parquet")]
    with pytest.raises(storage.StorageError, match="no such file or directory"):
        storage.list_files(str(tmp_path / "missing"))


def test_atomic_write_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.json"
    storage.write_text(str(target), "{}")
    storage.write_text(str(target), '{"x": 1}')
    assert target.read_text() == '{"x": 1}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.json"]


def test_redact_env_secrets_and_uri_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HADOOP_USER_PASSWORD", "hunter2-hdfs")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-123456")
    text = "open webhdfs://alice:pa55word@nn:9870/x with hunter2-hdfs and tok-123456"
    assert storage.redact(text) == "open webhdfs://alice:***@nn:9870/x with *** and ***"
    nested = storage.redact({"a": ["hunter2-hdfs"], "password": "plain", "n": 3})
    assert nested == {"a": ["***"], "password": "***", "n": 3}


def test_unsupported_scheme_and_missing_hdfs_client() -> None:
    with pytest.raises(storage.StorageError, match="unsupported storage scheme 'gs://'"):
        storage.filesystem("gs://bucket/x")
    # No Hadoop install here: the error must say what to install or use instead.
    with pytest.raises(storage.StorageError, match="HADOOP_HOME.*webhdfs://"):
        storage.exists("hdfs://namenode:8020/data")


def test_error_lines_never_show_credentials(tmp_path: Path) -> None:
    proc = run_cli("check", "configs/quickstart.yaml", "data.name=tabular", "data.path=webhdfs://alice:topsecret99@127.0.0.1:1/data",
                   "data.feature_cols=a", env={"HADOOP_USER_PASSWORD": "envsecret77"})
    assert proc.returncode == 2
    assert "topsecret99" not in proc.stderr + proc.stdout and "envsecret77" not in proc.stderr + proc.stdout
    assert "alice:***@" in proc.stderr


@pytest.mark.slow
def test_s3_read_write_list_and_tabular(s3_server: dict[str, str], tmp_path: Path) -> None:
    storage.write_text("s3://lake/dir/a.txt", "hello")
    assert storage.read_text("s3://lake/dir/a.txt") == "hello"
    assert storage.exists("s3://lake/dir/a.txt") and storage.isdir("s3://lake/dir")
    files = write_ctr_parquet(tmp_path / "ctr", rows=200, files=2)
    for f in files:
        storage.write_bytes(f"s3://lake/ctr/{f.name}", f.read_bytes())
    assert storage.list_files("s3://lake/ctr", (".parquet",)) == ["s3://lake/ctr/part-00000.parquet", "s3://lake/ctr/part-00001.parquet"]
    assert storage.list_files("s3://lake/ctr/part-*1.parquet") == ["s3://lake/ctr/part-00001.parquet"]
    cfg = load_config(None, ["data.name=tabular", "data.path=s3://lake/ctr", "data.feature_cols=I1,I2,I3", "data.sparse_cols=C1,C2"])
    data = build_datasets(cfg.data, 32, 0)
    assert data.train.num_samples + data.val.num_samples == 200


@pytest.mark.slow
def test_training_to_s3_keeps_secrets_out(s3_server: dict[str, str], tmp_path: Path) -> None:
    """Outputs on S3 and the terminal never contain the credentials from the environment."""
    proc = run_cli("train", "configs/quickstart.yaml", "train.epochs=2", "output.dir=s3://lake/runs", "output.experiment=q", env={"HADOOP_USER_PASSWORD": "hdfs-pass-31337"})
    assert proc.returncode == 0, proc.stderr
    files = storage.list_files("s3://lake/runs/q")
    names = {f.rsplit("/q/", 1)[1] for f in files}
    assert {"config.yaml", "metrics.jsonl", "summary.json", "model/model_state.pt"} <= names
    assert any(n.startswith("checkpoints/epoch_") for n in names) and any(n.startswith("tensorboard/events") for n in names)
    storage.download_dir("s3://lake/runs/q/tensorboard", str(tmp_path / "tb"))  # uploaded a piece per epoch
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train_loss")] == [1, 2]
    blob = b"".join(storage.read_bytes(f) for f in files) + (proc.stdout + proc.stderr).encode()
    for secret in ("s3-secret-value-42", "hdfs-pass-31337"):
        assert secret.encode() not in blob
    resumed = run_cli("train", "configs/quickstart.yaml", "train.epochs=2", "output.dir=s3://lake/runs", "output.experiment=q", "--resume")
    assert resumed.returncode == 2 and "already finished" in resumed.stderr
