"""Every report carries the metrics the search needs: tune.metric, and a compute budget's
cost metric. A trial whose report lacks one fails with MissingMetric, the search ends at that
first failure, and the command says which metric it is and what the trial did report (exit 2).

The check runs in the trial, before the result reaches Tune: Ray's own check raises a
TuneError in the driver, and its schedulers and searchers index the missing key.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dltune.config import TIME_COSTS, Config
from dltune.errors import UserError


class MissingMetric(UserError):
    pass


def required_metrics(cfg: Config) -> list[tuple[str, str]]:
    """(config key, metric name) of what each report must hold."""
    needed = [("tune.metric", cfg.tune.metric)]
    budget = cfg.tune.budget
    if budget.total and budget.cost not in (*TIME_COSTS, "auto"):
        needed.append(("tune.budget.cost", budget.cost))
    return needed


def check_report(metrics: Mapping[str, Any], needed: list[tuple[str, str]]) -> None:
    for key, name in needed:
        if name not in metrics:
            raise MissingMetric(f"{key}: the trial reported no {name!r}; it reported {', '.join(sorted(metrics))}")
