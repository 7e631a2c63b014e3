"""Search results out: results.csv, best_config.yaml, the best model, the top-k table."""
from __future__ import annotations

import copy
import csv
import io
import math
from dataclasses import dataclass
from typing import Any

import yaml

from dltune import ray_compat, schema, storage
from dltune.config import Config
from dltune.data import DataSpec
from dltune.hpo.budget import Budget
from dltune.hpo.mode import best_of, rank_key
from dltune.hpo.report_check import MissingMetric
from dltune.hpo.trial import WORKER_RESTARTS, trial_config
from dltune.hpo.trial_dirs import trial_id_of
from dltune.launch.ray_errors import describe_failure, root_cause
from dltune.launch.ray_checkpoint import load_ray_checkpoint
from dltune.models import build_model
from dltune.train.export import export_model, export_state_dict
from dltune.train.loop import BUILTIN


@dataclass
class TrialRow:
    trial_id: str
    config: dict[str, Any]
    final: float | None
    best: float | None
    epochs: int
    stop_reason: str
    wall_time_s: float
    error: str
    restarts: int = 0
    result: Any = None  # Ray's Result, for checkpoints

    def as_csv(self, keys: list[str], metric: str) -> dict[str, Any]:
        row: dict[str, Any] = {"trial_id": self.trial_id}
        row.update({k: self.config.get(k, "") for k in keys})
        row.update({f"final_{metric}": _num(self.final), f"best_{metric}": _num(self.best), "epochs": self.epochs,
                    "stop_reason": self.stop_reason, "wall_time_s": round(self.wall_time_s, 3), "restarts": self.restarts,
                    "error": self.error})
        return row


def _num(value: float | None) -> Any:
    return "" if value is None or not math.isfinite(value) else value


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def missing_metric(grid: Any) -> MissingMetric | None:
    """The first trial failure that was a report without a metric the search needs."""
    for result in grid:
        cause = root_cause(result.error)
        if isinstance(cause, MissingMetric):
            return cause
    return None


def budget_spent(grid: Any, budget: Budget) -> float:
    """What all trials cost, from every report each one made (those before a resume too)."""
    total = 0.0
    for result in grid:
        df = result.metrics_dataframe
        total += budget.cost_of(df.to_dict("records")) if df is not None else 0.0
    return total


def trial_rows(grid: Any, metric: str, mode: str, max_epochs: int, cut_by: str | None) -> list[TrialRow]:
    """One row per trial, whatever became of it. ``cut_by``: the budget that ended the search, the
    stop reason of trials that were still going (a scheduler's stop leaves ``done`` set)."""
    rows = []
    for trial, result in zip(ray_compat.grid_trials(grid), grid):  # the Trial objects hold the retry counts
        df = result.metrics_dataframe
        values = df[metric].dropna().tolist() if df is not None and metric in df else []
        best = best_of(values, mode)
        last = result.metrics or {}
        epochs = int(last.get("epoch", 0) or 0)
        if result.error is not None:
            reason = "error"
        elif epochs >= max_epochs:
            reason = "completed"
        elif not epochs and not last.get("done"):
            reason = "not_started"  # created, then a budget ended the search before it ran
        else:
            reason = cut_by if cut_by and not last.get("done") else "early_stopped"
        error = storage.redact(describe_failure(result.error)) if result.error is not None else ""
        rows.append(TrialRow(
            trial_id=trial_id_of(result.path),
            config=dict(result.config or {}),
            final=_finite(last.get(metric)),
            best=_finite(best),
            epochs=epochs,
            stop_reason=reason,
            wall_time_s=float(last.get("time_total_s", 0.0) or 0.0),
            error=error,
            restarts=trial.num_failures - (result.error is not None) + _worker_restarts(df),  # a final failure is no restart
            result=result,
        ))
    return rows


def _worker_restarts(df: Any) -> int:
    if df is None or WORKER_RESTARTS not in df:
        return 0
    return int(df[WORKER_RESTARTS].fillna(0).max())


def rank_rows(rows: list[TrialRow], mode: str) -> list[TrialRow]:
    """Trials with a value, best first; a failed trial after every one that did not fail (the
    value it reported before it broke, often as it diverged, makes no best config or model)."""
    scored = [r for r in rows if r.best is not None]
    return sorted(scored, key=lambda r: rank_key(r.best, bool(r.error), mode))  # type: ignore[arg-type]


def write_results_csv(rows: list[TrialRow], keys: list[str], metric: str, path: str) -> None:
    buf = io.StringIO()
    fields = ["trial_id", *keys, f"final_{metric}", f"best_{metric}", "epochs", "stop_reason", "wall_time_s", "restarts", "error"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r.trial_id):
        writer.writerow(row.as_csv(keys, metric))
    storage.write_text(path, storage.redact(buf.getvalue()))


def best_config(base: dict[str, Any], overrides: dict[str, Any], experiment: str) -> Config:
    """A complete config for `dltune train`: the base with the best values, without the tune section."""
    mapping = copy.deepcopy(base)
    mapping.pop("tune", None)
    cfg = trial_config(mapping, overrides)
    cfg.output.experiment = f"{experiment}-best"
    return cfg


def best_config_yaml(cfg: Config) -> str:
    mapping = schema.to_mapping(cfg)
    mapping.pop("tune", None)
    return yaml.safe_dump(storage.redact(mapping), sort_keys=False)


def _checkpoints_best_first(result: Any, metric: str, mode: str) -> list[Any]:
    """A trial's kept checkpoints from best to worst by ``metric`` (those without it last), then its latest."""
    sign = -1.0 if mode == "max" else 1.0

    def key(entry: tuple[Any, dict[str, Any]]) -> tuple[bool, float]:
        value = _finite(entry[1].get(metric))
        return (value is None, sign * value if value is not None else 0.0)

    kept = [ckpt for ckpt, _ in sorted(result.best_checkpoints or [], key=key)]
    latest = result.checkpoint
    return kept + ([latest] if latest is not None and latest.path not in {c.path for c in kept} else [])


def export_best_model(ranked: list[TrialRow], base: dict[str, Any], metric: str, mode: str, experiment: str, directory: str) -> dict[str, Any]:
    """Export the best trial's model from its best checkpoint still on storage, and say which
    ("checkpoint"). Ray's keep policy (num_to_keep) may have deleted a checkpoint its results
    still name: the trial's other checkpoints are tried, best first, then its latest, and a
    "note" names those passed over. A trial cut short (time budget) may have left none; the
    next best trial is exported then.

    The built-in loop's checkpoints rebuild the model (state dict and TorchScript); a
    train.fn's checkpoint with a "model" state dict gives model_state.pt; any other
    checkpoint stays where the trial left it, and the summary says where."""
    gone: list[str] = []
    for row in ranked:
        for ckpt in _checkpoints_best_first(row.result, metric, mode):
            if not storage.exists_on(ckpt.filesystem, ckpt.path):
                gone.append(f"{row.trial_id}/{ckpt.path.rsplit('/', 1)[-1]}")
                continue
            exported = {**_export_checkpoint(ckpt, row, base, experiment, directory), "trial_id": row.trial_id, "checkpoint": storage.redact(ckpt.path)}
            if gone:
                note = f"not the best checkpoint: {', '.join(gone)} had been deleted"
                exported["note"] = f"{exported['note']}; {note}" if "note" in exported else note
            return exported
    if gone:
        return {"skipped": f"no trial left a checkpoint on storage: {', '.join(gone)} had been deleted"}
    return {"skipped": "no trial left a checkpoint"}


def _export_checkpoint(ckpt: Any, row: TrialRow, base: dict[str, Any], experiment: str, directory: str) -> dict[str, Any]:
    """The model in ``ckpt`` under directory/best_model, and the epoch it was saved after."""
    packed = load_ray_checkpoint(ckpt)
    state, epoch = packed["state"], int(packed["epoch"])
    cfg = best_config(base, row.config, experiment)
    if cfg.train.fn in ("", BUILTIN) and {"model", "data_spec", "example"} <= set(state):
        spec = DataSpec(**{**state["data_spec"], "input_shape": tuple(state["data_spec"]["input_shape"])})
        model = build_model(cfg.model, spec)
        model.load_state_dict(state["model"])
        return {**export_model(model, tuple(state["example"]), directory, cfg.output.export_torchscript, prefix="best_model/"), "epoch": epoch}
    if isinstance(state.get("model"), dict):
        return {**export_state_dict(state["model"], directory, prefix="best_model/"), "epoch": epoch}
    return {"note": "the checkpoint holds no 'model' state dict; it is kept as the trial left it", "epoch": epoch}


def table(rows: list[TrialRow], keys: list[str], metric: str, top_k: int) -> str:
    header = ["rank", "trial", f"best {metric}", "epochs", "stop", *keys]
    lines = [header]
    for i, row in enumerate(rows[:top_k], start=1):
        vals = [f"{row.config.get(k):.4g}" if isinstance(row.config.get(k), float) else str(row.config.get(k, "")) for k in keys]
        lines.append([str(i), row.trial_id, f"{row.best:.4f}" if row.best is not None else "-", str(row.epochs), row.stop_reason, *vals])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
