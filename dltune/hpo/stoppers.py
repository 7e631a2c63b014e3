"""Why a search ends before its trials run out: its compute budget is spent, or a trial's
report lacked a metric the search needs. Each is a Tune Stopper: stop_all ends every trial
and starts no more."""
from __future__ import annotations

import os
from typing import Any

from ray import cloudpickle
from ray.tune import Callback, Stopper

from dltune.hpo.budget import Budget
from dltune.hpo.report_check import MissingMetric
from dltune.launch.ray_errors import root_cause


class ComputeBudget(Stopper):
    """Counts each trial's cost as its results arrive; stop_all() once the sum reaches the total.

    Tune saves its stopper with the experiment state and puts that copy back on resume, so
    the costs counted before a driver died carry over."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.costs: dict[str, float] = {}
        self.last: dict[str, Any] = {}  # each trial's last training_iteration

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        # A trial that returns is handed over once more with its last result: count it once.
        if result.get("training_iteration") != self.last.get(trial_id):
            self.last[trial_id] = result.get("training_iteration")
            self.costs[trial_id] = self.budget.after(self.costs.get(trial_id, 0.0), result)
        return False  # no single trial stops for the budget; stop_all ends them all

    def stop_all(self) -> bool:
        return sum(self.costs.values()) >= self.budget.total


class StopAtMissingMetric(Callback, Stopper):
    """Ends the search at the first trial that failed with MissingMetric, keeping that error."""

    def __init__(self) -> None:
        self.error: MissingMetric | None = None

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # The driver's own copy of the error: the one in the trial's storage is synced later.
        path = trial.pickled_error_file
        if self.error is not None or not path or not os.path.exists(path):
            return
        with open(path, "rb") as f:
            cause = root_cause(cloudpickle.load(f))
        if isinstance(cause, MissingMetric):
            self.error = cause

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.error is not None
