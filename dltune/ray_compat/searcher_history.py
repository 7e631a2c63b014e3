"""A resumed searcher's history, checked against the trials the experiment state has as finished.

Ray saves a searcher with the experiment state and restores it on resume, but the two are files
of their own, written one after the other and copied to storage one by one. A resume can meet a
searcher that never heard of a trial ending which the experiment state has as finished. Tune
never runs that trial again, so the searcher would never hear of it. An Optuna study would keep
it RUNNING for good, and TPE and the Hyperband pruner would model the search without it.

``SearcherHistory`` is a Tune callback given the restored searcher. At the first step of the
resumed search, before any trial reports, it tells the searcher each finished trial it lacks:
``on_trial_complete`` with the trial's last result, or, for a trial it never suggested, the
trial added as evaluated (to an Optuna study or HyperOpt's trials; BOHB's model takes it at the
rung it ended at). The resume then says what it found.

Checked: Optuna, by trial id; BlendSearch/CFO, by config; HyperOpt, by trial id while the trial
is one it suggested and has not heard end, else by config among its evaluated points (a trial it
never suggested is added as one); BOHB, by the ids of the trials it heard end, which dltune's
``RecordingBOHB`` keeps in its saved state (Ray's TuneBOHB forgets a trial once it ends, and its
model skips results below its largest budget, so neither says what it has heard). A searcher
that says itself, with ``heard(trial_id)`` and ``tell_finished(trial_id, config, result)`` (dltune's
SMAC searcher; a plugin searcher may too), is checked by those. Other plugin searchers
are restored as Ray restores them, unchecked. Random and grid search keep no history: they only
count the configs they have issued.

Private names used (Ray 2.60, FLAML 2, HyperOpt 0.3), checked by ``dltune.ray_compat.check.missing()``:
- OptunaSearch's ``_completed_trials``, ``_ot_trials`` and ``_space``;
- FLAML BlendSearch's ``_result``, ``_trial_proposed_by``, ``_subspace`` and ``_ls.config_signature``;
- HyperOptSearch's ``_live_trial_mapping``, ``_hpopt_trials``, ``_convert_categories_to_indices``
  and ``_to_hyperopt_result``;
- TuneBOHB's ``_space`` (its ConfigSpace), and that its save pickles the searcher's ``__dict__``.
"""
from __future__ import annotations

import sys
from typing import Any

from flaml import BlendSearch  # CFO is one too
from ray import tune
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.search.bohb import TuneBOHB
from ray.tune.search.hyperopt import HyperOptSearch
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


def _hyperopt_point(searcher: HyperOptSearch, config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config as HyperOpt records an evaluated point: by label, a choice by its index.
    dltune's spaces are flat (dotted keys), so a label is the key."""
    point = {key: config[key] for key in searcher._space}
    searcher._convert_categories_to_indices(point)
    return point


def _hyperopt_evaluated(searcher: HyperOptSearch) -> list[dict[str, Any]]:
    from hyperopt.base import JOB_STATE_DONE, spec_from_misc

    return [spec_from_misc(doc["misc"]) for doc in searcher._hpopt_trials.trials if doc["state"] == JOB_STATE_DONE]


def _hyperopt_lacks(searcher: HyperOptSearch, trial: Trial) -> bool:
    if trial.trial_id in searcher._live_trial_mapping:  # suggested, its end not heard
        return True
    return _hyperopt_point(searcher, trial.config) not in _hyperopt_evaluated(searcher)


def _hyperopt_tell(searcher: HyperOptSearch, trial: Trial) -> None:
    from hyperopt.base import JOB_STATE_DONE

    if trial.trial_id in searcher._live_trial_mapping:
        searcher.on_trial_complete(trial.trial_id, trial.last_result)
        return
    # suggested after the searcher's last save: added as an evaluated point, as points_to_evaluate are
    history = searcher._hpopt_trials
    point = _hyperopt_point(searcher, trial.config)
    (tid,) = history.new_trial_ids(1)
    misc = {"tid": tid, "cmd": ("domain_attachment", "FMinIter_Domain"), "workdir": None,
            "idxs": {label: [tid] for label in point}, "vals": {label: [value] for label, value in point.items()}}
    (doc,) = history.new_trial_docs([tid], [None], [searcher._to_hyperopt_result(trial.last_result)], [misc])
    doc["state"] = JOB_STATE_DONE
    history.insert_trial_docs([doc])
    history.refresh()


class RecordingBOHB(TuneBOHB):
    """TuneBOHB that keeps, in the state it saves, the ids of the trials it has heard end.
    ``time_attr``: the result key of the trials' budget (HyperBand's rungs are in it)."""

    def __init__(self, *args: Any, time_attr: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.time_attr = time_attr
        self.heard: set[str] = set()

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id not in self.trial_to_params:
            # never suggested: a trial resumed from an experiment state saved after this searcher's
            # (Ray writes that first). Its params come with its result, nested or flattened.
            config = result.get("config") or {k.removeprefix("config/"): v for k, v in result.items() if k.startswith("config/")}
            if not all(key in config for key in self._space):
                return
            self.trial_to_params[trial_id] = {key: config[key] for key in self._space}
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self.trial_to_params:
            return  # never suggested nor heard reporting: a later resume tells it (make_whole)
        super().on_trial_complete(trial_id, result, error)
        self.heard.add(trial_id)


def _bohb_lacks(searcher: RecordingBOHB, trial: Trial) -> bool:
    return trial.trial_id not in searcher.heard


def _bohb_tell(searcher: RecordingBOHB, trial: Trial) -> None:
    # one suggested after the searcher's last save gets the params TuneBOHB keeps for a trial it suggests
    searcher.trial_to_params.setdefault(trial.trial_id, {key: trial.config[key] for key in searcher._space})
    # HyperBandForBOHB puts the budget into the copy of a result its searcher is handed, not into the
    # trial's last result; under dltune's HyperBand a trial's last rung is the epoch it ended at
    result = {**trial.last_result, "hyperband_info": {"budget": trial.last_result[searcher.time_attr]}}
    searcher.on_trial_result(trial.trial_id, result)
    searcher.on_trial_complete(trial.trial_id, result)


def _own_lacks(searcher: Any, trial: Trial) -> bool:
    return not searcher.heard(trial.trial_id)


def _own_tell(searcher: Any, trial: Trial) -> None:
    searcher.tell_finished(trial.trial_id, trial.config, trial.last_result)


def make_whole(searcher: Any, trials: list[Trial]) -> tuple[int, int] | None:
    """Tell ``searcher`` each finished trial of ``trials`` it lacks; (finished, told), or None for a
    searcher this module does not check."""
    if isinstance(searcher, OptunaSearch):
        lacks, tell = _optuna_lacks, _optuna_tell
    elif isinstance(searcher, BlendSearch):
        lacks, tell = _blendsearch_lacks, _blendsearch_tell
    elif isinstance(searcher, HyperOptSearch):
        lacks, tell = _hyperopt_lacks, _hyperopt_tell
    elif isinstance(searcher, RecordingBOHB):
        lacks, tell = _bohb_lacks, _bohb_tell
    elif callable(getattr(searcher, "heard", None)) and callable(getattr(searcher, "tell_finished", None)):
        lacks, tell = _own_lacks, _own_tell
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
    space = {"x": tune.uniform(0.0, 1.0)}
    hyperopt = HyperOptSearch()
    hyperopt.set_search_properties("m", "min", space)
    gone += [f"ray.tune.search.hyperopt.HyperOptSearch: {n}" for n in ("_live_trial_mapping", "_hpopt_trials", "_space", "_convert_categories_to_indices", "_to_hyperopt_result")
             if not hasattr(hyperopt, n)]
    bohb = RecordingBOHB(time_attr="t")
    bohb.set_search_properties("m", "min", space)
    if not hasattr(bohb, "_space"):
        gone.append("ray.tune.search.bohb.TuneBOHB: _space")
    if "__dict__" not in TuneBOHB.save.__code__.co_names:
        gone.append("ray.tune.search.bohb.TuneBOHB: save of __dict__")
    return gone
