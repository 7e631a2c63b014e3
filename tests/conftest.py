"""Shared fixtures: tiny datasets written by the tests, CLI runner, Ray lifecycle."""
from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m dltune ARGS`` as a user would; returns the finished process."""
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run([sys.executable, "-m", "dltune", *args], capture_output=True, text=True, env=full_env, cwd=cwd or ROOT, timeout=timeout)


@pytest.fixture
def cli_here(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Callable[..., subprocess.CompletedProcess]:
    """``dltune ARGS`` in this process, from the project root: its exit code and what it printed.
    For where a cold process would only add torch's import (and a Ray start)."""
    from dltune import cli

    monkeypatch.chdir(ROOT)

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run


def kill_search_when(args: list[str], ready: Callable[[], bool], user_root: Path, timeout: float = 300) -> None:
    """Start ``python -m dltune ARGS`` on a local Ray of its own (experiment state saved every
    second), wait until ``ready()``, give the experiment state two seconds to record that, then
    SIGKILL the driver and the Ray it started, as a lost head node would. Killed whatever happens."""
    env = dict(os.environ, TUNE_GLOBAL_CHECKPOINT_S="1", RAY_ADDRESS="", OMP_NUM_THREADS="1", PYTHONPATH=str(user_root))
    proc = subprocess.Popen([sys.executable, "-m", "dltune", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.5)
        assert proc.poll() is None, "the search ended before the kill"
        assert ready(), f"the search was not ready for the kill after {timeout:g} s"
        time.sleep(2)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def resumed_here(args: list[str], request: pytest.FixtureRequest) -> subprocess.CompletedProcess:
    """``dltune ARGS --resume`` in this process, as a new driver on the shared Ray (the killed
    driver's Ray went with it, as a lost head node's would; experiment state saved every second, as
    the killed driver's was): its exit code and what it printed. A second cold CLI and Ray would
    test nothing more, at the cost of a Ray start and torch's import. A simulated objective's epochs
    take no time from here on (user_package.simulated): nothing waits for them any more."""
    output_dir = next(arg.split("=", 1)[1] for arg in args if arg.startswith("output.dir="))
    Path(output_dir, "RESUMED").touch()
    request.getfixturevalue("ray_cluster")
    request.getfixturevalue("monkeypatch").setenv("TUNE_GLOBAL_CHECKPOINT_S", "1")
    return request.getfixturevalue("cli_here")(*args, "--resume")


def write_ctr_parquet(path: Path, rows: int, seed: int = 0, row_group_size: int | None = None, files: int = 1) -> list[Path]:
    """Dense I1..I3, sparse C1..C2 (strings), binary label with signal; ``files`` part files."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    written = []
    per_file = rows // files
    for i in range(files):
        n = per_file if i < files - 1 else rows - per_file * (files - 1)
        dense = rng.normal(size=(n, 3))
        cats = rng.integers(0, 20, size=(n, 2))
        score = dense @ np.array([1.5, -1.0, 0.5]) + (cats[:, 0] % 3 == 0) * 1.5 - (cats[:, 1] % 4 == 0)
        label = (score + rng.normal(scale=0.3, size=n) > 0).astype(np.int64)
        table = pa.table({
            "I1": dense[:, 0], "I2": dense[:, 1], "I3": dense[:, 2],
            "C1": [f"a{c}" for c in cats[:, 0]], "C2": [f"b{c}" for c in cats[:, 1]],
            "label": label,
        })
        out = path / f"part-{i:05d}.parquet"
        pq.write_table(table, out, row_group_size=row_group_size or n)
        written.append(out)
    return written


CTR_OVERRIDES = ["data.name=tabular", "data.feature_cols=I1,I2,I3", "data.sparse_cols=C1,C2", "data.label_cols=label", "data.hash_buckets=64", "model.name=deepfm", "model.hidden=[16]"]


def write_cifar_batches(root: Path, per_batch: int = 8, seed: int = 0) -> Path:
    """A CIFAR-10 python-batch directory (data_batch_1..5, test_batch, batches.meta) of random images."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, size=per_batch).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return folder


@pytest.fixture
def ctr_dir(tmp_path: Path) -> Path:
    write_ctr_parquet(tmp_path / "ctr", rows=600, row_group_size=100, files=3)
    return tmp_path / "ctr"


@pytest.fixture(scope="session")
def user_root(tmp_path_factory: pytest.TempPathFactory):
    """tests/user_package.py's byo_user package on disk and on this process's path."""
    from user_package import forget_user_package, write_user_package

    root = write_user_package(tmp_path_factory.mktemp("user"))
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))
    forget_user_package()


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch):
    """A real S3 endpoint (moto's server) on loopback with one bucket, ``lake``; credentials only in
    the environment, which the processes a test starts inherit."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "AKIATESTKEY0001", "AWS_SECRET_ACCESS_KEY": "s3-secret-value-42",
               "AWS_REGION": "us-east-1"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket="lake")
        yield env
    finally:
        server.stop()


def shared_ray() -> object:
    """This process's local Ray for in-process searches, 2 logical CPUs whatever the machine has
    (as many as the cores CI has: each more concurrent trial is one more worker process importing
    Ray Tune and torch, the bulk of a small search's CPU time):
    started by the first test that needs it and kept for the next (a test that needs none shuts
    it down: no_ray). Its workers import user_root's package, so user_root is made first."""
    import ray

    from dltune.launch.ray_cluster import start_local_ray

    if not ray.is_initialized():
        start_local_ray(num_cpus=2, log_to_driver=False)
    return ray


@pytest.fixture(scope="session")
def _ray_shut_down_at_the_end():
    yield
    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()


@pytest.fixture
def ray_cluster(user_root: Path, _ray_shut_down_at_the_end: None):
    return shared_ray()


@pytest.fixture
def no_ray(_ray_shut_down_at_the_end: None) -> None:
    """This process is connected to no Ray when the test starts (the shared one goes down)."""
    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()


def pbt_exploits(exp: Path) -> list[list]:
    """[target tag, donor tag, target iteration, donor iteration, donor config, new config] per exploit."""
    path = exp / "pbt_global.txt"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def results_rows(exp: Path) -> list[dict[str, str]]:
    """A search's results.csv, a dict per trial."""
    with open(exp / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def trial_results(exp: Path) -> dict[str, list[dict]]:
    out = {}
    for trial_dir in exp.iterdir():
        result = trial_dir / "result.json"
        if result.is_file():
            lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
            if lines:
                out[lines[0]["trial_id"]] = lines
    return out


# --- process exit ------------------------------------------------------------------------------
# This process starts and stops Ray several times (module fixtures, searches that start their own
# Ray). After that, the interpreter's final teardown can crash in Ray's native core worker
# (ray-project/ray#31145: threads that outlive a session touch its freed state), turning a run
# whose every result is already reported into exit 139. Leave without that teardown, keeping
# pytest's own exit status.
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _EXIT_STATUS and "ray" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
