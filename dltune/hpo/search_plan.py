"""The search plan: everything decided and checked before Ray is imported or started.

`dltune check` prints it; `dltune tune` makes it first against what a local
Ray would offer (so a bad config or an impossible trial is refused in a
second), then again against the cluster it joined.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from dltune.config import Config, absolute_paths
from dltune.errors import UserError
from dltune.hpo import algorithms
from dltune.hpo.budget import Budget, resolve_budget
from dltune.hpo.resources import ResourcePlan, plan_resources
from dltune.plugins import import_path_of
from dltune.space import Param, grid_size, parse_space, undefined_params
from dltune.preflight import check_run, ray_cluster_given
from dltune.train.loop import TrainFn


@dataclass
class SearchPlan:
    """Everything decided before Ray Tune starts (printed by `dltune check` too)."""

    cfg: Config
    params: list[Param]
    choice: algorithms.Choice
    resources: ResourcePlan
    num_trials: int
    budget: Budget | None = None

    def describe(self) -> str:
        space = ", ".join(f"{p.key}~{p.kind}{list(p.args)}" for p in self.params) or "(empty)"
        t = self.cfg.tune
        sampler = f" ({self.choice.sampler})" if self.choice.searcher == "optuna" else ""
        lines = [
            f"search: {self.choice.searcher}{sampler} + {self.choice.scheduler}: {self.choice.reason}",
            f"space: {space}",
            f"trials: {self.num_trials}, optimising {t.metric} ({t.mode}), time budget {f'{t.time_budget_s:g}s' if t.time_budget_s else 'none'}",
            *([self.budget.describe()] if self.budget else []),
            self.resources.describe(),
            *self.warnings(),
        ]
        return "\n".join(lines)

    def warnings(self) -> list[str]:
        """'warning: ...' lines: what the search would do that the config does not seem to mean."""
        out = undefined_params(self.params, self.cfg.params)
        limit = self.cfg.tune.max_concurrent_trials
        if self.choice.scheduler == "hyperband" and self.choice.searcher in ("random", "grid") and limit != "auto":
            # the variant generator takes this limit for trials it creates, not for trials running
            out.append(f"warning: tune.max_concurrent_trials={limit} with hyperband: the {self.choice.searcher} searcher then creates "
                       "each trial only as a slot frees, so a bracket meets its trials at a rung a few at a time and stops few or "
                       "none; leave it auto (the cluster's slots still bound how many run)")
        return out


def total_trials(cfg: Config, params: list[Param]) -> int:
    return cfg.tune.num_samples * grid_size(params)


def make_plan(cfg: Config, cluster: dict[str, float]) -> SearchPlan:
    params = parse_space(cfg.tune.space, Config)
    choice = algorithms.resolve_choice(params, cfg)
    algorithms.check_compatible(choice, params, cfg)
    if algorithms.uses_checkpoint_exploits(choice):
        algorithms.mutations(params, cfg.tune)  # refuses shape-changing mutations before anything starts
    if cfg.scaling.use_gpu is False and cfg.train.device == "cuda":
        raise UserError("train.device: cuda in a search needs scaling.use_gpu=true so trials reserve GPUs")
    n = total_trials(cfg, params)
    resources = plan_resources(cfg, cluster, n)
    return SearchPlan(cfg, params, choice, resources, n, resolve_budget(cfg.tune.budget, resources.per_trial))


def local_cluster_resources(cfg: Config) -> dict[str, float]:
    """What a local Ray started for this search would offer (before starting it)."""
    import psutil
    import torch

    cpus = cfg.tune.local_cpus or float(os.cpu_count() or 1)
    return {"CPU": cpus, "GPU": float(torch.cuda.device_count()), "memory": psutil.virtual_memory().available * 0.7}


def preflight(cfg: Config, fn: TrainFn | None = None, trial_fn: Any = None) -> Config:
    """Check a search before Ray: the space, the training function (imported here), the
    searcher and scheduler, and, without RAY_ADDRESS, the plan on the local Ray it would
    start. Returns the config the search runs (absolute paths; train.fn naming ``fn``)."""
    cfg = absolute_paths(cfg)
    if not cfg.tune.space and trial_fn is None:
        raise UserError("tune.space: empty; give at least one key to search, e.g. optim.lr: {loguniform: [1.0e-4, 1.0e-1]}")
    check_run(cfg, fn, search=True)
    if fn is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, fn=import_path_of(fn)))  # what best_config.yaml names
    if not ray_cluster_given():
        make_plan(cfg, local_cluster_resources(cfg))
    return cfg
