"""What the report shows, as plain data: best-so-far over wall time and compute, learning curves,
the trial timeline over worker slots, and parameter importances (Optuna's fANOVA)."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from dltune.hpo.budget import Budget
from dltune.hpo.mode import best_of, rank_key
from dltune.report.experiment import Experiment, Trial

# How a trial ended, as the legend says it, with its colour.
ENDS = {
    "completed": ("completed", "#2a9d4a"),
    "early_stopped": ("stopped at a rung", "#e08a1e"),
    "exploited": ("exploited by PBT", "#7b4fb5"),
    "error": ("failed", "#d62728"),
    "time_budget": ("cut by the time budget", "#8c8c8c"),
    "compute_budget": ("cut by the compute budget", "#8c8c8c"),
    "running": ("running", "#1f77b4"),
}


TIMESTAMP_RESOLUTION_S = 1.0


def end_of(trial: Trial) -> str:
    if trial.stop_reason == "error" or not trial.exploited:
        return trial.stop_reason if trial.stop_reason in ENDS else "running"
    return "exploited"


def _value(report: dict[str, Any], metric: str) -> float | None:
    value = report.get(metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def cost_model(exp: Experiment) -> Budget:
    """The search's own budget where it had one; otherwise GPU- or CPU-seconds of what a trial held."""
    held = exp.summary.get("resources_per_trial") or {}
    budget = exp.summary.get("budget")
    if budget:
        cost = budget["cost"]
    else:
        cost = "gpu_seconds" if held.get("GPU") else "cpu_seconds"
    return Budget(cost, float(budget["total"]) if budget else 0.0, float(held.get(cost.split("_")[0].upper(), 1.0) or 1.0))


@dataclass
class Series:
    name: str
    x: list[float]
    y: list[float]
    end: str  # a key of ENDS
    colour: str = ""  # over the end's colour, where series are told apart by name


PALETTE = ["#1f77b4", "#e08a1e", "#2a9d4a", "#d62728", "#7b4fb5", "#8c564b", "#e377c2", "#17becf"]


def colour_of(series: Series) -> str:
    return series.colour or ENDS[series.end][1]


def _events(exp: Experiment) -> list[tuple[float, Trial, dict[str, Any]]]:
    """Every report of every trial, in the order they came in."""
    events = [(float(r.get("timestamp") or 0.0), t, r) for t in exp.trials for r in t.reports]
    return sorted(events, key=lambda e: e[0])


def start_time(exp: Experiment) -> float:
    starts = [float(t.reports[0].get("timestamp") or 0.0) - float(t.reports[0].get("time_since_restore") or 0.0) for t in exp.trials]
    return min(starts) if starts else 0.0


def best_so_far(exp: Experiment) -> tuple[Series, Series]:
    """The best metric seen against seconds since the search started, and against compute spent."""
    better = (lambda a, b: a > b) if exp.mode == "max" else (lambda a, b: a < b)
    model, t0 = cost_model(exp), start_time(exp)
    costs: dict[str, float] = {}
    spent, best = 0.0, None
    wall = Series("best so far", [], [], "completed")
    compute = Series("best so far", [], [], "completed")
    for stamp, trial, report in _events(exp):
        before = costs.get(trial.trial_id, 0.0)
        costs[trial.trial_id] = model.after(before, report)
        spent += costs[trial.trial_id] - before
        value = _value(report, exp.metric)
        if value is not None and (best is None or better(value, best)):
            best = value
        if best is not None:
            wall.x.append(stamp - t0)
            wall.y.append(best)
            compute.x.append(spent)
            compute.y.append(best)
    return wall, compute


def trial_best(trial: Trial, exp: Experiment) -> float | None:
    return best_of([v for r in trial.reports if (v := _value(r, exp.metric)) is not None], exp.mode)


def ranked(exp: Experiment) -> list[tuple[float, Trial]]:
    """Trials with a value and their best, best first, ranked as results.csv's best is: a failed trial
    after every one that did not fail."""
    scored = [(b, t) for t in exp.trials if (b := trial_best(t, exp)) is not None]
    return sorted(scored, key=lambda p: rank_key(p[0], end_of(p[1]) == "error", exp.mode))


def best_value(exp: Experiment) -> float | None:
    top = ranked(exp)
    return top[0][0] if top else None


def learning_curves(exp: Experiment) -> list[Series]:
    """One curve per trial: the metric at each epoch (the training iteration where there is no epoch)."""
    out = []
    for trial in exp.trials:
        points = [(float(r.get("epoch") or r.get("training_iteration") or 0), v) for r in trial.reports if (v := _value(r, exp.metric)) is not None]
        out.append(Series(trial.trial_id, [p[0] for p in points], [p[1] for p in points], end_of(trial)))
    return out


@dataclass
class Segment:
    trial_id: str
    start: float  # seconds since the search started
    end: float
    slot: int
    how: str  # a key of ENDS, of the trial's end


def segments(exp: Experiment) -> list[Segment]:
    """Each stretch a trial ran without a pause (a restore restarts iterations_since_restore), placed on
    the lowest free worker slot."""
    t0 = start_time(exp)
    spans: list[tuple[float, float, Trial]] = []
    for trial in exp.trials:
        start = end = None
        for report in trial.reports:
            stamp = float(report.get("timestamp") or 0.0) - t0
            if start is None or int(report.get("iterations_since_restore") or 1) == 1:
                if start is not None:
                    spans.append((start, end, trial))  # type: ignore[arg-type]
                start = stamp - float(report.get("time_since_restore") or 0.0)
            end = stamp
        if start is not None:
            spans.append((start, end, trial))  # type: ignore[arg-type]
    free_at: list[float] = []  # per slot, when it frees
    out = []
    for start, end, trial in sorted(spans, key=lambda s: s[0]):
        # Ray's timestamps are whole seconds: a slot that frees within one of a start is free.
        slot = next((i for i, t in enumerate(free_at) if t <= start + TIMESTAMP_RESOLUTION_S), len(free_at))
        if slot == len(free_at):
            free_at.append(end)
        free_at[slot] = end
        out.append(Segment(trial.trial_id, start, end, slot, end_of(trial)))
    return out


def idle_fraction(segs: list[Segment], slots: int) -> float | None:
    """The share of ``slots`` x the search's span that no trial ran in."""
    if not segs or slots < 1:
        return None
    span = max(s.end for s in segs) - min(s.start for s in segs)
    if span <= 0:
        return None
    busy = sum(s.end - s.start for s in segs)
    return max(0.0, 1.0 - busy / (slots * span))


def study_of(exp: Experiment) -> tuple[Any, str]:
    """The trials as an Optuna study (each trial's best value, the parameters that varied), for
    Optuna's own figures and fANOVA; (None, why) where there is too little to draw."""
    import optuna

    keys = sorted({k for t in exp.trials for k in t.config})
    bests = [(t, b) for t in exp.trials if (b := trial_best(t, exp)) is not None]
    varied = [k for k in keys if len({repr(t.config.get(k)) for t, _ in bests}) > 1]
    if len(bests) < 3 or not varied:
        return None, "needs at least 3 trials with a value and a parameter that varies"
    if len({b for _, b in bests}) == 1:
        return None, f"every trial's best {exp.metric} is the same: nothing tells the parameters apart"
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
    try:
        study = optuna.create_study(direction="maximize" if exp.mode == "max" else "minimize", study_name=exp.name)
    finally:
        optuna.logging.set_verbosity(verbosity)
    dists = {k: _distribution([_param(t.config.get(k)) for t, _ in bests]) for k in varied}
    for trial, best in bests:
        params = {k: _param(trial.config.get(k)) for k in varied}
        params = {k: str(v) if isinstance(dists[k], optuna.distributions.CategoricalDistribution) else v for k, v in params.items()}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=best, user_attrs={"trial_id": trial.trial_id}))
    return study, ""


def importances(study: Any) -> dict[str, float]:
    """fANOVA importance of each parameter for the trials' best values, by Optuna."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 16 trees, not Optuna's 64: a quarter of the time (7 s for 1,000 trials here), and ranks the same parameters first
        found = optuna.importance.get_param_importances(study, evaluator=optuna.importance.FanovaImportanceEvaluator(n_trees=16, seed=0))
    return {k: float(v) for k, v in found.items()}


def _param(value: Any) -> Any:
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else repr(value)


def _distribution(values: list[Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if all(isinstance(v, int) for v in values):
        return IntDistribution(min(values), max(values))
    if all(isinstance(v, (int, float)) for v in values):
        return FloatDistribution(float(min(values)), float(max(values)))
    return CategoricalDistribution(sorted(set(map(str, values))))
