"""report.html: written by every search, drawn from its experiment dir, checked in real headless
Chromium (Debian's, driven by Playwright)."""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from automl_data import write_split
from conftest import run_cli, shared_ray
from objectives import broken, paced_curve as curve
from dltune import api
from dltune.errors import RunFailed
from dltune.report.experiment import load

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _search(out: Path, fn, name: str) -> Path:
    """Six seeded trials one at a time: ASHA then sees them in a fixed order, so its decisions are
    too (four at once could reach a rung worst first, and ASHA would rightly stop none)."""
    api.tune(None, ["tune.space={params.x: {uniform: [-5.0, 5.0]}}", "tune.metric=loss", "tune.mode=min", "tune.num_samples=6", "tune.max_concurrent_trials=1",
                    "train.epochs=6", "tune.searcher=random", "tune.scheduler=asha", "tune.grace_period=1", "tune.reduction_factor=2",
                    # each epoch half a second, so the figures over time (Ray's timestamps are whole seconds) have a shape
                    "params.sleep=0.5", f"output.dir={out}", f"output.experiment={name}"], verbose=False, fn=fn)
    return out / name


@pytest.fixture(scope="module")
def searched(user_root: Path, _ray_shut_down_at_the_end: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared_ray()
    return _search(tmp_path_factory.mktemp("report"), curve, "asha")


def _rendered(page_path: Path, figure: str, seen: str, screenshot: Path | None = None) -> dict:
    """What Chromium shows of a report once ``figure`` is drawn: ``seen`` (a JavaScript expression) and the page's JavaScript errors."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "the report test needs Debian's chromium: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(page_path.as_uri())
            page.wait_for_function(f"() => document.getElementById('{figure}') && document.getElementById('{figure}').data")
            out = page.evaluate(f"() => ({seen})")
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {**out, "errors": errors}


SEARCH_SEEN = """{curves: document.getElementById('curves').data.length,
                 bars: document.getElementById('timeline').data.reduce((n, t) => n + t.x.length, 0),
                 best: document.getElementById('best-value').dataset.value,
                 figures: document.querySelectorAll('.plotly-graph-div').length}"""


@pytest.mark.ray
@pytest.mark.slow
def test_a_search_writes_a_report_that_chromium_renders_as_results_csv_says(searched: Path, tmp_path: Path) -> None:
    with open(searched / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["stop_reason"] for r in rows} == {"completed", "early_stopped"}, rows  # the curves have both colours
    seen = _rendered(searched / "report.html", "curves", SEARCH_SEEN, Path(os.environ.get("DLTUNE_REPORT_SCREENSHOT") or tmp_path / "report.png"))
    assert seen["errors"] == []
    assert seen["curves"] == len(rows) == 6
    assert seen["bars"] == len(rows)  # ASHA never pauses: one run per trial
    assert seen["figures"] == 6
    assert float(seen["best"]) == min(float(r["best_loss"]) for r in rows)
    for name in ("best_so_far_wall", "best_so_far_compute", "learning_curves", "timeline", "parallel_coordinates", "importance"):
        assert (searched / "report" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC, name


@pytest.mark.ray
@pytest.mark.slow
def test_a_search_whose_every_trial_failed_still_gets_a_report_that_says_so(ray_cluster, tmp_path: Path) -> None:
    with pytest.raises(RunFailed):
        _search(tmp_path, broken, "failed")
    text = (tmp_path / "failed" / "report.html").read_text()
    assert "No trial reported loss: there is no best result." in text and "failed" in text


@pytest.mark.ray
@pytest.mark.slow
def test_report_compares_two_searches_and_rewrites_one_on_demand(searched: Path, tmp_path: Path) -> None:
    (searched / "report.html").unlink()
    done = run_cli("report", str(searched))
    assert done.returncode == 0 and (searched / "report.html").is_file(), done.stderr
    other = tmp_path / "copy"
    shutil.copytree(searched, other)
    out = tmp_path / "both.html"
    done = run_cli("report", str(searched), str(other), "--out", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert 'id="compare-compute"' in text and "asha (random + asha)" in text and "copy (random + asha)" in text
    assert out.with_suffix(".png").read_bytes()[:8] == PNG_MAGIC


def test_report_of_a_dir_that_is_no_search_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_cli("report", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"dltune: error: {tmp_path} is not a dltune search: it has no summary.json (a search writes it when it ends)"]


def _write_trial(exp: Path, trial_id: str, stamp: str, losses: list[float], x: float = 1.0) -> None:
    trial_dir = exp / f"fn_trial_{trial_id}_1_x={x}_{stamp}"
    trial_dir.mkdir()
    lines = [json.dumps({"loss": loss, "epoch": i + 1, "timestamp": 100 + i, "time_since_restore": i + 1.0, "iterations_since_restore": i + 1,
                         "config": {"x": x}}) for i, loss in enumerate(losses)]
    (trial_dir / "result.json").write_text("\n".join(lines) + "\n")


def test_a_trial_a_killed_driver_started_twice_is_reported_once(tmp_path: Path) -> None:
    """Its first run's dir, left by the killed driver, has fewer reports than the one that finished;
    the killed driver's last line is torn."""
    (tmp_path / "summary.json").write_text('{"metric": "loss", "mode": "min"}')
    (tmp_path / "results.csv").write_text("trial_id,best_loss,stop_reason\nab12cd34,0.5,completed\n")
    _write_trial(tmp_path, "ab12cd34", "2026-01-01_00-00-00", [1.0])
    with open(next(tmp_path.glob("*00-00-00")) / "result.json", "a") as f:
        f.write('{"loss": 0.4, "epo')
    _write_trial(tmp_path, "ab12cd34", "2026-01-01_00-05-00", [1.0, 0.5, 0.33])
    exp = load(str(tmp_path))
    assert [(t.trial_id, len(t.reports), t.stop_reason) for t in exp.trials] == [("ab12cd34", 3, "completed")]


def test_the_reports_best_and_top_trials_rank_a_failed_trial_after_the_others(tmp_path: Path) -> None:
    from dltune.report.render import build

    (tmp_path / "summary.json").write_text('{"metric": "loss", "mode": "min"}')
    (tmp_path / "results.csv").write_text("trial_id,best_loss,stop_reason\n0000000a,0.1,error\n0000000b,0.5,completed\n0000000c,0.7,completed\n")
    for trial_id, losses, x in (("0000000a", [0.3, 0.1], 1.0), ("0000000b", [0.9, 0.5], 2.0), ("0000000c", [0.7], 3.0)):
        _write_trial(tmp_path, trial_id, "2026-01-01_00-00-00", losses, x=x)
    html, _ = build(load(str(tmp_path)), pngs=False)
    assert 'data-value="0.5"' in html  # as best_config.yaml: the diverging trial's 0.1 before it broke is no best
    ranks = re.findall(r"<tr><td>(\d)</td><td>([0-9a-f]{8})</td>", html)
    assert ranks == [("1", "0000000b"), ("2", "0000000c"), ("3", "0000000a")], ranks


def test_a_relative_experiment_dir_whose_trials_all_tie_still_gets_its_report(tmp_path: Path) -> None:
    exp = tmp_path / "tied"
    exp.mkdir()
    (exp / "summary.json").write_text('{"metric": "loss", "mode": "min", "searcher": "random", "scheduler": "fifo"}')
    for i, trial_id in enumerate(["0000000a", "0000000b", "0000000c"]):
        _write_trial(exp, trial_id, "2026-01-01_00-00-00", [0.5, 0.5], x=float(i))
    done = run_cli("report", "tied", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    text = (exp / "report.html").read_text()
    assert "Learning curves (3 trials)" in text and "every trial&#x27;s best loss is the same" in text
    assert sorted(p.name for p in (exp / "report").iterdir()) == ["best_so_far_compute.png", "best_so_far_wall.png", "learning_curves.png", "timeline.png"]


@pytest.mark.slow
def test_an_automl_job_writes_a_report_of_each_estimators_best_so_far(tmp_path: Path) -> None:
    train, test = write_split("breast_cancer", tmp_path / "data")
    done = run_cli("automl", "--task_id", "bc", "--train_data", str(train), "--test_data", str(test), "--label_col", "label", "--output_path",
                   str(tmp_path / "out"), "--time_budget", "6", "--task", "classification", "--metric", "roc_auc", "--estimator_list", '["lgbm", "rf"]',
                   "--estimator_kwargs", '{"n_jobs": 1}', "--seed", "1")
    assert done.returncode == 0, done.stderr
    job = tmp_path / "out" / "bc"
    metrics = json.loads((job / "metrics.json").read_text())
    seen = _rendered(job / "report.html", "best-wall", """{names: document.getElementById('best-wall').data.map(t => t.name),
                     best: document.getElementById('best-value').dataset.value, bars: document.getElementById('importance').data[0].x.length}""")
    assert seen["errors"] == [] and seen["names"] == ["lgbm", "rf", "all estimators"]
    assert float(seen["best"]) == pytest.approx(metrics["validation"])
    assert seen["bars"] == min(20, len((job / "feature_importances.csv").read_text().splitlines()) - 1)
    assert "report.html" in json.loads((job / "summary.json").read_text())["outputs"]
    for name in ("best_so_far_wall", "importance"):
        assert (job / "report" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC, name
