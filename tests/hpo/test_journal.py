"""study.journal: the trials of any search, as they report, read with Optuna's own storage API
(what optuna-dashboard reads), while the search runs and after."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, trial_results
from objectives import paced_curve as slow_curve  # each epoch long enough for the journal to be read mid-search
from dltune import api
from dltune.hpo.journal import RAY_TRIAL_ID, as_optuna_value, distribution
from dltune.space import Param


def _study_named(path: Path, name: str):
    import optuna
    from optuna.storages import JournalFileStorage, JournalStorage

    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileStorage(str(path))))


def _study(path: Path):
    return _study_named(path, "j")


@pytest.mark.ray
@pytest.mark.slow
def test_the_journal_and_report_html_are_live_while_the_search_runs_and_whole_after(ray_cluster, tmp_path: Path) -> None:
    from optuna.trial import TrialState

    exp = tmp_path / "j"
    journal, page = exp / "study.journal", exp / "report.html"
    seen_running: list[int] = []
    live_pages: list[str] = []
    watch_errors: list[BaseException] = []
    done = threading.Event()

    def watch() -> None:  # as optuna-dashboard and a browser would: read the files while the driver writes them
        try:
            while not done.is_set():
                if not (exp / "summary.json").exists():
                    if journal.exists():
                        try:
                            study = _study(journal)
                        except KeyError:  # the file is there, the study's first entry not yet: as for a dashboard, no study yet
                            study = None
                        reported = [t for t in study.trials if t.state == TrialState.RUNNING and t.intermediate_values] if study else []
                        if reported:
                            seen_running.append(len(reported))
                    if page.exists():
                        live_pages.append(page.read_text())
                time.sleep(0.3)
        except BaseException as exc:  # noqa: BLE001 - failed the test below, not lost with the thread
            watch_errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        api.tune(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}, params.k: {choice: [[1, 2], 3]}}", "tune.metric=loss", "tune.mode=min",
                        "tune.num_samples=5", "train.epochs=6", "tune.searcher=random", "tune.scheduler=asha", "tune.grace_period=1",
                        "tune.reduction_factor=2", f"output.dir={tmp_path}", "output.experiment=j", "output.report_every_s=1",
                        "params.sleep=1.0"], verbose=False, fn=slow_curve)
    finally:
        done.set()
        watcher.join()
    assert not watch_errors, watch_errors
    assert seen_running, "no running trial with reports was ever read from the journal"
    # report.html was rewritten during the search: whole pages (each written at once), of a running search with trials
    assert live_pages, "report.html never appeared while the search ran"
    assert all(p.rstrip().endswith("</html>") for p in live_pages)
    assert any("<th>status</th><td>running</td>" in p and 'id="curves"' in p for p in live_pages)
    assert not list((exp / "report").glob("*.png.*"))  # no temp file of a rewrite the search's end stopped
    final = page.read_text()
    assert "<th>status</th><td>finished</td>" in final and len(list((exp / "report").glob("*.png"))) == 6

    histories = trial_results(exp)
    summary = json.loads((exp / "summary.json").read_text())
    trials = {t.user_attrs[RAY_TRIAL_ID]: t for t in _study(journal).trials}
    assert sorted(trials) == sorted(histories) and len(trials) == 5
    for trial_id, reports in histories.items():
        entry = trials[trial_id]
        assert entry.intermediate_values == {r["epoch"]: r["loss"] for r in reports}
        assert entry.params == {k: as_optuna_value(v) for k, v in reports[0]["config"].items()}
        if reports[-1]["epoch"] == 6:
            assert entry.state == TrialState.COMPLETE and entry.value == min(r["loss"] for r in reports)
        else:
            assert entry.state == TrialState.PRUNED
    assert min(t.value for t in trials.values() if t.value is not None) == summary["best"]["loss"]


def test_each_space_entry_has_its_optuna_distribution() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    assert distribution(Param("a", "loguniform", (1e-4, 1e-1))) == FloatDistribution(1e-4, 1e-1, log=True)
    assert distribution(Param("b", "randint", (1, 5))) == IntDistribution(1, 4)  # Ray's upper bound is exclusive
    assert distribution(Param("c", "choice", ([64], [128], "auto"))) == CategoricalDistribution(["[64]", "[128]", "auto"])


@pytest.mark.ray
@pytest.mark.slow
def test_output_report_false_writes_neither_journal_nor_report(ray_cluster, tmp_path: Path) -> None:
    api.tune(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}}", "tune.metric=loss", "tune.num_samples=2", "train.epochs=1", "tune.searcher=random",
                    "output.report=false", f"output.dir={tmp_path}", "output.experiment=q"], verbose=False, fn=slow_curve)
    exp = tmp_path / "q"
    assert (exp / "summary.json").is_file() and (exp / "results.csv").is_file()
    assert not (exp / "study.journal").exists() and not (exp / "report.html").exists() and not (exp / "report").exists()


def _trial(trial_id: str, x: float):
    from ray.tune.experiment import Trial

    return Trial("fn", config={"params.x": x}, trial_id=trial_id, stub=True)


def test_a_failed_trial_resumed_gets_a_new_entry_and_a_killed_drivers_lock_and_runs_are_settled(tmp_path: Path) -> None:
    """Driven as Tune drives it: a driver writes, fails a trial and dies holding the lock; the
    resumed driver (a fresh copy of the callback, as from tuner.pkl) runs the failed trial again."""
    import pickle

    from optuna.trial import TrialState

    from dltune.hpo.journal import OptunaJournal, settle

    path = tmp_path / "study.journal"
    space = [Param("params.x", "uniform", (-5.0, 5.0))]
    first = OptunaJournal(str(path), "j", "loss", "min", space, max_epochs=3)
    resumed = pickle.loads(pickle.dumps(first))
    failing, cut, abandoned = _trial("a", 1.0), _trial("b", 2.0), _trial("c", 3.0)
    for trial in (failing, cut, abandoned):
        first.on_trial_start(0, [], trial)
    first.on_trial_result(1, [], failing, {"epoch": 1, "loss": 0.9})
    first.on_trial_error(2, [], failing)
    first.on_trial_result(2, [], abandoned, {"epoch": 1, "loss": 0.8})
    first.close()  # the writer thread has written all of it
    (tmp_path / "study.journal.lock").symlink_to(tmp_path / "gone")  # the killed driver's lock

    for trial in (failing, cut):
        resumed.on_trial_start(0, [], trial)
    for epoch in (2, 3):
        resumed.on_trial_result(epoch, [], failing, {"epoch": epoch, "loss": 1.0 / epoch})
    resumed.on_trial_result(3, [], cut, {"epoch": 1, "loss": 0.7})
    resumed.on_trial_complete(4, [], failing)
    resumed.close()
    assert not resumed.broken
    settle(str(path), "j", "min", {"a": "completed", "b": "compute_budget"})  # c: the killed driver's run, tried afresh as another trial
    entries = [(t.user_attrs["ray_trial_id"], t.state, t.value, dict(t.intermediate_values)) for t in _study(path).trials]
    assert entries == [("a", TrialState.FAIL, None, {1: 0.9}), ("b", TrialState.PRUNED, None, {1: 0.7}), ("c", TrialState.FAIL, None, {1: 0.8}),
                       ("a", TrialState.COMPLETE, 1.0 / 3, {1: 0.9, 2: 0.5, 3: 1.0 / 3})]
    assert _study(path).trials[2].user_attrs["abandoned"]


def test_a_journal_that_cannot_be_written_is_one_warning_and_the_search_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from dltune.hpo.journal import OptunaJournal

    journal = OptunaJournal(str(tmp_path / "no" / "such" / "dir" / "study.journal"), "j", "loss", "min", [], max_epochs=1)
    trial = _trial("a", 1.0)
    journal.on_trial_start(0, [], trial)
    journal.on_trial_result(1, [], trial, {"epoch": 1, "loss": 0.5})
    journal.close()
    assert journal.broken
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dltune: warning: study.journal is no longer written (") and lines[0].endswith("; the search goes on")


REMOTE_CURVE = '''
import time


def curve(ctx):
    for step in range(ctx.config.train.epochs):
        time.sleep(1.0)
        ctx.report({"loss": (ctx.params["x"] - 2.0) ** 2 + 1.0 / (step + 1)})
'''


@pytest.mark.ray
@pytest.mark.slow
def test_a_search_on_s3_puts_its_journal_and_report_there_while_it_runs_and_after(s3_server: dict[str, str], tmp_path: Path) -> None:
    """optuna-dashboard reads a local file: a remote search's journal is written locally and copied
    to the experiment dir by each live rewrite and at the end, whole lines only."""
    from optuna.trial import TrialState

    from dltune import storage

    (tmp_path / "remote_curve.py").write_text(REMOTE_CURVE)
    exp = "s3://lake/runs/r"
    args = ["tune", "configs/quickstart_tune.yaml", "train.fn=remote_curve:curve", "tune.space={params.x: {uniform: [-5.0, 5.0]}}",
            "tune.metric=loss", "tune.mode=min", "tune.num_samples=3", "train.epochs=6", "tune.searcher=random", "tune.scheduler=fifo",
            "output.dir=s3://lake/runs", "output.experiment=r", "output.report_every_s=1"]
    env = dict(os.environ, PYTHONPATH=str(tmp_path), OMP_NUM_THREADS="1")
    console = tmp_path / "stdout", tmp_path / "stderr"  # files, not pipes: nothing reads a pipe while the loop below polls
    with open(console[0], "w") as stdout, open(console[1], "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "dltune", *args], cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
    copy = tmp_path / "study.journal"
    live: list[int] = []  # trials with reports in each copy read before the search ended
    while proc.poll() is None:
        if storage.exists(f"{exp}/study.journal") and not storage.exists(f"{exp}/summary.json"):
            copy.write_bytes(storage.read_bytes(f"{exp}/study.journal"))
            live.append(sum(1 for t in _study_named(copy, "r").trials if t.intermediate_values))
        time.sleep(0.5)
    out, err = (path.read_text() for path in console)
    assert proc.returncode == 0, err
    assert any(live), f"the journal on S3 never held a report while the search ran ({live})"
    copy.write_bytes(storage.read_bytes(f"{exp}/study.journal"))
    trials = _study_named(copy, "r").trials
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE and sorted(t.intermediate_values) == [1, 2, 3, 4, 5, 6] for t in trials)
    assert "<th>status</th><td>finished</td>" in storage.read_text(f"{exp}/report.html")
    assert "watch it live: optuna-dashboard " in out
    assert s3_server["AWS_SECRET_ACCESS_KEY"].encode() not in copy.read_bytes()
