"""tune.budget: a search ends once its trials have cost the total, counted from their reports and
carried across a driver kill; a report without a metric the search needs ends it with one line."""
from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest

from conftest import kill_search_when, resumed_here, trial_results
from killed_search import assert_scheduler_restored
from dltune import api
from dltune.errors import ConfigError, UserError
from dltune.hpo.search_plan import local_cluster_resources, make_plan
from dltune.config import load_config

SIMULATED = ["train.fn=byo_user.train:simulated", "tune.space={params.x: {uniform: [-5.0, 5.0]}}", "tune.metric=loss", "tune.mode=min",
             "tune.searcher=random", "tune.scheduler=fifo", "train.epochs=4"]  # each trial: 40 simulated seconds


def _costs(exp: Path, cost: str) -> list[float]:
    """What each trial cost, from its own result.json: the summed report times, or the last cumulative value."""
    histories = [h for h in trial_results(exp).values() if h]
    if cost == "cpu_seconds":
        return [sum(r["time_this_iter_s"] for r in h) for h in histories]
    return [max(r[cost] for r in h) for h in histories]


def _spent(exp: Path, cost: str) -> float:
    return sum(_costs(exp, cost))


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize(("cost", "total"), [("sim_seconds", 200.0), ("cpu_seconds", 4.0)])
def test_a_search_ends_once_its_trials_have_cost_the_budget(ray_cluster, tmp_path: Path, cost: str, total: float) -> None:
    result = api.tune(None, [*SIMULATED, "params={sleep: 0.1}", "tune.num_samples=40", f"tune.budget.total={total}", f"tune.budget.cost={cost}",
                             f"output.dir={tmp_path}", "output.experiment=b"], verbose=False)
    summary = result.summary
    assert summary["status"] == "finished" and summary["budget"]["cost"] == cost and summary["budget"]["total"] == total
    # the spend it states is what the trials' own records add up to; it reached the total, and without
    # the (at most 4) trials in flight when it did, it had not
    costs = _costs(tmp_path / "b", cost)
    assert summary["budget"]["spent"] == pytest.approx(sum(costs), abs=1e-3)
    assert sum(costs) - sum(sorted(costs)[-4:]) < total <= sum(costs)
    assert summary["trials"] < 40
    reasons = {row.stop_reason for row in result.rows}
    assert reasons <= {"completed", "compute_budget", "not_started"}, reasons


@pytest.mark.slow
@pytest.mark.ray
def test_a_resumed_search_counts_what_was_spent_before_the_driver_was_killed(request: pytest.FixtureRequest, tmp_path: Path, user_root: Path) -> None:
    # 10 full trials' worth of budget, one trial at a time, about a second each; the median rule and
    # Optuna are the stateful scheduler and searcher this resume puts back (test_resume_state.py has the others)
    args = ["tune", "configs/quickstart_tune.yaml", *SIMULATED, "tune.searcher=optuna", "tune.scheduler=median", "tune.grace_period=1", "params={sleep: 0.25}",
            "tune.num_samples=40", "tune.budget.total=400", "tune.budget.cost=sim_seconds", "tune.max_concurrent_trials=1", "tune.local_cpus=2",
            f"output.dir={tmp_path}", "output.experiment=killed"]
    exp = tmp_path / "killed"
    kill_search_when(args, lambda: exp.exists() and _spent(exp, "sim_seconds") >= 160, user_root)
    before = _spent(exp, "sim_seconds")
    assert 160 <= before < 400, before
    killed_span = _span(trial_results(exp))

    resumed = resumed_here(args, request)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_scheduler_restored(resumed, "MedianStoppingRule")
    assert re.search(r"resume: FidelityAwareOptunaSearch knows all [1-9]\d* trials that had finished", resumed.stdout), resumed.stdout[-2000:]
    summary = json.loads((exp / "summary.json").read_text())
    # counted afresh after the resume, the search would have spent `before` + 400
    assert summary["budget"]["spent"] == pytest.approx(_spent(exp, "sim_seconds"), abs=1e-3)
    assert 400 <= summary["budget"]["spent"] <= 400 + 40 + 40, (before, summary["budget"])
    # the wall time is both drivers': at least the span of the killed one's reports and the resumed one's
    resumed_span = _span({tid: [r for r in h if r["timestamp"] > killed_span[1]] for tid, h in trial_results(exp).items()})
    assert summary["wall_time_s"] >= (killed_span[1] - killed_span[0]) + (resumed_span[1] - resumed_span[0]) - 2, (killed_span, resumed_span, summary)


def _span(histories: dict[str, list[dict]]) -> tuple[int, int]:
    """(first, last) report timestamp (whole seconds) among these results."""
    stamps = [r["timestamp"] for h in histories.values() for r in h]
    return min(stamps), max(stamps)


def test_a_resumed_searchs_clock_goes_on_from_the_time_its_killed_drivers_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dltune.hpo import monitor

    now = [1000.0]
    monkeypatch.setattr(monitor.time, "time", lambda: now[0])
    killed = monitor.SearchMonitor("loss", "min", str(tmp_path), 60.0, 4, verbose=False, started=960.0)
    state = pickle.loads(pickle.dumps(killed.get_state()))  # as Tune saves it with the experiment state: 40 s in
    now[0] = 1500.0  # the driver was killed; a new one starts later
    resumed = monitor.SearchMonitor("loss", "min", str(tmp_path), 60.0, 4, verbose=False, started=1495.0)
    assert resumed.elapsed() == 5.0
    resumed.set_state(state)
    assert resumed.elapsed() == 45.0  # the killed driver's 40 s and this one's 5, not the 500 s between
    assert pickle.loads(pickle.dumps(resumed.get_state()))["elapsed_s"] == 45.0  # and a second kill keeps both


def test_a_resumed_searchs_progress_keeps_the_best_found_before_the_kill(tmp_path: Path) -> None:
    import io
    from types import SimpleNamespace

    from ray.tune.experiment import Trial

    from dltune.hpo import monitor

    def searched(state: dict | None, trial_id: str, loss: float) -> monitor.SearchMonitor:
        watcher = monitor.SearchMonitor("loss", "min", str(tmp_path / trial_id), 60.0, 4, verbose=True, stream=io.StringIO())
        if state is not None:
            watcher.set_state(state)
        trial = SimpleNamespace(trial_id=trial_id, config={"x": loss}, status=Trial.RUNNING)
        watcher.on_trial_result(1, [trial], trial, {"epoch": 1, "loss": loss})
        watcher.on_trial_complete(1, [trial], trial)
        return watcher

    killed = searched(None, "a", 0.25)
    resumed = searched(pickle.loads(pickle.dumps(killed.get_state())), "b", 0.5)  # a worse trial after the resume
    assert resumed.best() == (0.25, {"x": 0.25}) and resumed.trial_best == {"a": 0.25, "b": 0.5}
    assert "best loss 0.2500 (x=0.25)" in resumed.out.getvalue().splitlines()[-1]


def test_the_progress_line_never_names_a_failed_trial_best_while_another_reported(tmp_path: Path) -> None:
    import io
    from types import SimpleNamespace

    from ray.tune.experiment import Trial

    from dltune.hpo import monitor

    watcher = monitor.SearchMonitor("loss", "min", str(tmp_path), 60.0, 3, verbose=True, stream=io.StringIO())
    broken, kept = (SimpleNamespace(trial_id=tid, config={"x": x}, status=Trial.RUNNING) for tid, x in (("a", 1.0), ("b", 2.0)))
    watcher.on_trial_result(1, [broken], broken, {"epoch": 1, "loss": 0.1})  # the best value so far, then it breaks
    assert watcher.best() == (0.1, {"x": 1.0})  # no other trial has reported yet
    broken.status = Trial.ERROR
    watcher.on_trial_error(1, [broken], broken)
    assert watcher.best() == (0.1, {"x": 1.0})  # still the only value there is, as results.csv would rank it
    watcher.on_trial_result(2, [broken, kept], kept, {"epoch": 1, "loss": 0.9})
    assert watcher.best() == (0.9, {"x": 2.0})
    kept.status = Trial.TERMINATED
    watcher.on_trial_complete(2, [broken, kept], kept)
    assert watcher.out.getvalue().splitlines()[-1].endswith("1 done, 0 running, 1 pending, 1 errored | best loss 0.9000 (x=2)")
    resumed = monitor.SearchMonitor("loss", "min", str(tmp_path), 60.0, 3, verbose=False)
    resumed.set_state(pickle.loads(pickle.dumps(watcher.get_state())))
    assert resumed.best() == (0.9, {"x": 2.0})  # the failure is remembered across a resume
    resumed.on_trial_start(3, [broken], broken)  # until the resume runs the failed trial again
    assert resumed.best() == (0.1, {"x": 1.0})


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize(("overrides", "line"), [
    (["tune.metric=val_loss"], "tune.metric: the trial reported no 'val_loss'; it reported epoch, loss, sim_seconds"),
    (["tune.budget.total=100", "tune.budget.cost=gpu_hours_simulated"], "tune.budget.cost: the trial reported no 'gpu_hours_simulated'; it reported epoch, loss, sim_seconds"),
])
def test_a_report_without_a_metric_the_search_needs_ends_it_at_the_first_trial(ray_cluster, tmp_path: Path, overrides: list[str], line: str) -> None:
    with pytest.raises(UserError) as err:
        api.tune(None, [*SIMULATED, "tune.num_samples=12", *overrides, f"output.dir={tmp_path}", "output.experiment=m"], verbose=False)
    assert str(err.value) == line
    assert len(trial_results(tmp_path / "m")) <= 4  # the first failure stopped the search: no more trials started
    assert not (tmp_path / "m" / "summary.json").exists()


@pytest.mark.parametrize(("overrides", "line"), [
    (["tune.budget.total=100", "tune.budget.cost=sim_seconds"], "tune.budget.cost: the built-in loop reports no 'sim_seconds'"),
    (["train.eval_every=2"], "train.eval_every: a search reads tune.metric=val_acc from every epoch's report"),
])
def test_what_the_built_in_loop_never_reports_is_refused_at_check(overrides: list[str], line: str, cli_here) -> None:
    out = cli_here("check", "configs/quickstart_tune.yaml", *overrides)
    assert out.returncode == 2 and line in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_gpu_seconds_budget_for_trials_without_gpus_is_refused() -> None:
    cfg = load_config(None, ["tune.space={optim.lr: {loguniform: [0.001, 0.1]}}", "tune.budget.total=3600", "tune.budget.cost=gpu_seconds"])
    with pytest.raises(ConfigError, match="tune.budget.cost: gpu_seconds, but a trial holds no GPU"):
        make_plan(cfg, local_cluster_resources(cfg))


def test_the_plan_states_the_budget_and_auto_picks_cpu_seconds_without_gpus() -> None:
    cfg = load_config(None, ["tune.space={optim.lr: {loguniform: [0.001, 0.1]}}", "tune.budget.total=3600"])
    assert "compute budget: 3600 cpu_seconds (trial wall time x 1 CPU)" in make_plan(cfg, {"CPU": 4.0, "GPU": 0.0}).describe()
    gpu = load_config(None, ["tune.space={optim.lr: {loguniform: [0.001, 0.1]}}", "tune.budget.total=3600", "scaling.use_gpu=true"])
    assert "compute budget: 3600 gpu_seconds (trial wall time x 1 GPU)" in make_plan(gpu, {"CPU": 4.0, "GPU": 2.0}).describe()
