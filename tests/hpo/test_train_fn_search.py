"""dltune tune over a user's own training function, objective, searcher and scheduler
(tests/user_package.py's byo_user package and tests/objectives.py) on the shared local Ray."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import pbt_exploits, results_rows, trial_results
from objectives import curve as objective, torch_free
from dltune import api, cli

BYO = ["train.fn=byo_user.train:train", "params={lr: 0.1, hidden: 8}"]


def _search(tmp_path: Path, name: str, *overrides: str, fn=None):
    return api.tune(None, [f"output.dir={tmp_path}", f"output.experiment={name}", "tune.metric=val_loss", "tune.mode=min", *overrides], verbose=False, fn=fn)


@pytest.mark.slow
@pytest.mark.ray
def test_asha_over_a_train_fn(ray_cluster, tmp_path: Path) -> None:
    result = _search(tmp_path, "asha", *BYO, "tune.space={params.lr: {loguniform: [0.0005, 0.3]}}", "tune.searcher=random", "tune.scheduler=asha",
                     "tune.num_samples=4", "train.epochs=4", "tune.grace_period=1", "tune.reduction_factor=2", "tune.seed=2")
    exp = tmp_path / "asha"
    rows = results_rows(exp)
    assert len(rows) == 4 and result.summary["error"] == 0 and {r["stop_reason"] for r in rows} <= {"completed", "early_stopped"}
    assert any(r["stop_reason"] == "completed" and r["epochs"] == "4" for r in rows)
    best = min(rows, key=lambda r: float(r["best_val_loss"]))
    cfg = yaml.safe_load((exp / "best_config.yaml").read_text())
    assert cfg["train"]["fn"] == "byo_user.train:train" and cfg["params"]["lr"] == pytest.approx(float(best["params.lr"])) and cfg["params"]["hidden"] == 8
    assert result.summary["best_model"]["state_dict"] == "best_model/model_state.pt"  # the checkpoint's "model" state dict
    assert sorted(p.name for p in (exp / "tensorboard").iterdir()) == sorted(r["trial_id"] for r in rows)


@pytest.mark.slow
@pytest.mark.ray
def test_pbt_over_two_worker_trials_of_a_train_fn(ray_cluster, tmp_path: Path) -> None:
    result = _search(tmp_path, "pbt", *BYO, "tune.space={params.lr: {loguniform: [0.001, 0.3]}}", "tune.searcher=random", "tune.scheduler=pbt",
                     # one perturbation, at epoch 2: every further one restarts both worker groups (about 15 s each here)
                     "tune.num_samples=2", "train.epochs=3", "tune.perturbation_interval=2", "tune.quantile_fraction=0.5", "tune.resample_probability=0.5",
                     "tune.synch=true", "tune.seed=1", "scaling.launcher=ray", "scaling.num_workers=2",
                     # both trials' two workers at once on the tests' 2 logical CPUs: synchronous PBT waits for both
                     "scaling.cpus_per_worker=0.5")
    exp = tmp_path / "pbt"
    exploits = pbt_exploits(exp)
    assert exploits, "PBT performed no exploit"
    results = [r for history in trial_results(exp).values() for r in history]
    checked = 0
    for *_, new_config in exploits:
        restored = [r for r in results if r["config"]["params.lr"] == new_config["params.lr"]]
        if restored:  # an exploit at the last epoch has no epoch after it
            first = min(restored, key=lambda r: r["timestamp"])
            assert first["donor_epoch"] == first["epoch"] - 1 > 0  # load_checkpoint() returned the donor's state
            assert first["lr"] == pytest.approx(new_config["params.lr"], rel=1e-9)  # and params holds the mutated lr
            checked += 1
    assert checked >= 1
    assert result.summary["error"] == 0 and len(results_rows(exp)) == 2
    # each worker group's result.json keeps each epoch once across PBT's pauses and restarts, and ends at train.epochs
    histories = {tid: [r["epoch"] for r in history] for tid, history in trial_results(exp).items()}
    assert all(seen == sorted(set(seen)) and seen[-1] == 3 for seen in histories.values()), (histories, exploits)


@pytest.mark.slow
@pytest.mark.ray
def test_a_users_searcher_and_scheduler_by_path(ray_cluster, tmp_path: Path) -> None:
    _search(tmp_path, "plugins", *BYO, "tune.space={params.lr: {loguniform: [0.001, 0.3]}}", "tune.num_samples=3", "train.epochs=4",
            "tune.searcher=byo_user.plugins:ListSearcher", "tune.searcher_kwargs={key: params.lr, values: [0.01, 0.05, 0.2]}",
            "tune.scheduler=byo_user.plugins:StopAt", "tune.scheduler_kwargs={at: 2}")
    rows = results_rows(tmp_path / "plugins")
    assert sorted(float(r["params.lr"]) for r in rows) == [0.01, 0.05, 0.2]
    assert {(r["epochs"], r["stop_reason"]) for r in rows} == {("2", "early_stopped")}


# The schedulers no other search runs from start to end over a train fn (ASHA, HyperBand and BOHB's
# run in test_fidelity.py, PBT in test_tune.py and below, FIFO everywhere).
@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize(("searcher", "scheduler"), [("random", "median"), ("random", "pb2")])
def test_the_median_rule_and_pb2_run_a_train_fn(ray_cluster, tmp_path: Path, searcher: str, scheduler: str) -> None:
    result = api.tune(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}}", "tune.metric=loss", "tune.mode=min", "tune.num_samples=4", "train.epochs=4",
                             f"tune.searcher={searcher}", f"tune.scheduler={scheduler}", "tune.perturbation_interval=1", "tune.grace_period=1",
                             "tune.reduction_factor=2", f"output.dir={tmp_path}", "output.experiment=s"], verbose=False, fn=objective)
    rows = results_rows(tmp_path / "s")
    assert len(rows) == 4 and result.summary["error"] == 0 and result.summary["scheduler"] == scheduler
    assert any(r["epochs"] == "4" for r in rows) and all(1 <= int(r["epochs"]) <= 4 for r in rows)


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize(("sampler", "concurrent"), [("tpe", 1), ("cmaes", 1), ("gp", 2)])
def test_every_optuna_sampler_searches_under_asha(ray_cluster, tmp_path: Path, sampler: str, concurrent: int) -> None:
    # Two keys and two start-up trials, so that each sampler's own model proposes the last three
    # (CMA-ES falls back to random sampling in one dimension, GP before its 10th trial by default);
    # GP asks its later trials while another runs, which it models at the finished ones' mean.
    result = api.tune(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}, params.y: {uniform: [-1.0, 1.0]}}", "tune.metric=loss", "tune.mode=min",
                             "tune.num_samples=5", "train.epochs=3", "tune.searcher=optuna", f"tune.sampler={sampler}",
                             "tune.searcher_kwargs={n_startup_trials: 2}", "tune.scheduler=asha", f"tune.max_concurrent_trials={concurrent}",
                             f"output.dir={tmp_path}", "output.experiment=s"], verbose=False, fn=objective)
    assert result.summary["sampler"] == sampler and result.summary["error"] == 0 and len(result.rows) == 5
    assert result.best_metric == pytest.approx(min(r.best for r in result.rows)) and any(r.epochs == 3 for r in result.rows)


@pytest.mark.slow
@pytest.mark.ray
def test_a_plain_objective_through_the_python_api(ray_cluster, tmp_path: Path) -> None:
    result = api.tune(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}}", "tune.metric=loss", "tune.mode=min", "tune.num_samples=6",
                             "train.epochs=3", "tune.searcher=optuna", f"output.dir={tmp_path}", "output.experiment=objective"], verbose=False, fn=objective)
    exp = tmp_path / "objective"
    assert len(results_rows(exp)) == 6 and result.summary["error"] == 0
    assert result.best_metric == pytest.approx((result.best_config.params["x"] - 2.0) ** 2 + 1 / 3)
    assert yaml.safe_load((exp / "best_config.yaml").read_text())["train"]["fn"] == "objectives:curve"
    assert "holds no 'model' state dict" in result.summary["best_model"]["note"]


@pytest.mark.slow
@pytest.mark.ray
def test_a_torch_free_objective_runs_in_workers_that_never_import_torch(ray_cluster, tmp_path: Path) -> None:
    result = api.tune(None, ["tune.space={params.x: {uniform: [-1.0, 1.0]}}", "tune.metric=loss", "tune.num_samples=3", "train.epochs=1",
                             f"output.dir={tmp_path}", "output.experiment=torchless"], verbose=False, fn=torch_free)
    assert len(result.rows) == 3 and not any(row.result.metrics["torch_loaded"] for row in result.rows)


@pytest.mark.slow
@pytest.mark.ray
def test_a_search_whose_every_trial_fails_says_so_and_exits_1(ray_cluster, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["tune", "configs/quickstart_tune.yaml", "train.fn=byo_user.train:fails", "tune.space={params.lr: {uniform: [0.1, 0.2]}}",
                     "tune.num_samples=2", "tune.searcher=random", "tune.scheduler=fifo", f"output.dir={tmp_path}"])
    proc = capsys.readouterr()
    exp = tmp_path / "quickstart_tune"
    assert code == 1
    last = proc.err.strip().splitlines()[-1]
    assert last.startswith("dltune: failed: 2 of 2 trials failed: RuntimeError: the user's code broke on rank 0 (") and "byo_user/train.py:" in last
    assert json.loads((exp / "summary.json").read_text())["status"] == "failed"
    assert not (exp / "best_config.yaml").exists() and "best_config.yaml" not in proc.out
    outputs = next(line for line in proc.out.splitlines() if line.startswith("outputs: "))
    assert not (exp / "tensorboard").exists() and "tensorboard/" not in outputs  # the line names only what is there
    rows = results_rows(exp)
    assert all(r["error"].startswith("RuntimeError: the user's code broke on rank 0 (") and r["restarts"] == "0" for r in rows)


@pytest.mark.slow
@pytest.mark.ray
def test_a_search_where_some_trials_fail_warns_and_keeps_the_rest(ray_cluster, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    result = _search(tmp_path, "partial", "train.fn=byo_user.train:fails_above", "tune.space={params.lr: {grid: [0.05, 0.2]}}", "tune.searcher=grid",
                     "tune.num_samples=1", "train.epochs=1")
    assert result.summary["status"] == "partial" and result.summary["error"] == 1 and result.best_config.params["lr"] == 0.05
    assert "dltune: warning: 1 of 2 trials failed: FloatingPointError: lr 0.2 diverged (" in capsys.readouterr().err
