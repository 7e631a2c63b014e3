"""An AutoML job's report.html: the best validation score so far against wall time, per estimator
and over all of them, from FLAML's trial log, and the best model's feature importances."""
from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Callable
from typing import Any

from dltune import storage
from dltune.report import figures as F
from dltune.report.render import importance_figure, lines_figure, page, importance_png, lines_png

WALL_AXIS = "seconds since the job started"


def best_so_far(records: list[dict[str, Any]], score: Callable[[float], float], higher_is_better: bool) -> list[F.Series]:
    """One step line per estimator, then one over all of them, of the best score at each trial's end."""
    better = (lambda a, b: a > b) if higher_is_better else (lambda a, b: a < b)
    learners = sorted({r["learner"] for r in records})
    out = {name: F.Series(name, [], [], "completed", F.PALETTE[i % len(F.PALETTE)]) for i, name in enumerate(learners)}
    overall = F.Series("all estimators", [], [], "completed", "#222222")
    for record in sorted(records, key=lambda r: r["wall_clock_time"]):
        loss = record.get("validation_loss")
        if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not math.isfinite(loss):
            continue  # a trial FLAML could not score
        value = score(float(loss))
        for series in (out[record["learner"]], overall):
            if not series.y or better(value, series.y[-1]):
                series.x.append(float(record["wall_clock_time"]))
                series.y.append(value)
    for series in (*out.values(), overall):  # each line runs on to the job's last trial
        if series.x and records:
            series.x.append(max(float(r["wall_clock_time"]) for r in records))
            series.y.append(series.y[-1])
    return [*out.values(), overall]


def write(job_dir: str, task_id: str, metric: str, records: list[dict[str, Any]], score: Callable[[float], float], higher_is_better: bool,
          facts: list[tuple[str, Any]]) -> None:
    """report.html and report/*.png into ``job_dir``, beside the job's other outputs."""
    lines = best_so_far(records, score, higher_is_better)
    importances_csv = storage.join(job_dir, "feature_importances.csv")
    found = ({row["feature"]: float(row["importance"]) for row in csv.DictReader(io.StringIO(storage.read_text(importances_csv)))}
             if storage.exists(importances_csv) else {})
    top = dict(list(found.items())[:20])  # the CSV is sorted, most important first
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    best = lines[-1].y[-1] if lines and lines[-1].y else None
    body = [f"<h1>dltune automl: {html.escape(task_id)}</h1>", f'<table id="plan">{rows}</table>',
            f'<p id="best">Best validation {html.escape(metric)}: <b id="best-value" data-value="{best!r}">{best:.6g}</b> over {len(records)} trials.</p>'
            if best is not None else f'<p id="best">No trial finished: there is no best {html.escape(metric)}.</p>',
            f"<h2>Best validation {html.escape(metric)} so far, per estimator</h2>"]
    pngs = {}
    if records:
        body.append(lines_figure(lines, WALL_AXIS, metric, False, by_name=True).to_html(full_html=False, include_plotlyjs=False, div_id="best-wall"))
        pngs["best_so_far_wall.png"] = lines_png(lines, WALL_AXIS, metric, False, by_name=True)
    if top:
        body.append(f"<h2>Feature importance of the best model ({len(top)} of {len(found)} features)</h2>")
        body.append(importance_figure(top, "importance").to_html(full_html=False, include_plotlyjs=False, div_id="importance"))
        pngs["importance.png"] = importance_png(top, "importance")
    for name, data in pngs.items():
        storage.write_bytes(storage.join(job_dir, "report", name), data)
    storage.write_text(storage.join(job_dir, "report.html"), page(task_id, body))
