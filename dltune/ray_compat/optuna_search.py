"""Ray's OptunaSearch, telling Optuna what became of each trial.

Ray's adapter reports intermediate values at ``training_iteration`` and tells every trial
that ended with a value COMPLETE: one a scheduler stopped at a low rung, and one that failed
after reporting, alike. TPE then models low-epoch values as if they were finished runs. Here
a trial stopped before full fidelity is PRUNED with its intermediate values at their epochs
(what Optuna's own pruners produce), and a failed one is FAIL.

Private names used (Ray 2.60), checked by ``dltune.ray_compat.missing()``: the searcher's
``_ot_trials``, ``_ot_study`` and ``_completed_trials``.
"""
from __future__ import annotations

from typing import Any

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch


class FidelityAwareOptunaSearch(OptunaSearch):
    def __init__(self, *, time_attr: str, full_fidelity: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._time_attr, self._full_fidelity = time_attr, full_fidelity

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id not in self._completed_trials and self.metric in result:
            self._ot_trials[trial_id].report(result[self.metric], int(result.get(self._time_attr, result.get("training_iteration", 0))))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        finished = bool(result) and (bool(result.get("done")) or result.get(self._time_attr, 0) >= self._full_fidelity)
        if trial_id in self._completed_trials or (finished and not error):
            super().on_trial_complete(trial_id, result, error)
            return
        self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.FAIL if error else TrialState.PRUNED)
        self._completed_trials.add(trial_id)


def missing() -> list[str]:
    """What of the above the installed Ray lacks, each as 'where: name'."""
    searcher = OptunaSearch()
    return [f"ray.tune.search.optuna.OptunaSearch: {name}" for name in ("_ot_trials", "_ot_study", "_completed_trials") if not hasattr(searcher, name)]
