"""A resumed searcher's history, checked against the trials the experiment state has as finished.

Ray saves a searcher with the experiment state and restores it on resume, but the two are files
of their own, written one after the other and copied to storage one by one. A resume can meet a
searcher that never heard of a trial ending which the experiment state has as finished. Tune
never runs that trial again, so the searcher would never hear of it. An Optuna study would keep
it RUNNING for good, and TPE and the Hyperband pruner would model the search without it.

``SearcherHistory`` is a Tune callback given the restored searcher. At the first step of the
resumed search, before any trial reports, it tells the searcher each finished trial it lacks:
``on_trial_complete`` with the trial's last result, or, for a trial it never suggested, the
trial added to the Optuna study as evaluated. The resume then says what it found.

Checked: Optuna, by trial id, and BlendSearch/CFO, by config. BOHB, HyperOpt and plugin
searchers are restored as Ray restores them, unchecked. Random and grid search keep no history:
they only count the configs they have issued.

Private names used (Ray 2.60, FLAML 2), checked by ``dltune.ray_compat.missing()``:
- OptunaSearch's ``_completed_trials``, ``_ot_trials`` and ``_space``;
- FLAML BlendSearch's ``_result``, ``_trial_proposed_by``, ``_subspace`` and ``_ls.config_signature``.
"""
from __future__ import annotations

import sys
from typing import Any

from flaml import BlendSearch  # CFO is one too
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils import flatten_dict

from dltune.ray_compat.optuna_search import innermost_searcher


def _optuna_lacks(searcher: OptunaSearch, trial: Trial) -> bool:
    return trial.trial_id not in searcher._completed_trials


def _optuna_tell(searcher: OptunaSearch, trial: Trial) -> None:
    if trial.trial_id in searcher._ot_trials:  # suggested, its end not heard
        searcher.on_trial_complete(trial.trial_id, trial.last_result)
        return
    # suggested after the searcher's last save: added as evaluated, pruned when it ended short of full fidelity
    result = trial.last_result
    config = flatten_dict(trial.config, delimiter="/")
    params = {key: config[key] for key in searcher._space}
    full = getattr(searcher, "_full_fidelity", None)
    pruned = full is not None and int(result.get(searcher._time_attr, 0)) < full
    searcher.add_evaluated_point(params, result[searcher.metric], pruned=pruned)
    searcher._completed_trials.add(trial.trial_id)  # heard: a completion Tune sends later is ignored


def _blendsearch_lacks(searcher: Any, trial: Trial) -> bool:
    if trial.trial_id in searcher._trial_proposed_by:  # proposed, its end not heard
        return True
    signature = searcher._ls.config_signature(trial.config, searcher._subspace.get(trial.trial_id, {}))
    return signature not in searcher._result


def _blendsearch_tell(searcher: Any, trial: Trial) -> None:
    searcher.on_trial_complete(trial.trial_id, {**trial.last_result, "config": trial.config})


def make_whole(searcher: Any, trials: list[Trial]) -> tuple[int, int] | None:
    """Tell ``searcher`` each finished trial of ``trials`` it lacks; (finished, told), or None for a
    searcher this module does not check."""
    if isinstance(searcher, OptunaSearch):
        lacks, tell = _optuna_lacks, _optuna_tell
    elif isinstance(searcher, BlendSearch):
        lacks, tell = _blendsearch_lacks, _blendsearch_tell
    else:
        return None
    finished = [t for t in trials if t.status == Trial.TERMINATED and t.last_result]
    missing = [t for t in finished if lacks(searcher, t)]
    for trial in missing:
        tell(searcher, trial)
    return len(finished), len(missing)


class SearcherHistory(Callback):
    """After a resume, makes the restored searcher's history whole at the first step (see above)."""

    def __init__(self, search_alg: Any, verbose: bool) -> None:
        self.searcher = innermost_searcher(search_alg)
        self.verbose = verbose
        self.done = False

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self.done:
            return
        self.done = True
        counted = make_whole(self.searcher, trials)
        if counted is None:
            return
        finished, told = counted
        name = type(self.searcher).__name__
        if told:
            print(f"dltune: warning: resume: {name}'s saved state lacked {told} of the {finished} trials that had finished; "
                  "they were told to it with their last results", file=sys.stderr, flush=True)
        elif self.verbose:
            print(f"resume: {name} knows all {finished} trials that had finished", flush=True)


def missing() -> list[str]:
    """What of the above the installed Ray and FLAML lack, each as 'where: name'."""
    searcher = OptunaSearch()
    gone = [f"ray.tune.search.optuna.OptunaSearch: {n}" for n in ("_completed_trials", "_ot_trials", "_space") if not hasattr(searcher, n)]
    blend = BlendSearch(metric="m", mode="min", space={})
    gone += [f"flaml.BlendSearch: {n}" for n in ("_result", "_trial_proposed_by", "_subspace") if not hasattr(blend, n)]
    if not callable(getattr(getattr(blend, "_ls", None), "config_signature", None)):
        gone.append("flaml.BlendSearch: _ls.config_signature")
    return gone
