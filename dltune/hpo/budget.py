"""A search's compute budget (tune.budget), decided with the plan; dltune.hpo.stoppers counts it.

A trial's cost is its wall time between reports times the CPUs or GPUs it holds, summed over
its reports (paused trials hold nothing and cost nothing), or the latest value of a cumulative
metric it reports. The per-trial costs travel in Tune's experiment state (Callback.get_state),
so a resumed search goes on from what was spent before the driver died, as of the last state
Tune saved (every few seconds), like the trials themselves.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dltune.config import TIME_COSTS, BudgetConfig
from dltune.errors import ConfigError


@dataclass(frozen=True)
class Budget:
    cost: str  # cpu_seconds, gpu_seconds or a metric name
    total: float
    held: float  # the CPUs or GPUs one trial holds (time costs only)

    def after(self, cost: float, result: Mapping[str, Any]) -> float:
        """A trial's cost once ``result`` has come in, given its ``cost`` before it."""
        if self.cost in TIME_COSTS:
            return cost + float(result.get("time_this_iter_s") or 0.0) * self.held
        value = result.get(self.cost)
        # Cumulative: a trial that goes on from a checkpoint re-reports lower values at first.
        return max(cost, float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else cost

    def cost_of(self, results: Iterable[Mapping[str, Any]]) -> float:
        """One trial's cost from all its reports, in order."""
        cost = 0.0
        for result in results:
            cost = self.after(cost, result)
        return cost

    def describe(self) -> str:
        per = f" (trial wall time x {self.held:g} {self.cost.split('_')[0].upper()})" if self.cost in TIME_COSTS else " (as the trials report it)"
        return f"compute budget: {self.total:g} {self.cost}{per}"


def resolve_budget(budget: BudgetConfig, per_trial: dict[str, float]) -> Budget | None:
    """tune.budget with ``auto`` decided by what one trial holds; None when there is no budget."""
    if not budget.total:
        return None
    cost = budget.cost
    if cost == "auto":
        cost = "gpu_seconds" if per_trial.get("GPU", 0.0) > 0 else "cpu_seconds"
    held = per_trial.get(cost.split("_")[0].upper(), 0.0) if cost in TIME_COSTS else 0.0
    if cost in TIME_COSTS and not held:
        raise ConfigError(f"tune.budget.cost: {cost}, but a trial holds no {cost.split('_')[0].upper()} (scaling.use_gpu=false?); use cpu_seconds")
    return Budget(cost, budget.total, held)
