"""Every private Ray name dltune uses lives in dltune.ray_compat; an upgrade that changes one fails here."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dltune import ray_compat
from dltune.ray_compat import check


def test_the_installed_ray_still_has_every_private_name_dltune_uses() -> None:
    assert check.missing() == [], "Ray changed names dltune.ray_compat relies on; see its docstring"


def test_the_gcs_port_variable_is_set_for_the_block_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ray_compat.GCS_PORT_VARIABLE, raising=False)
    with ray_compat.head_gcs_port(6390):
        assert os.environ[ray_compat.GCS_PORT_VARIABLE] == "6390"
    assert ray_compat.GCS_PORT_VARIABLE not in os.environ
    monkeypatch.setenv(ray_compat.GCS_PORT_VARIABLE, "7000")
    with ray_compat.head_gcs_port(6390):
        pass
    assert os.environ[ray_compat.GCS_PORT_VARIABLE] == "7000"


@pytest.mark.ray
def test_a_local_rays_workers_know_its_address_poll_ray_train_workers_often_and_watch_no_preemption(ray_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    variables = ("RAY_ADDRESS", ray_compat.HEALTH_CHECK_VARIABLE, ray_compat.PREEMPTION_WATCHER_VARIABLE)

    @ray_cluster.remote(num_cpus=0)
    def seen() -> dict[str, str | None]:
        return {name: os.environ.get(name) for name in variables}

    gcs = ray_cluster.get_runtime_context().gcs_address
    assert ray_cluster.get(seen.remote()) == {"RAY_ADDRESS": gcs, ray_compat.HEALTH_CHECK_VARIABLE: "0.25", ray_compat.PREEMPTION_WATCHER_VARIABLE: "0"}
    monkeypatch.setenv(ray_compat.HEALTH_CHECK_VARIABLE, "5")  # the user's own value wins, on a joined cluster too
    monkeypatch.setenv(ray_compat.PREEMPTION_WATCHER_VARIABLE, "1")
    assert ray_compat.worker_environment("10.0.0.1:6379") == {"RAY_ADDRESS": "10.0.0.1:6379", ray_compat.HEALTH_CHECK_VARIABLE: "5"}
    assert ray_compat.local_worker_environment("10.0.0.1:6379")[ray_compat.PREEMPTION_WATCHER_VARIABLE] == "1"


def _one_report(config: dict) -> None:
    from ray import tune

    tune.report({"x": config["x"]})


@pytest.mark.ray
def test_a_restored_tuner_runs_this_runs_callbacks_but_keeps_the_pickled_one_asked_for(ray_cluster, tmp_path: Path) -> None:
    """tuner.pkl holds the first run's callbacks, with its paths; the restored Tuner of an experiment
    dir since moved gets the new run's, except the kept type, which stays the pickled object."""
    from ray import tune

    from dltune.hpo.journal import OptunaJournal

    class Run(tune.Callback):
        def __init__(self, name: str) -> None:
            self.name = name

    first = [Run("first"), OptunaJournal(str(tmp_path / "old" / "study.journal"), "e", "x", "max", [], 1)]
    tune.Tuner(_one_report, param_space={"x": 1.0},
               run_config=tune.RunConfig(name="e", storage_path=str(tmp_path / "old"), callbacks=first, verbose=0)).fit()
    (tmp_path / "old").rename(tmp_path / "moved")
    tuner = tune.Tuner.restore(str(tmp_path / "moved" / "e"), trainable=_one_report)
    fresh = [Run("second"), OptunaJournal(str(tmp_path / "moved" / "e" / "study.journal"), "e", "x", "max", [], 1)]
    ray_compat.restored_callbacks(tuner, fresh, kept=OptunaJournal)
    now = tuner._local_tuner.get_run_config().callbacks
    assert now[0] is fresh[0] and now[0].name == "second"
    assert isinstance(now[1], OptunaJournal) and now[1] is not fresh[1] and now[1].path == str(tmp_path / "old" / "study.journal")
