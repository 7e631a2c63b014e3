from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import CTR_OVERRIDES, ROOT, run_cli, write_cifar_batches
from dltune.config import load_config
from dltune.errors import ConfigError
from dltune.launch.local import run_local
from dltune.train.loop import train_loop
from dltune.train.session import LocalSession


def _metrics(exp: Path) -> list[dict]:
    return [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path: Path) -> None:
    proc = run_cli("train", "configs/quickstart.yaml", f"output.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    exp = tmp_path / "quickstart"
    assert f"outputs: {exp}" in proc.stdout and "epoch 15/15" in proc.stdout
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["final_metrics"]["val_acc"] >= 0.90
    for name in ("config.yaml", "metrics.jsonl", "model/model_state.pt", "model/model_scripted.pt"):
        assert (exp / name).is_file(), name
    assert len(_metrics(exp)) == 15 and {"train_loss", "val_loss", "val_acc", "epoch_time_s", "samples_per_s"} <= set(_metrics(exp)[-1])
    scripted = torch.jit.load(str(exp / "model" / "model_scripted.pt"))
    assert scripted(torch.zeros(2, 1, 8, 8)).shape == (2, 10)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(exp / "tensorboard"))
    acc.Reload()
    val_acc = acc.Scalars("val_acc")
    assert [e.step for e in val_acc] == list(range(1, 16))
    assert val_acc[-1].value == pytest.approx(summary["final_metrics"]["val_acc"], rel=1e-6)

    again = run_cli("train", "configs/quickstart.yaml", f"output.dir={tmp_path}")
    assert again.returncode == 2 and "already holds a finished run" in again.stderr


class Interrupt(Exception):
    pass


class StopAfter(LocalSession):
    """A session that dies right after epoch ``k`` has been reported (like Ctrl-C)."""

    def __init__(self, cfg, k: int) -> None:
        super().__init__(cfg, verbose=False)
        self.k = k

    def report(self, metrics, state) -> None:
        super().report(metrics, state)
        if metrics["epoch"] == self.k:
            raise Interrupt


@pytest.mark.slow
def test_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    common = [f"output.dir={tmp_path}", "train.epochs=4", "model.dropout=0.2", "optim.schedule=cosine", "model.name=cnn", "model.width=8"]
    full = run_local(load_config(None, [*common, "output.experiment=full"]), verbose=False)
    cfg = load_config(None, [*common, "output.experiment=cut"])
    with pytest.raises(Interrupt):
        train_loop(cfg, StopAfter(cfg, 2))
    exp = tmp_path / "cut"
    assert not (exp / "summary.json").exists()
    refused = run_cli("train", "configs/quickstart.yaml", *common, "output.experiment=cut")
    assert refused.returncode == 2 and "unfinished run (no summary.json)" in refused.stderr
    resumed = run_local(cfg, resume=True, verbose=False)
    exact = ("epoch", "train_loss", "val_loss", "val_acc", "lr")  # timings differ, learning must not
    assert {k: resumed["final_metrics"][k] for k in exact} == {k: full["final_metrics"][k] for k in exact}
    full_m = _metrics(tmp_path / "full")
    cut_m = _metrics(exp)
    assert [m["epoch"] for m in cut_m] == [1, 2, 3, 4]
    assert [m["val_loss"] for m in cut_m] == pytest.approx([m["val_loss"] for m in full_m])


@pytest.mark.slow
def test_ctr_deepfm_trains_in_process(ctr_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(None, [f"data.path={ctr_dir}", *CTR_OVERRIDES, f"output.dir={tmp_path}", "train.epochs=8", "train.batch_size=32", "optim.lr=0.01"])
    out = run_local(cfg, verbose=False)
    final = out["final_metrics"]
    assert final["val_auc"] > 0.8 and 0 < final["val_logloss"] < 0.7
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["exported"]["torchscript"]


def test_precision_rules_on_cpu(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.precision: fp16 needs a GPU"):
        run_local(load_config(None, [f"output.dir={tmp_path}", "train.precision=fp16", "train.epochs=1"]), verbose=False)
    out = run_local(load_config(None, [f"output.dir={tmp_path}", "output.experiment=bf16", "train.precision=bf16", "train.epochs=1", "train.max_steps_per_epoch=3"]), verbose=False)
    assert out["precision"] == "bf16" and out["final_metrics"]["epoch"] == 1


def test_gpu_request_without_gpu_is_refused(tmp_path: Path, cli_here) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = cli_here("train", "configs/quickstart.yaml", f"output.dir={tmp_path}", "scaling.use_gpu=true")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "dltune: error: scaling.use_gpu: needs a GPU; none found (set scaling.use_gpu=false or train.device=cpu)"


@pytest.mark.slow
def test_dist_train_sh_two_gloo_ranks_read_disjoint_shards(ctr_dir: Path, tmp_path: Path) -> None:
    env = dict(os.environ, NNODES="1", NODE_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29400 + os.getpid() % 500), PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="")
    cmd = ["bash", str(ROOT / "scripts" / "dist_train.sh"), "2", "--config", str(ROOT / "configs" / "ctr_deepfm.yaml"),
           f"data.path={ctr_dir}", "data.val_path=", "data.feature_cols=I1,I2,I3", "data.sparse_cols=C1,C2", "data.label_cols=label",
           "data.hash_buckets=64", "model.hidden=[16]", "model.embed_dim=4", "train.epochs=2", "train.batch_size=32", f"output.dir={tmp_path}", "scaling.num_workers=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = tmp_path / "ctr-deepfm"
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_disjoint"] is True
    assert sum(summary["train_samples_per_rank"]) == summary["train_samples"] and min(summary["train_samples_per_rank"]) > 0
    assert len(_metrics(exp)) == 2 and "val_auc" in _metrics(exp)[-1]
    assert proc.stdout.count("epoch 2/2") == 1  # only rank 0 prints and writes


def test_the_cause_dug_out_of_rays_wrappers_is_raised_chained_to_them_for_debug() -> None:
    from dltune.errors import DataError
    from dltune.launch.ray_errors import raise_root_cause

    class WorkerGroupError(RuntimeError):  # Ray Train's shape: the workers' exceptions in a dict
        def __init__(self, failures: dict[int, BaseException]) -> None:
            super().__init__("Training failed due to worker errors: Traceback ... data_batch_2")
            self.worker_failures = failures

    cause = DataError("not a CIFAR-10 python batch: data_batch_2")
    wrapper = WorkerGroupError({0: cause})
    with pytest.raises(DataError) as raised:
        raise_root_cause(wrapper)
    assert raised.value is cause and raised.value.__cause__ is wrapper  # --debug prints Ray's text with the worker's traceback

    inner = OSError("disk gone")
    below = DataError("cannot read data_batch_2")
    below.__cause__ = inner
    above = RuntimeError("wrapped")
    above.__cause__ = below  # the cause already sits in the chain: raised as it is, with no loop back up
    with pytest.raises(DataError) as raised:
        raise_root_cause(above)
    assert raised.value is below and raised.value.__cause__ is inner and inner.__cause__ is None


@pytest.mark.slow
@pytest.mark.ray
def test_a_corrupt_file_read_in_ray_train_workers_is_named_in_the_last_line(ray_cluster, tmp_path: Path, capfd: pytest.CaptureFixture,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from dltune import cli

    folder = write_cifar_batches(tmp_path / "data")
    batch = folder / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:200])  # a copy cut short: it exists, so only reading it fails, in the workers
    monkeypatch.chdir(ROOT)
    capfd.readouterr()
    code = cli.main(["train", "configs/quickstart.yaml", "--launcher", "ray", "scaling.num_workers=2", "data.name=cifar10", f"data.path={tmp_path / 'data'}",
                     "model.name=mlp", "train.epochs=1", f"output.dir={tmp_path}"])
    err = capfd.readouterr().err  # the file descriptor: what Ray's own code prints to it too
    assert code == 2, err[-3000:]  # bad input, found by the workers
    last = err.strip().splitlines()[-1]
    assert last.startswith("dltune: error: not a CIFAR-10 python batch: ") and str(batch) in last, err[-3000:]
    assert "WorkerGroupError" not in last
    assert "Traceback" not in err, err[-3000:]  # the workers' tracebacks are in the experiment's log, not here
    ray_log = (tmp_path / "quickstart" / "ray.log").read_text()
    assert "Traceback" in ray_log and "pickle data was truncated" in ray_log


def test_the_metrics_a_search_may_name_are_what_the_built_in_loop_reports(tmp_path: Path) -> None:
    from dltune import api
    from dltune.preflight import BUILTIN_METRICS

    api.train("configs/quickstart.yaml", [f"output.dir={tmp_path}", "train.epochs=1", "train.max_steps_per_epoch=2"], verbose=False)
    reported = set(json.loads((tmp_path / "quickstart" / "metrics.jsonl").read_text().splitlines()[0])) - {"epoch"}
    assert reported <= set(BUILTIN_METRICS) and {"train_loss", "val_loss", "val_acc"} <= reported


def test_the_ray_launcher_may_not_reserve_more_gpus_than_the_machine_has(no_ray, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from dltune.config import load_config
    from dltune.errors import ConfigError
    from dltune.preflight import check_gpus

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = load_config("configs/quickstart.yaml", ["scaling.launcher=ray", "scaling.use_gpu=true", "scaling.num_workers=2"])
    with pytest.raises(ConfigError, match=r"^scaling.num_workers: 2 workers x scaling.gpus_per_worker=1 need 2 GPUs; this machine has 1$"):
        check_gpus(cfg, on_ray=True)
    check_gpus(load_config("configs/quickstart.yaml", ["scaling.launcher=ray", "scaling.use_gpu=true", "scaling.num_workers=2",
                                                       "scaling.gpus_per_worker=0.5"]), on_ray=True)  # two workers share the one GPU
    from dltune.preflight import gpus_for_workers

    assert [gpus_for_workers(5, 0.4), gpus_for_workers(4, 0.5), gpus_for_workers(3, 1), gpus_for_workers(2, 1.5), gpus_for_workers(10, 0.1)] == [3, 2, 3, 4, 1]
