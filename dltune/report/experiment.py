"""A finished (or killed) search read back from its experiment dir, on any storage: the plan from
summary.json, each trial's reports from its result.json, how it ended from results.csv."""
from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from dltune import storage
from dltune.errors import UserError
from dltune.hpo.trial_dirs import TRIAL_DIR_ID, trial_id_of

RESULTS = "result.json"
PBT_POLICY = "pbt_policy_"  # PBT's file of a trial it exploited


@dataclass
class Trial:
    trial_id: str
    config: dict[str, Any]
    reports: list[dict[str, Any]]  # result.json, one dict per report, in order
    stop_reason: str  # as results.csv says; "running" where it has no row yet
    run_dir: str  # the trial's dir, relative to the experiment dir
    exploited: bool = False  # PBT copied another trial's checkpoint and config into it


@dataclass
class Experiment:
    path: str
    summary: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return str(self.summary["metric"])

    @property
    def mode(self) -> str:
        return str(self.summary["mode"])

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def load(path: str, summary: dict[str, Any] | None = None, ends: dict[str, str] | None = None, staging: str | None = None) -> Experiment:
    """The experiment at ``path``; a UserError naming the file where it is not one. While the
    search runs, its driver hands ``summary`` and ``ends`` (Ray trial id -> stop reason) in place of
    summary.json and results.csv, which it writes at the end, and ``staging``: its local copy of the
    experiment dir, which Ray writes first and copies to ``path`` now and then."""
    if summary is not None:
        return _with_trials(path, summary, ends or {}, [path, *([staging] if staging else [])])
    summary_path = storage.join(path, "summary.json")
    if not storage.exists(summary_path):
        raise UserError(f"{storage.redact(path)} is not a dltune search: it has no summary.json (a search writes it when it ends)")
    try:
        summary = json.loads(storage.read_text(summary_path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{storage.redact(summary_path)}: not JSON ({exc})") from exc
    for key in ("metric", "mode"):
        if key not in summary:
            raise UserError(f"{storage.redact(summary_path)}: no '{key}' key")
    return _with_trials(path, summary, _stop_reasons(storage.join(path, "results.csv")), [path])


def _with_trials(path: str, summary: dict[str, Any], ends: dict[str, str], roots: list[str]) -> Experiment:
    """The trials under ``roots`` (the experiment dir, and while it runs the driver's staging copy)."""
    listed = [(root, storage.list_names(root) if storage.isdir(root) else []) for root in roots]  # the top level only: checkpoints can be many files
    exploited = {n[len(PBT_POLICY):-len(".txt")] for _, names in listed for n in names if n.startswith(PBT_POLICY) and n.endswith(".txt")}
    by_id: dict[str, Trial] = {}
    for root, run_dir in sorted((root, n) for root, names in listed for n in names if TRIAL_DIR_ID.match(n)):
        results = storage.join(root, run_dir, RESULTS)
        if not storage.exists(results):
            continue
        reports = _reports(storage.read_text(results))
        trial_id = trial_id_of(run_dir)
        if not reports or (trial_id in by_id and len(by_id[trial_id].reports) >= len(reports)):
            continue  # a trial a killed driver started twice, or copied from staging, is shown once, by its longer run
        by_id[trial_id] = Trial(trial_id, dict(reports[-1].get("config") or {}), reports, ends.get(trial_id, "running"), run_dir, trial_id in exploited)
    return Experiment(path, summary, sorted(by_id.values(), key=lambda t: t.trial_id))


def _reports(text: str) -> list[dict[str, Any]]:
    """result.json's lines; a line a killed driver left torn is passed over."""
    out = []
    for line in filter(str.strip, text.splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(line))
    return out


def _stop_reasons(path: str) -> dict[str, str]:
    if not storage.exists(path):
        return {}
    return {row["trial_id"]: row["stop_reason"] for row in csv.DictReader(io.StringIO(storage.read_text(path)))}
