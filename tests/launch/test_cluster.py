"""dltune tune on a real multi-node Ray cluster (separate network namespaces, see ray_nodes.py):
trials across nodes, trials kept off the head, and losing a training worker, the driver or a node."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import results_rows, trial_results
from dltune.hpo.trial import WORKER_RESTARTS
from ray_nodes import ROOT, NamespaceCluster, kill_pid, namespaces_available, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.ray, pytest.mark.slow]

SMALL = ["data.name=digits", "model.name=mlp", "model.hidden=[32]", "train.batch_size=32", "train.max_steps_per_epoch=6",
         "tune.metric=val_acc", "tune.mode=max", "tune.searcher=random", "tune.scheduler=fifo",
         "tune.space={optim.lr: {loguniform: [0.001, 0.05]}}", "tune.seed=0"]
DDP = ["scaling.launcher=ray", "scaling.num_workers=2", "scaling.cpus_per_worker=1"]
TRAIN_WORKER = "RayTrainWorker"


@pytest.fixture(scope="module")
def cluster():
    reason = namespaces_available()
    if reason:
        pytest.skip(f"multi-node tests need network namespaces: {reason}")
    nodes = NamespaceCluster()
    try:
        nodes.start_node(cpus=1)
        nodes.start_node(cpus=1, resources={"worker_node": 1})
        yield nodes
    finally:
        nodes.shutdown()


def _tune_args(out: Path, name: str, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "dltune", "tune", "configs/quickstart_tune.yaml", *SMALL, f"output.dir={out}", f"output.experiment={name}", *overrides]


def _start(cluster: NamespaceCluster, args: list[str], **env: str) -> subprocess.Popen:
    """`dltune tune` as a driver on the head node."""
    return subprocess.Popen(cluster.exec_args(cluster.head, *args), cwd=ROOT, env={**cluster.env(), **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _epochs_reported(exp: Path) -> dict[str, list[int]]:
    """Epochs each trial reported to Tune, in order (Ray's per-trial result.json)."""
    return {trial_id: [r["epoch"] for r in history] for trial_id, history in trial_results(exp).items()}


def _any_epoch_done(exp: Path) -> bool:
    return any(_epochs_reported(exp).values()) if exp.exists() else False


def _assert_complete(exp: Path, trials: int, epochs: int) -> list[dict[str, Any]]:
    rows = results_rows(exp)
    assert len(rows) == trials and len({r["trial_id"] for r in rows}) == trials  # none lost, none twice
    assert all(r["stop_reason"] == "completed" and int(r["epochs"]) == epochs for r in rows), rows
    for name, epochs_seen in _epochs_reported(exp).items():
        assert epochs_seen == sorted(epochs_seen) and epochs_seen[-1] == epochs, (name, epochs_seen)  # resumed, never restarted
    return rows


def test_ddp_trials_span_both_nodes_and_survive_a_lost_training_worker_then_a_lost_node(cluster: NamespaceCluster, tmp_path: Path) -> None:
    """One DDP trial: a training worker killed restarts the group from its checkpoint; then its
    node's raylet killed, and a replacement node started as an autoscaler would, the trial goes
    on from its checkpoint again. It ends complete, each epoch reported once."""
    exp = tmp_path / "losses"
    # result.json reaches the experiment dir within a second; an epoch takes a quarter second here, so 30 leave time to kill
    # the node after the restart
    proc = _start(cluster, _tune_args(tmp_path, "losses", *DDP, "scaling.max_failures=3", "tune.max_failures=3", "tune.num_samples=1",
                                      "train.epochs=30"), TUNE_GLOBAL_CHECKPOINT_S="1")
    # one CPU per node: the two DDP workers of a trial can only run on two nodes at once
    wait_for(lambda: all(cluster.find_process(node, TRAIN_WORKER) for node in cluster.nodes[:2]) or proc.poll() is not None,
             timeout=300, what="a training worker on each node")
    wait_for(lambda: _any_epoch_done(exp) or proc.poll() is not None, timeout=300, what="the first epoch")
    victims = cluster.find_process(cluster.nodes[1], TRAIN_WORKER)
    assert victims and proc.poll() is None, proc.communicate()[0][-4000:] if proc.poll() is not None else victims
    for pid in victims:
        kill_pid(pid)
    # epochs the group reported before it saw the kill do not count: rank 0 tags each report with its group's restarts
    wait_for(lambda: _restarted(exp) or proc.poll() is not None, timeout=300, what="an epoch from the restarted group")
    assert proc.poll() is None, proc.communicate()[0][-4000:]
    for pid in cluster.find_process(cluster.nodes[1], "raylet"):
        kill_pid(pid)
    cluster.start_node(cpus=1, resources={"worker_node": 1})  # the replacement an autoscaler would bring
    out = _finish(proc)
    assert "2 Ray Train workers" in out
    (row,) = _assert_complete(exp, trials=1, epochs=30)
    assert int(row["restarts"]) >= 2, (row, _epochs_reported(exp))


def _restarted(exp: Path) -> bool:
    return any(r.get(WORKER_RESTARTS, 0) >= 1 for history in trial_results(exp).values() for r in history)


def test_avoid_head_keeps_trials_off_the_head(cluster: NamespaceCluster, tmp_path: Path) -> None:
    out = _finish(_start(cluster, _tune_args(tmp_path, "off_head", "scaling.avoid_head=true", "tune.num_samples=3", "train.epochs=1")))
    assert "concurrent trials: 1" in out  # planned from the worker nodes' CPUs, not the head's
    exp = tmp_path / "off_head"
    _assert_complete(exp, trials=3, epochs=1)
    node_ips = {json.loads(line)["node_ip"] for result in exp.glob("*/result.json") for line in result.read_text().splitlines() if line.strip()}
    assert node_ips and cluster.head.address not in node_ips  # the worker node (a replacement, after the node-loss test)


def test_driver_sigkill_then_resume_reruns_nothing_finished(cluster: NamespaceCluster, tmp_path: Path) -> None:
    last_epoch = 20
    exp = tmp_path / "driver_loss"
    # long enough that the kill lands mid-search: trials reuse one worker process, so short ones take a tenth of a second
    args = _tune_args(tmp_path, "driver_loss", "tune.num_samples=8", f"train.epochs={last_epoch}", "tune.max_concurrent_trials=1")
    proc = _start(cluster, args, TUNE_GLOBAL_CHECKPOINT_S="1")  # result.json reaches the experiment dir within a second
    finished = lambda: exp.exists() and sum(1 for e in _epochs_reported(exp).values() if e and e[-1] == last_epoch) >= 1  # noqa: E731
    wait_for(lambda: finished() or proc.poll() is not None, timeout=300, what="a finished trial")
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {name: list(epochs) for name, epochs in _epochs_reported(exp).items() if epochs and epochs[-1] == last_epoch}
    _finish(_start(cluster, [*args, "--resume"]))
    _assert_complete(exp, trials=8, epochs=last_epoch)
    for name, epochs in done_before.items():
        assert _epochs_reported(exp)[name] == epochs  # a finished trial did not run again
