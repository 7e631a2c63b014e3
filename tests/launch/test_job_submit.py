"""`ray job submit` of a dltune search to a real head started with `ray start --head` on 127.0.0.1,
with token authentication and fake credentials in the environment that must not leak."""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from automl_data import write_split
from conftest import run_cli
from ray_nodes import RAY, ROOT, free_port, kill_processes_mentioning

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FAKE_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKE" + secrets.token_hex(6).upper(),
    "AWS_SECRET_ACCESS_KEY": "fake-aws-" + secrets.token_hex(12),
    "HADOOP_USER_PASSWORD": "fake-hdfs-" + secrets.token_hex(12),
}
SMALL = ["data.name=digits", "model.name=mlp", "model.hidden=[32]", "train.batch_size=32", "train.max_steps_per_epoch=4",
         "train.epochs=2", "tune.searcher=random", "tune.scheduler=fifo", "tune.num_samples=2"]


@dataclass
class Head:
    env: dict[str, str]
    dashboard: str
    token: str
    temp_dir: str


@pytest.fixture
def head():
    """`ray start --head` on 127.0.0.1 with token auth, the fake credentials in its environment."""
    temp_dir = tempfile.mkdtemp(prefix="dlt-head-")  # short: Ray's unix sockets live under it
    token = secrets.token_hex(16)
    gcs, dashboard = free_port(), free_port()
    env = dict(os.environ, **FAKE_SECRETS, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_ADDRESS=f"127.0.0.1:{gcs}",
               PATH=f"{Path(RAY).parent}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1")
    ports = {"--ray-client-server-port": free_port(), "--dashboard-agent-listen-port": free_port(),
             "--dashboard-agent-grpc-port": free_port(), "--metrics-export-port": free_port(), "--runtime-env-agent-port": free_port()}
    args = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}", "--num-cpus=4", f"--temp-dir={temp_dir}", "--disable-usage-stats",
            *[f"{flag}={port}" for flag, port in ports.items()]]
    started = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stderr
        yield Head(env=env, dashboard=f"http://127.0.0.1:{dashboard}", token=token, temp_dir=temp_dir)
    finally:
        kill_processes_mentioning(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _job(head: Head, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RAY, "job", *args, "--address", head.dashboard], env=head.env, capture_output=True, text=True, timeout=120)


def test_a_submitted_search_and_runs_from_a_shell_leak_no_secret(head: Head, tmp_path: Path) -> None:
    """A search sent with `ray job submit` (its driver runs with the head's environment, which
    holds the credentials), then a 2-worker Ray Train run and a parallel AutoML job run straight
    from a shell whose environment holds them: what Ray keeps about the job, Ray's whole temp dir
    (session logs, runtime-env agent records), every output and the consoles stay free of them."""
    texts = _submitted_search(head, tmp_path / "shared")
    out = tmp_path / "out"
    trained = run_cli("train", "configs/quickstart.yaml", "--launcher", "ray", "scaling.num_workers=2", "train.epochs=1",
                      "train.max_steps_per_epoch=4", f"output.dir={out}", "output.experiment=trained", env=head.env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    _built_in_loop_trained_on_two_workers(out / "trained", trained)
    train, test = write_split("breast_cancer", tmp_path / "data")
    automl = subprocess.run([sys.executable, "-m", "dltune.automl.cli", "--task_id", "par", "--train_data", str(train), "--test_data", str(test),
                             "--output_path", str(out), "--time_budget", "10", "--estimator_list", "lgbm", "--metric", "roc_auc", "--quiet",
                             "--estimator_kwargs", '{"n_jobs": 1, "n_concurrent_trials": 2}'],
                            cwd=ROOT, env=head.env, capture_output=True, text=True, timeout=300)
    assert automl.returncode == 0, automl.stderr[-3000:]
    assert (out / "par" / "metrics.json").is_file()
    files = [p for root in (Path(head.temp_dir), tmp_path) for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any("runtime_env" in p.name for p in files), "Ray's runtime-env agent log was not found"
    assert any(p.name.startswith("job-driver-") for p in files), "the submitted search's driver log was not found"
    texts.update({str(p): text for p in files if (text := _read_if_there(p)) is not None})
    texts["shell console"] = "".join(proc.stdout + proc.stderr for proc in (trained, automl)).encode()
    for value in [*FAKE_SECRETS.values(), head.token]:
        leaked = [name for name, text in texts.items() if value.encode() in text]
        assert not leaked, f"a secret leaked into {leaked}"


def _built_in_loop_trained_on_two_workers(exp: Path, proc: subprocess.CompletedProcess) -> None:
    """The built-in loop on two Ray Train workers: disjoint shards, Ray Train's checkpoints naming
    rank 0's files, and the console free of Ray's per-report lines, which ray.log keeps."""
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_disjoint"] is True
    named = [p.read_text() for p in (exp / "ray_train").rglob("experiment_checkpoint.txt")]
    assert named == ["checkpoints/epoch_0001.pt"] and not any((exp / "ray_train").rglob("*.pt"))
    console = proc.stdout + proc.stderr
    assert "epoch 1/1" in console and "outputs:" in console
    for noise in ("Reporting training result", "Attempting to start training worker group"):
        assert noise not in console, noise
    assert "Reporting training result" in (exp / "ray.log").read_text()


def _submitted_search(head: Head, out: Path) -> dict[str, bytes]:
    """Submit a small search with examples/ray_job_submit.sh, wait for it and check its outputs;
    the job's record, logs and the submit command's output, by name."""
    job_id = f"dltune-test-{secrets.token_hex(4)}"
    # a head just started may not have its job agent yet: the script tries again while Ray says so
    submit = subprocess.run(
        ["bash", "examples/ray_job_submit.sh", "--address", head.dashboard, "--no-wait", "--submission-id", job_id, "--",
         "tune", "configs/quickstart_tune.yaml", *SMALL, f"output.dir={out}", "output.experiment=submitted"],
        cwd=ROOT, env=head.env, capture_output=True, text=True, timeout=300)
    assert submit.returncode == 0, submit.stderr

    deadline, status = time.monotonic() + 600, ""
    while time.monotonic() < deadline:
        status = _job(head, "status", job_id).stdout.upper()
        if any(state in status for state in ("SUCCEEDED", "FAILED", "STOPPED")):
            break
        time.sleep(3)
    logs = _job(head, "logs", job_id).stdout
    assert "SUCCEEDED" in status, f"{status}\n{logs[-3000:]}"

    exp = out / "submitted"
    with open(exp / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r["stop_reason"] == "completed" for r in rows)
    assert yaml.safe_load((exp / "best_config.yaml").read_text())["output"]["experiment"] == "submitted-best"
    assert json.loads((exp / "summary.json").read_text())["status"] == "finished"

    job_info = subprocess.run([RAY, "list", "jobs", "--detail", "--format", "json"], env=head.env, capture_output=True, text=True, timeout=120)
    assert job_info.returncode == 0, job_info.stderr
    assert job_id in job_info.stdout and "OMP_NUM_THREADS" in job_info.stdout  # the record holds the runtime env we sent
    return {"job record": job_info.stdout.encode(), "job logs": logs.encode(), "submit output": (submit.stdout + submit.stderr).encode()}


def _read_if_there(path: Path) -> bytes | None:
    """A file of a live head's temp dir, read again while Ray rewrites it (its metrics
    service-discovery file is removed and written anew every few seconds); None once it is gone."""
    for _ in range(10):
        try:
            return path.read_bytes()
        except FileNotFoundError:
            time.sleep(0.2)
    return None
