"""A finished search's outputs, written in order (results.csv, best_config.yaml, best_model/,
summary.json last but the report), and its printed top trials; the pieces are in hpo.results."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from dltune import storage
from dltune.config import Config
from dltune.hpo import results
from dltune.hpo.journal import FILE as JOURNAL, settle
from dltune.hpo.search_plan import SearchPlan
from dltune.report import drawn, write_report


@dataclass
class TuneResult:
    experiment_dir: str
    best_trial: str
    best_metric: float | None
    best_config: Config | None
    rows: list[results.TrialRow] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)




def plan_summary(cfg: Config, plan: SearchPlan) -> dict[str, Any]:
    """summary.json's account of the plan: how the search chose its trials and what each held."""
    return {
        "searcher": plan.choice.searcher,
        "sampler": plan.choice.sampler if plan.choice.searcher == "optuna" else None,
        "scheduler": plan.choice.scheduler,
        "reason": plan.choice.reason,
        "metric": cfg.tune.metric,
        "mode": cfg.tune.mode,
        "concurrency": plan.resources.concurrency,
        "resources_per_trial": plan.resources.per_trial,
    }


def failure_line(rows: list[results.TrialRow]) -> str:
    """'12 of 12 trials failed: <the most common cause>', or where some finished, '3 of 12 trials
    failed: <the first one's cause>' (causes as results.csv names them)."""
    errors = [r.error for r in rows if r.stop_reason == "error"]
    if not errors:
        return "no trial ran (the time budget ended before the first one started?)"
    cause = max(set(errors), key=errors.count) if len(errors) == len(rows) else errors[0]
    return f"{len(errors)} of {len(rows)} trials failed: {cause}"


def write_outputs(cfg: Config, plan: SearchPlan, grid: Any, exp_dir: str, base: dict[str, Any], elapsed: float, cut_by: str | None,
                  spent: float | None, verbose: bool, tensorboard: bool, journal_path: str) -> TuneResult:
    """results.csv, best_config.yaml, best_model/ and summary.json, then the report. ``cut_by``: the budget
    that ended the search (time_budget, compute_budget) or None; ``spent``: the compute budget used;
    ``tensorboard``: some trial reported, so there are runs; ``journal_path``: the local study.journal."""
    t = cfg.tune
    keys = [p.key for p in plan.params]
    rows = results.trial_rows(grid, t.metric, t.mode, cfg.train.epochs, cut_by)
    ranked = results.rank_rows(rows, t.mode)
    results.write_results_csv(rows, keys, t.metric, storage.join(exp_dir, "results.csv"))
    best_cfg = None
    exported: dict[str, Any] = {}
    if ranked:
        best = ranked[0]
        best_cfg = results.best_config(base, best.config, cfg.output.experiment)
        storage.write_text(storage.join(exp_dir, "best_config.yaml"), results.best_config_yaml(best_cfg))
        exported = results.export_best_model(ranked, base, t.metric, t.mode, cfg.output.experiment, storage.join(exp_dir, "best_model"))
    counts = {reason: sum(1 for r in rows if r.stop_reason == reason) for reason in ("completed", "early_stopped", "time_budget", "compute_budget", "not_started", "error")}
    status = "failed" if counts["error"] == len(rows) else "partial" if counts["error"] else "finished"  # no trial at all: failed
    summary = {
        "status": status,
        "experiment_dir": storage.redact(exp_dir),
        **plan_summary(cfg, plan),
        "trials": len(rows),
        **counts,
        "best": {"trial_id": ranked[0].trial_id, t.metric: ranked[0].best, "config": ranked[0].config} if ranked else None,
        "best_model": exported,
        "wall_time_s": round(elapsed, 3),
        **({"budget": {"cost": plan.budget.cost, "spent": round(spent, 3), "total": plan.budget.total}} if plan.budget and spent is not None else {}),
        **({"failures": failure_line(rows)} if status != "finished" else {}),
    }
    storage.write_text(storage.join(exp_dir, "summary.json"), json.dumps(storage.redact(summary), indent=2, default=str) + "\n")
    journal = cfg.output.report and os.path.exists(journal_path)
    if journal:
        drawn(lambda: settle(journal_path, cfg.output.experiment, t.mode, {r.trial_id: r.stop_reason for r in rows}), JOURNAL)
    reported = cfg.output.report and drawn(lambda: write_report(exp_dir))
    if status == "partial":
        print(f"dltune: warning: {storage.redact(failure_line(rows))}", file=sys.stderr)
    if verbose:
        if ranked:
            print(f"\ntop {min(t.top_k, len(ranked))} of {len(rows)} trials by {t.metric} ({t.mode}):")
            print(results.table(ranked, keys, t.metric, t.top_k))
        written = ["results.csv", *(["best_config.yaml"] if best_cfg is not None else []), *(["best_model/"] if exported.get("state_dict") else []),
                   *(["tensorboard/"] if tensorboard else []), "summary.json", *(["report.html", "report/"] if reported else []),
                   *([JOURNAL] if journal else [])]
        print(f"\noutputs: {storage.redact(exp_dir)} ({', '.join(written)})")
        if best_cfg is not None:
            print(f"train the best config: dltune train {storage.redact(storage.join(exp_dir, 'best_config.yaml'))}")
    return TuneResult(exp_dir, ranked[0].trial_id if ranked else "", ranked[0].best if ranked else None, best_cfg, rows, summary)
