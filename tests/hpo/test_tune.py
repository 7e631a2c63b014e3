"""dltune tune on a real local Ray (2 logical CPUs), a few small digits trials per search."""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import pbt_exploits as _pbt_exploits, results_rows, run_cli, trial_results as _trial_results
from ray_stubs import stub_trial
from dltune.api import tune as tune_api

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SMALL = ["data.name=digits", "model.name=mlp", "model.hidden=[32]", "train.batch_size=32", "train.max_steps_per_epoch=6", "tune.metric=val_acc", "tune.mode=max"]
LR_SPACE = "tune.space={optim.lr: {loguniform: [0.0001, 0.05]}, model.dropout: {uniform: [0.0, 0.3]}}"


def _search(tmp_path: Path, name: str, *overrides: str):
    return tune_api(None, [*SMALL, f"output.dir={tmp_path}", f"output.experiment={name}", *overrides], verbose=False)


# Every searcher's part in a search, in-process, is in test_searcher_contract.py; these two also run
# real trials: the default, and BlendSearch, which reads each trial's config back from its results.
@pytest.mark.parametrize(
    ("searcher", "extra"),
    [
        ("blendsearch", [LR_SPACE, "tune.low_cost={optim.lr: 0.001}"]),
        ("auto", [LR_SPACE]),
    ],
)
def test_each_searcher_completes_and_respects_num_samples(ray_cluster, tmp_path: Path, searcher: str, extra: list[str]) -> None:
    result = _search(tmp_path, searcher, f"tune.searcher={searcher}", "tune.num_samples=3", "train.epochs=2", *extra)
    rows = results_rows(tmp_path / searcher)
    assert len(rows) == 3 == result.summary["trials"]
    # results.csv names each trial as its TensorBoard run does
    assert sorted(r["trial_id"] for r in rows) == sorted(p.name for p in (tmp_path / searcher / "tensorboard").iterdir())
    assert len({r["trial_id"] for r in rows}) == 3
    assert result.summary["error"] == 0 and result.best_metric is not None
    assert "will be ignored" not in (tmp_path / searcher / "ray.log").read_text()  # no setting dltune passed is dropped by Ray
    if searcher == "auto":
        assert (result.summary["searcher"], result.summary["scheduler"]) == ("optuna", "optuna_hyperband") and "multi-fidelity" in result.summary["reason"]


def test_asha_stops_weak_trials_early_and_outputs_read_back(ray_cluster, tmp_path: Path) -> None:
    result = _search(tmp_path, "asha", "tune.searcher=random", "tune.scheduler=asha", "tune.num_samples=8", "train.epochs=6",
                     "tune.grace_period=1", "tune.reduction_factor=2", "tune.space={optim.lr: {loguniform: [0.00001, 0.05]}}", "tune.seed=3")
    exp = tmp_path / "asha"
    rows = results_rows(exp)
    assert len(rows) == 8
    assert any(int(r["epochs"]) < 6 and r["stop_reason"] == "early_stopped" for r in rows)
    assert any(r["stop_reason"] == "completed" for r in rows)
    best = max(rows, key=lambda r: float(r["best_val_acc"]))
    assert result.best_trial == best["trial_id"] and result.best_metric == pytest.approx(float(best["best_val_acc"]))

    cfg = yaml.safe_load((exp / "best_config.yaml").read_text())
    assert "tune" not in cfg and cfg["optim"]["lr"] == pytest.approx(float(best["optim.lr"]))
    assert cfg["output"]["experiment"] == "asha-best"
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["best_model"]["torchscript"] == "best_model/model_scripted.pt"
    assert (exp / "best_model" / "model_state.pt").is_file()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = sorted(p.name for p in (exp / "tensorboard").iterdir())
    assert runs == sorted(r["trial_id"] for r in rows)
    acc = EventAccumulator(str(exp / "tensorboard" / best["trial_id"]))
    acc.Reload()
    assert len(acc.Scalars("val_acc")) == int(best["epochs"])

    trained = run_cli("train", str(exp / "best_config.yaml"), f"output.dir={tmp_path}")
    assert trained.returncode == 0, trained.stderr
    assert json.loads((tmp_path / "asha-best" / "summary.json").read_text())["status"] == "finished"


def test_export_passes_over_deleted_checkpoints_to_the_next_best_then_the_next_trial(ray_cluster, tmp_path: Path) -> None:
    # Ray's Result can name a checkpoint its keep policy has deleted (seen under PBT): the export goes on without it
    from dltune import schema
    from dltune.config import load_config
    from dltune.hpo import results

    overrides = [*SMALL, f"output.dir={tmp_path}", "output.experiment=gone", "tune.searcher=random", "tune.num_samples=2", "train.epochs=3", LR_SPACE, "tune.seed=0"]
    searched = tune_api(None, overrides, verbose=False)
    base = schema.to_mapping(load_config(None, overrides))
    ranked = results.rank_rows(searched.rows, "max")
    best, runner_up = ranked[0], ranked[1]
    kept = dict((ckpt.path, metrics) for ckpt, metrics in best.result.best_checkpoints)
    first = best.result.get_best_checkpoint("val_acc", "max").path
    assert len(kept) >= 2

    def export() -> dict:
        return results.export_best_model(ranked, base, "val_acc", "max", "gone", str(tmp_path / "gone" / "best_model"))

    shutil.rmtree(first)
    exported = export()
    assert exported["trial_id"] == best.trial_id and exported["checkpoint"] in set(kept) - {first}
    assert exported["epoch"] == kept[exported["checkpoint"]]["epoch"] and "state_dict" in exported
    assert exported["note"] == f"not the best checkpoint: {best.trial_id}/{Path(first).name} had been deleted"

    for path in {*kept, best.result.checkpoint.path}:
        shutil.rmtree(path, ignore_errors=True)
    exported = export()
    assert exported["trial_id"] == runner_up.trial_id
    assert exported["checkpoint"] == runner_up.result.get_best_checkpoint("val_acc", "max").path
    assert all(f"{best.trial_id}/{Path(path).name}" in exported["note"] for path in kept)
    assert (tmp_path / "gone" / "best_model" / "model_state.pt").is_file()
    assert searched.summary["best_model"]["checkpoint"] == first  # the search's own export, before any was deleted


# Two-worker trials: under PBT in tests/train/test_bring_your_own.py (the same hand-over through a train.fn's own checkpoint), the
# built-in loop across two nodes in tests/launch/test_cluster.py.
def test_pbt_exploit_restores_donor_and_applies_mutated_lr(ray_cluster, tmp_path: Path) -> None:
    trials, epochs = 4, 6
    result = _search(tmp_path, "pbt", "tune.searcher=random", "tune.scheduler=pbt", f"tune.num_samples={trials}", f"train.epochs={epochs}",
                     "tune.perturbation_interval=2", "tune.quantile_fraction=0.5", "tune.resample_probability=0.5", "tune.synch=true",
                     "tune.space={optim.lr: {loguniform: [0.00001, 0.05]}}", "tune.seed=1", "optim.schedule=none",
                     "scaling.num_workers=1", "scaling.launcher=local")
    exp = tmp_path / "pbt"
    exploits = _pbt_exploits(exp)
    assert exploits, "PBT performed no exploit"
    results = [r for history in _trial_results(exp).values() for r in history]
    checked = 0
    for _target, _donor, _target_iter, _donor_iter, donor_config, new_config in exploits:
        donor_epochs = {r["epoch"] for r in results if r["config"]["optim.lr"] == donor_config["optim.lr"]}
        restored = [r for r in results if r["config"]["optim.lr"] == new_config["optim.lr"]]
        if donor_epochs and restored:
            first = min(restored, key=lambda r: r["timestamp"])
            # continued from a checkpoint the donor wrote, not from scratch
            assert first["epoch"] > 1 and first["epoch"] - 1 in donor_epochs
            assert first["lr"] == pytest.approx(new_config["optim.lr"], rel=1e-9)  # the optimizer uses the mutated lr
            checked += 1
    assert checked >= 1
    # every trial's result.json keeps each epoch once, across PBT pauses and restarts, and ends at
    # train.epochs; an exploit may skip epochs, since the target goes on from the donor's epoch
    histories = {tid: [r["epoch"] for r in history] for tid, history in _trial_results(exp).items()}
    assert len(histories) == trials
    for tid, seen in histories.items():
        assert seen == sorted(set(seen)) and seen[-1] == epochs, (tid, histories, exploits)
    assert len(results_rows(exp)) == trials and result.summary["error"] == 0
    # the journal keeps the new values of each exploit that went on to report in its target's pbt_changes (the policy
    # file names trials by tag, not id; an exploit at the last epoch runs none with its values)
    changes = [c for t in _journal(exp).trials for c in t.user_attrs.get("pbt_changes", [])]
    for *_, new_config in exploits:
        if any(r["config"]["optim.lr"] == new_config["optim.lr"] for r in results):
            assert any(c["optim.lr"] == new_config["optim.lr"] and c["epoch"] > 1 for c in changes), (new_config, changes)


def _journal(exp: Path):
    import optuna
    from optuna.storages import JournalFileStorage, JournalStorage

    return optuna.load_study(study_name=exp.name, storage=JournalStorage(JournalFileStorage(str(exp / "study.journal"))))


def _trial_with_checkpoint(storage_dir: Path, experiment: str, checkpoint_dir: Path):
    """A real Tune trial (not running) whose latest checkpoint is ``checkpoint_dir``."""
    from ray.tune import Checkpoint

    from dltune import ray_compat

    trial = stub_trial(storage_dir, experiment)
    os.makedirs(trial.storage.trial_fs_path, exist_ok=True)
    ray_compat.go_on_from(trial, ray_compat.training_result(Checkpoint.from_directory(str(checkpoint_dir)), {"epoch": 3}))
    return trial


def test_restarted_trial_keeps_result_lines_logged_since_last_sync(ray_cluster, tmp_path: Path) -> None:
    from dltune.ray_compat import result_json_logger

    def epochs(path: str) -> list[int]:
        with open(os.path.join(path, "result.json")) as f:
            return [json.loads(line)["epoch"] for line in f]

    # the driver logs epochs 1-3, storage was last synced after epoch 1, then PBT pauses and restarts the trial
    trial, logger = _trial_with_checkpoint(tmp_path / "storage", "pause", tmp_path), result_json_logger()
    logger.log_trial_start(trial)
    logger.log_trial_result(1, trial, {"epoch": 1})
    Path(trial.storage.trial_fs_path, "result.json").write_text(json.dumps({"epoch": 1}) + "\n")  # what the sync copied
    for epoch in (2, 3):
        logger.log_trial_result(epoch, trial, {"epoch": epoch})
    logger.log_trial_start(trial)
    logger.log_trial_result(4, trial, {"epoch": 4})
    logger.on_experiment_end([trial])
    assert epochs(trial.local_path) == [1, 2, 3, 4]

    # a resumed experiment's driver has no copy of its own: it continues the one in storage
    resumed, logger = _trial_with_checkpoint(tmp_path / "storage", "resumed", tmp_path), result_json_logger()
    with open(os.path.join(resumed.storage.trial_fs_path, "result.json"), "w") as f:
        f.write('{"epoch": 1}\n')
    logger.log_trial_start(resumed)
    logger.log_trial_result(2, resumed, {"epoch": 2})
    logger.on_experiment_end([resumed])
    assert epochs(resumed.local_path) == [1, 2]


def test_exploiting_trial_keeps_the_donor_checkpoint_after_the_donor_deletes_it(ray_cluster, tmp_path: Path) -> None:
    from ray.tune import Checkpoint

    from dltune import ray_compat
    from dltune.hpo.exploits import EXPLOITED_CHECKPOINT, drop_own_copy, keep_own_copy

    donors = []
    for epoch in (2, 3):
        donor = tmp_path / f"donor{epoch}" / f"checkpoint_00000{epoch}"
        donor.mkdir(parents=True)
        (donor / "state.pt").write_bytes(f"weights of epoch {epoch}".encode())
        donors.append(donor)
    trial = _trial_with_checkpoint(tmp_path / "storage", "exploit", donors[0])
    keep_own_copy(trial)
    # a later exploit hands over another donor's checkpoint (as PBT's _exploit does); its copy replaces the first
    ray_compat.go_on_from(trial, ray_compat.training_result(Checkpoint.from_directory(str(donors[1])), {"epoch": 3}))
    keep_own_copy(trial)
    for donor in donors:
        shutil.rmtree(donor)  # the donors trained on and dropped them (CheckpointConfig.num_to_keep)
    handed = trial.checkpoint
    assert handed.path == f"{trial.storage.trial_fs_path}/{EXPLOITED_CHECKPOINT}"
    with handed.as_directory() as d:
        assert sorted(os.listdir(d)) == ["state.pt"] and (Path(d) / "state.pt").read_bytes() == b"weights of epoch 3"
    assert ray_compat.latest_checkpoint_result(trial).metrics == {"epoch": 3}

    copy = Path(handed.path)
    drop_own_copy(trial)  # finished right after the exploit: the copy is its latest checkpoint and stays
    assert copy.is_dir()
    own = Path(trial.storage.trial_fs_path) / "checkpoint_000004"
    own.mkdir()
    ray_compat.register_checkpoint(trial, Checkpoint.from_directory(str(own)), {"epoch": 4})
    drop_own_copy(trial)  # trained on from it: the copy goes when the trial finishes
    assert not copy.exists() and own.is_dir()


def _trained_trial_dir(trial_dir: Path, val_accs: list[float]) -> list[dict]:
    """A trial dir as a trial leaves it: a checkpoint per epoch, result.json with a line cut short by a kill."""
    reported = []
    for iteration, acc in enumerate(val_accs, start=1):
        name = f"checkpoint_{iteration - 1:06d}"
        (trial_dir / name).mkdir(parents=True)
        (trial_dir / name / "state.pt").write_bytes(f"epoch {iteration}".encode())
        reported.append({"training_iteration": iteration, "epoch": iteration, "val_acc": acc, "checkpoint_dir_name": name})
    (trial_dir / "result.json").write_text("".join(json.dumps(r) + "\n" for r in reported) + '{"epoch": 5, "val')
    return reported


def _restored_trial(tmp_path: Path):
    """A trial as Tuner.restore makes it: keep the best two checkpoints by val_acc."""
    from ray.tune import CheckpointConfig

    policy = CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="val_acc", checkpoint_score_order="max")
    return stub_trial(tmp_path, "lag", checkpoint_config=policy)


def _assert_goes_on_from_the_fourth_epoch(trial, trial_dir: Path) -> None:
    assert trial.checkpoint.path == str(trial_dir / "checkpoint_000003")
    assert trial.latest_checkpoint_result.metrics["training_iteration"] == 4  # Tune's iteration count goes on from epoch 4
    assert trial.storage.current_checkpoint_index == 3  # its next checkpoint is checkpoint_000004, a new dir
    # the best two by val_acc and the latest stay, as Ray's own book-keeping would have left them
    assert sorted(p.name for p in trial_dir.glob("checkpoint_*")) == ["checkpoint_000001", "checkpoint_000003"]


def _saved_state_names(trial, name: str, result: dict) -> None:
    from ray.tune import Checkpoint

    from dltune import ray_compat

    ray_compat.register_checkpoint(trial, Checkpoint(str(Path(trial.storage.trial_fs_path) / name)), result)


def test_resumed_trial_keeps_the_checkpoint_of_an_up_to_date_state_or_an_exploit(ray_cluster, tmp_path: Path) -> None:
    from dltune.hpo.exploits import EXPLOITED_CHECKPOINT
    from dltune.hpo.experiment_state import resume_from_newest_checkpoint

    up_to_date, exploited = _restored_trial(tmp_path), _restored_trial(tmp_path)
    _saved_state_names(up_to_date, "checkpoint_000003", _trained_trial_dir(Path(up_to_date.storage.trial_fs_path), [0.5, 0.7, 0.6, 0.8])[3])
    assert not resume_from_newest_checkpoint(up_to_date)
    exploited_dir = Path(exploited.storage.trial_fs_path)
    reported = _trained_trial_dir(exploited_dir, [0.5, 0.7, 0.6, 0.8])
    (exploited_dir / EXPLOITED_CHECKPOINT).mkdir()  # the state was saved right after an exploit
    _saved_state_names(exploited, EXPLOITED_CHECKPOINT, reported[1])
    assert not resume_from_newest_checkpoint(exploited)
    assert exploited.checkpoint.path == str(exploited_dir / EXPLOITED_CHECKPOINT)


def _lagging_trial(tmp_path: Path, recorded_deleted: bool) -> tuple[Any, Path]:
    """The saved state knows the first checkpoint only: the trial reported three more after it, and
    num_to_keep may have dropped the first before the next state save. Returns the trial and its dir."""
    trial = _restored_trial(tmp_path)
    trial_dir = Path(trial.storage.trial_fs_path)
    reported = _trained_trial_dir(trial_dir, [0.5, 0.7, 0.6, 0.8])
    _saved_state_names(trial, "checkpoint_000000", reported[0])
    if recorded_deleted:
        shutil.rmtree(trial_dir / "checkpoint_000000")
    return trial, trial_dir


@pytest.mark.parametrize("recorded_deleted", [False, True])
def test_resumed_trial_whose_saved_state_lags_goes_on_from_its_newest_checkpoint(ray_cluster, tmp_path: Path, recorded_deleted: bool) -> None:
    from dltune.hpo.experiment_state import resume_from_newest_checkpoint

    trial, trial_dir = _lagging_trial(tmp_path, recorded_deleted)
    assert resume_from_newest_checkpoint(trial)  # not from checkpoint_000000: epochs 2-4 would be reported twice
    _assert_goes_on_from_the_fourth_epoch(trial, trial_dir)


@pytest.mark.parametrize("recorded_deleted", [False, True])
def test_under_a_judging_scheduler_a_resumed_trial_goes_on_from_the_saved_states_checkpoint(ray_cluster, tmp_path: Path, recorded_deleted: bool) -> None:
    from dltune.hpo.experiment_state import redo_after_recorded_checkpoint

    trial, trial_dir = _lagging_trial(tmp_path, recorded_deleted)
    if recorded_deleted:  # nothing to go on from but the newer ones, which stay
        assert redo_after_recorded_checkpoint(trial) == [] and len(list(trial_dir.glob("checkpoint_*"))) == 3
        return
    # epochs 2-4 are trained and reported again, for the scheduler restored with the saved state to judge
    assert redo_after_recorded_checkpoint(trial) == ["checkpoint_000001", "checkpoint_000002", "checkpoint_000003"]
    assert trial.checkpoint.path == str(trial_dir / "checkpoint_000000") and [p.name for p in trial_dir.glob("checkpoint_*")] == ["checkpoint_000000"]


def test_a_resumed_trial_forgets_the_checkpoints_deleted_after_the_saved_state(ray_cluster, tmp_path: Path) -> None:
    from ray.tune import Checkpoint

    from dltune import ray_compat
    from dltune.hpo.experiment_state import ExperimentStateGuard

    trial = _restored_trial(tmp_path)
    trial_dir = Path(trial.storage.trial_fs_path)
    reported = _trained_trial_dir(trial_dir, [0.5, 0.7, 0.6, 0.8])
    for i in (0, 1):
        _saved_state_names(trial, f"checkpoint_00000{i}", reported[i])
    shutil.rmtree(trial_dir / "checkpoint_000000")  # the keep policy's, after the save: checkpoint_000002 outranked it
    ExperimentStateGuard(str(tmp_path), verbose=False, judged_results=True).on_step_begin(0, [trial])
    assert trial.checkpoint.path == str(trial_dir / "checkpoint_000001")  # the epochs after it are trained and judged again
    (trial_dir / "checkpoint_000002").mkdir()
    # its next checkpoint prunes the worst by val_acc as Ray would, with no entry for a dir already gone
    ray_compat.register_checkpoint(trial, Checkpoint(str(trial_dir / "checkpoint_000002")), reported[2])
    assert sorted(p.name for p in trial_dir.glob("checkpoint_*")) == ["checkpoint_000001", "checkpoint_000002"]


def test_resumed_trial_that_started_after_the_last_state_save_goes_on_in_its_own_dir(ray_cluster, tmp_path: Path) -> None:
    from dltune.hpo.experiment_state import adopt_unrecorded_trial_dir

    trial = _restored_trial(tmp_path)  # the state has no dir for it: Ray made a new one
    new_dir = Path(trial.local_path)
    trained_in = Path(trial.storage.experiment_fs_path) / f"fn_{trial.trial_id}_2026-01-01_00-00-00"
    _trained_trial_dir(trained_in, [0.5, 0.7, 0.6, 0.8])
    assert adopt_unrecorded_trial_dir(trial)
    assert trial.storage.trial_fs_path == str(trained_in) and not new_dir.exists()
    _assert_goes_on_from_the_fourth_epoch(trial, trained_in)
    assert not adopt_unrecorded_trial_dir(trial)  # it has its checkpoints now


# Trial ids as Ray's variant generator (random, grid) and a searcher (Optuna, BOHB, ...) make them.
@pytest.mark.parametrize("first_id, second_id", [("ab123_00001", "ab123_00002"), ("6d61db0c", "0a9e4b17")])
def test_resumed_search_keeps_one_dir_per_trial(tmp_path: Path, first_id: str, second_id: str) -> None:
    from dltune.hpo.experiment_state import remove_abandoned_trial_dirs
    from dltune.hpo.trial_dirs import trial_id_of

    orphan_id = first_id[:-1] + "9"  # started by the killed driver, its config then tried again under another id
    started, ran_again, other, orphan = (f"single_worker_trial_{i}_{tag}" for i, tag in
                                         [(first_id, "1_lr=0.1_2026-01-01_00-00-00"), (first_id, "1_lr=0.1_2026-01-01_00-00-09"),
                                          (second_id, "2_lr=0.2_2026-01-01_00-00-00"), (orphan_id, "3_lr=0.3_2026-01-01_00-00-01")])
    assert [trial_id_of(str(tmp_path / name)) for name in (started, other, orphan)] == [first_id, second_id, orphan_id]
    for name in (started, ran_again, other, orphan, "tensorboard", "train_runs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "result.json").write_text("{}\n")
    for run in (first_id, second_id, orphan_id):
        (tmp_path / "tensorboard" / run).mkdir()
    (tmp_path / "results.csv").write_text("trial_id\n")
    assert sorted(remove_abandoned_trial_dirs(str(tmp_path), [str(tmp_path / ran_again), str(tmp_path / other)])) == sorted([started, orphan])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ran_again, other, "tensorboard", "train_runs", "results.csv"])
    assert sorted(p.name for p in (tmp_path / "tensorboard").iterdir() if p.is_dir()) == sorted([first_id, second_id])


def test_tensorboard_shows_each_epoch_once_when_a_new_driver_goes_on_with_a_trial(ray_cluster, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dltune.hpo.monitor import SearchMonitor

    trial = stub_trial(tmp_path, "tb", {"optim.lr": 0.1})
    killed, resumed = (SearchMonitor("val_acc", "max", str(tmp_path / "tb"), 0, 1, verbose=False) for _ in range(2))
    for epoch in (1, 2, 3):
        killed.on_trial_result(epoch, [trial], trial, {"epoch": epoch, "val_acc": 0.1 * epoch})
    # what the killed driver logged is on disk: each result is flushed as it is written
    for epoch in (2, 3, 4):  # the new driver resumed the trial from its checkpoint of epoch 1
        resumed.on_trial_result(epoch, [trial], trial, {"epoch": epoch, "val_acc": 0.5 + 0.1 * epoch})
    resumed.on_trial_complete(4, [trial], trial)
    acc = EventAccumulator(str(tmp_path / "tb" / trial.trial_id))
    acc.Reload()
    assert [(e.step, round(e.value, 3)) for e in acc.Scalars("val_acc")] == [(1, 0.1), (2, 0.7), (3, 0.8), (4, 0.9)]


@pytest.mark.parametrize("reuse", [True, False])
def test_single_worker_trials_reuse_one_process_without_carrying_state(ray_cluster, tmp_path: Path, reuse: bool) -> None:
    _search(tmp_path, "reuse", "tune.searcher=grid", "tune.num_samples=1", "tune.space={optim.lr: {grid: [0.01, 0.03, 0.01]}}", "train.epochs=2",
            "tune.max_concurrent_trials=1", f"tune.reuse_actors={str(reuse).lower()}")
    histories = sorted(_trial_results(tmp_path / "reuse").values(), key=lambda h: h[0]["trial_id"])
    pids = {h[0]["pid"] for h in histories}
    assert len(pids) == (1 if reuse else 3)
    # seeded alike, the first and third trial train alike: nothing of the second leaks into the third
    assert [r["val_loss"] for r in histories[0]] == [r["val_loss"] for r in histories[2]]
    assert [r["val_loss"] for r in histories[0]] != [r["val_loss"] for r in histories[1]]


def test_the_time_budget_ends_the_search_and_says_so(ray_cluster, tmp_path: Path) -> None:
    # epochs that sleep: the budget's rule, not the trials' CPU, is what this tests
    result = tune_api(None, ["train.fn=byo_user.train:simulated", "params={sleep: 0.3}", "tune.space={params.x: {uniform: [-5.0, 5.0]}}", "tune.metric=loss",
                             "tune.mode=min", "tune.searcher=random", "tune.num_samples=2000", "train.epochs=3", "tune.time_budget_s=6",
                             f"output.dir={tmp_path}", "output.experiment=budget"], verbose=False)
    summary, rows = result.summary, results_rows(tmp_path / "budget")
    assert summary["wall_time_s"] >= 6 and 0 < summary["trials"] == len(rows) < 2000
    # what ran all 3 epochs completed; what was running or waiting when the budget ran out is marked
    # so (how many of each depends on the machine's speed, not on the budget's rule)
    assert summary["completed"] + summary["time_budget"] + summary["not_started"] == summary["trials"] > summary["completed"]
    assert all(r["stop_reason"] in ("time_budget", "not_started") for r in rows if int(r["epochs"]) < 3)


def _cut_state_file(exp: Path, pattern: str) -> Path:
    """What a driver killed while Ray copies a state file leaves: half of it, no outputs."""
    state = max(exp.glob(pattern))
    whole = state.read_bytes()
    state.write_bytes(whole[: len(whole) // 2])
    (exp / "summary.json").unlink()
    return state


@pytest.mark.parametrize("pattern", ["experiment_state-*.json", "callback-states-*.pkl"], ids=["experiment", "callbacks"])
def test_resume_completes_a_truncated_experiment_state_or_refuses_naming_it(ray_cluster, tmp_path: Path, pattern: str) -> None:
    from dltune.errors import UserError
    from dltune.hpo.experiment_state import STAGING_RECORD

    args = ["tune.searcher=random", "tune.num_samples=3", "train.epochs=2", LR_SPACE]
    _search(tmp_path, "cut", *args)
    exp = tmp_path / "cut"
    histories = _trial_results(exp)
    state = _cut_state_file(exp, pattern)
    whole_callbacks = max(exp.glob("callback-states-*.pkl"))
    # a driver killed while Ray wrote the callbacks' state leaves its temp file, half written, beside the last whole one
    (exp / f"tmp-{whole_callbacks.name}").write_bytes(whole_callbacks.read_bytes()[:40])
    resumed = tune_api(None, [*SMALL, f"output.dir={tmp_path}", "output.experiment=cut", *args], resume=True, verbose=False)
    (json.loads(state.read_text()) if state.suffix == ".json" else pickle.loads(state.read_bytes()))  # completed from the driver's staging copy
    assert resumed.summary["trials"] == 3 and _trial_results(exp) == histories  # every trial known, none rerun

    state = _cut_state_file(exp, pattern)
    (exp / STAGING_RECORD).write_text(json.dumps({"staging_dir": str(tmp_path / "gone")}))  # resumed on another machine
    with pytest.raises(UserError, match=f"{state.name} is truncated"):
        tune_api(None, [*SMALL, f"output.dir={tmp_path}", "output.experiment=cut", *args], resume=True, verbose=False)


def test_progress_says_a_trial_ending_once_not_again_with_its_last_result(tmp_path: Path) -> None:
    import io

    from ray.tune.experiment import Trial

    from dltune.hpo.monitor import SearchMonitor

    out = io.StringIO()
    monitor = SearchMonitor("loss", "min", str(tmp_path / "tb"), 0, 2, verbose=True, stream=out)
    first, second = Trial("fn", config={"x": 1.0}, stub=True), Trial("fn", config={"x": 2.0}, stub=True)
    first.set_status(Trial.TERMINATED)
    monitor.on_trial_result(1, [first, second], first, {"epoch": 1, "loss": 0.5})  # as Tune does: the last result, then the end
    monitor.on_trial_complete(1, [first, second], first)
    second.set_status(Trial.TERMINATED)
    monitor.on_trial_complete(2, [first, second], second)
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == ["trials: 1 done, 0 running, 1 pending, 0 errored | best loss 0.5000 (x=1)",
                     "trials: 2 done, 0 running, 0 pending, 0 errored | best loss 0.5000 (x=1)"], out.getvalue()
