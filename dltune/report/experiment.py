"""A finished (or killed) search read back from its experiment dir, on any storage: the plan from
summary.json, each trial's reports from its result.json, how it ended from results.csv."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from dltune import storage
from dltune.errors import UserError
from dltune.hpo.trial_dirs import trial_id_of

RESULTS = "result.json"


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


def load(path: str) -> Experiment:
    """The experiment at ``path``; a UserError naming the file where it is not one."""
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
    ends = _stop_reasons(storage.join(path, "results.csv"))
    files = storage.list_files(path)
    exploited = {name.rsplit("/", 1)[-1][len("pbt_policy_"):-len(".txt")] for name in files if name.rsplit("/", 1)[-1].startswith("pbt_policy_")}
    by_id: dict[str, Trial] = {}
    for name in files:
        if not name.endswith("/" + RESULTS) or name.count("/") != path.rstrip("/").count("/") + 2:
            continue  # only <experiment>/<trial dir>/result.json
        run_dir = name.rsplit("/", 2)[-2]
        reports = [json.loads(line) for line in storage.read_text(name).splitlines() if line.strip()]
        trial_id = trial_id_of(run_dir)
        if not reports or (trial_id in by_id and len(by_id[trial_id].reports) >= len(reports)):
            continue  # a trial a killed driver started twice is shown once, by its longer run
        by_id[trial_id] = Trial(trial_id, dict(reports[-1].get("config") or {}), reports, ends.get(trial_id, "running"), run_dir, trial_id in exploited)
    return Experiment(path, summary, sorted(by_id.values(), key=lambda t: t.trial_id))


def _stop_reasons(path: str) -> dict[str, str]:
    if not storage.exists(path):
        return {}
    return {row["trial_id"]: row["stop_reason"] for row in csv.DictReader(io.StringIO(storage.read_text(path)))}
