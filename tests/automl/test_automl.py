"""dltune automl end to end: real FLAML searches on scikit-learn's bundled tables written as parquet/CSV."""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from automl_data import frame, write_split
from conftest import ROOT

from dltune import storage
from dltune.automl.cli import add_parser, config_from_args, run
from dltune.automl.config import field_names
from dltune.automl.job import plan_concurrency
from dltune.errors import UserError
from dltune.schema import to_mapping

OUR_LINES = ("automl ", "concurrency:", "progress:", "warm start:", "done:", "outputs:")


def parse(*argv: str) -> argparse.Namespace:
    """Parse ``dltune automl ARGV`` with the parser the main CLI registers."""
    parser = argparse.ArgumentParser(prog="dltune")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["automl", *map(str, argv)])


def automl(*argv: str) -> int:
    return run(parse(*argv))


def cli(*argv: str) -> subprocess.CompletedProcess:
    """``python -m dltune.automl.cli ARGV`` as a user would run it."""
    return subprocess.run([sys.executable, "-m", "dltune.automl.cli", *map(str, argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def metrics_of(task_dir: Path) -> dict:
    return json.loads((task_dir / "metrics.json").read_text())


def trial_records(task_dir: Path) -> list[dict]:
    lines = (task_dir / "flaml_trials.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, filter(None, lines)) if "learner" in r]


@pytest.fixture(scope="module")
def breast_cancer(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The users' job on breast cancer, run once through the command line; several tests read its outputs."""
    root = tmp_path_factory.mktemp("bc")
    train, test = write_split("breast_cancer", root / "data")
    done = cli("--task_id", "bc", "--train_data", train, "--test_data", test, "--label_col", "label",
               "--output_path", root / "outputs", "--time_budget", 8, "--task", "classification",
               "--metric", "roc_auc", "--estimator_list", '["lgbm"]', "--estimator_kwargs", '{"n_jobs": 2}', "--seed", 1)
    assert done.returncode == 0, done.stderr
    return {"dir": root / "outputs" / "bc", "test": test, "stdout": done.stdout, "stderr": done.stderr}


@pytest.mark.slow
def test_breast_cancer_binary_job(breast_cancer: dict) -> None:
    task_dir = breast_cancer["dir"]
    metrics = metrics_of(task_dir)
    assert metrics["metric"] == "roc_auc" and metrics["test"] >= 0.95
    assert metrics["trials"] == len(trial_records(task_dir)) and metrics["best_estimator"] == "lgbm"
    for name in ("model.pkl", "model.lgbm.txt", "best_config.json", "predictions.parquet",
                 "feature_importances.csv", "flaml_trials.jsonl", "job.log", "summary.json"):
        assert (task_dir / name).is_file(), name
    summary = json.loads((task_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and "metrics.json" in summary["outputs"]
    best = json.loads((task_dir / "best_config.json").read_text())
    assert best["best_estimator"] == "lgbm" and best["best_config"] == best["best_config_per_estimator"]["lgbm"]
    predictions = pd.read_parquet(task_dir / "predictions.parquet")
    assert list(predictions.columns) == ["label", "prediction", "proba_0", "proba_1"]
    assert len(predictions) == metrics["test_rows"]
    # The terminal shows only our lines (progress included); FLAML's and Ray's output is in job.log.
    lines = breast_cancer["stdout"].splitlines()
    assert lines and all(line.startswith(OUR_LINES) for line in lines), lines
    assert any(line.startswith("progress:") and "best roc_auc" in line for line in lines)
    assert not any(marker in breast_cancer["stdout"] + breast_cancer["stderr"] for marker in ("flaml.automl", "INFO", "WARNING"))
    assert "flaml.automl" in (task_dir / "job.log").read_text()


@pytest.mark.slow
def test_predict_reproduces_saved_predictions(breast_cancer: dict, tmp_path: Path) -> None:
    out = tmp_path / "scored.parquet"
    assert automl("predict", "--model", breast_cancer["dir"], "--data", breast_cancer["test"], "--out", out) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(breast_cancer["dir"] / "predictions.parquet"))


@pytest.mark.slow
def test_finished_task_dir_is_not_replaced_without_overwrite(breast_cancer: dict) -> None:
    task_dir = breast_cancer["dir"]
    before = (task_dir / "summary.json").read_text()
    args = parse("--task_id", "bc", "--output_path", task_dir.parent, "--train_data", breast_cancer["test"], "--time_budget", 1)
    with pytest.raises(UserError, match="--overwrite"):
        run(args)
    assert (task_dir / "summary.json").read_text() == before


@pytest.mark.slow
def test_multiclass_digits_with_split(tmp_path: Path) -> None:
    frame("digits").to_parquet(tmp_path / "digits.parquet", index=False)
    automl("--task_id", "digits", "--train_data", tmp_path / "digits.parquet", "--output_path", tmp_path,
           "--time_budget", 8, "--estimator_list", "lgbm", "--n_jobs", 2, "--quiet")
    metrics = metrics_of(tmp_path / "digits")
    assert metrics["metric"] == "log_loss" and metrics["test"] < 1.0  # uniform guessing: ln(10) = 2.3
    assert metrics["test_source"].startswith("stratified split") and metrics["test_rows"] == 360
    predictions = pd.read_parquet(tmp_path / "digits" / "predictions.parquet")
    assert [f"proba_{k}" for k in range(10)] == list(predictions.columns[2:])
    assert (predictions["prediction"] == predictions["label"]).mean() > 0.8


@pytest.mark.slow
def test_regression_diabetes_csv_keeps_secrets_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "Pa55-word-417"
    monkeypatch.setenv("HADOOP_USER_PASSWORD", secret)
    data_dir = tmp_path / f"data-{secret}"
    data_dir.mkdir()
    frame("diabetes").to_csv(data_dir / "diabetes.csv", index=False)
    automl("--task_id", "diabetes", "--train_data", data_dir / "diabetes.csv", "--output_path", tmp_path / "out",
           "--time_budget", 5, "--task", "regression", "--metric", "r2", "--estimator_list", "lgbm,extra_tree",
           "--estimator_kwargs", '{"n_jobs": 2, "random_state": 0}', "--quiet")
    task_dir = tmp_path / "out" / "diabetes"
    metrics = metrics_of(task_dir)
    assert metrics["metric"] == "r2" and metrics["test"] > 0.15 and metrics["n_jobs"] == 2
    best = json.loads((task_dir / "best_config.json").read_text())
    assert best["best_config"]["random_state"] == 0  # estimator_kwargs left after lifting n_jobs are fixed parameters
    assert list(pd.read_parquet(task_dir / "predictions.parquet").columns) == ["label", "prediction"]
    for path in (p for p in task_dir.rglob("*") if p.is_file()):  # report/*.png too
        assert secret.encode() not in path.read_bytes(), path.name
    assert "data-***" in (task_dir / "summary.json").read_text()


USERS_FLAGS = (
    "--task_id", "task_123456",
    "--train_data", "hdfs://ns/warehouse/train/part-00000.snappy.parquet",
    "--test_data", "hdfs://ns/warehouse/test/part-00000.snappy.parquet",
    "--label_col", "label", "--output_path", "./outputs", "--time_budget", "240",
    "--task", "classification", "--metric", "roc_auc", "--estimator_list", '["lgbm"]',
    "--estimator_kwargs", '{"n_jobs": 4, "n_concurrent_trials": 5}', "--seed", "1",
)


def test_flags_and_yaml_give_the_same_config(tmp_path: Path) -> None:
    flags = config_from_args(parse(*USERS_FLAGS))
    assert (flags.n_jobs, flags.n_concurrent_trials, flags.estimator_kwargs) == (4, 5, {})
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({
        "task_id": "task_123456",
        "train_data": "hdfs://ns/warehouse/train/part-00000.snappy.parquet",
        "test_data": "hdfs://ns/warehouse/test/part-00000.snappy.parquet",
        "label_col": "label", "output_path": "./outputs", "time_budget": 240, "task": "classification",
        "metric": "roc_auc", "estimator_list": ["lgbm"], "estimator_kwargs": {"n_jobs": 4, "n_concurrent_trials": 5}, "seed": 1,
    }))
    assert to_mapping(config_from_args(parse(config))) == to_mapping(flags)
    # YAML < flags < key=value
    layered = config_from_args(parse(config, "seed=3", "estimator_kwargs.n_jobs=2", "--time_budget", "60", "--seed", "2"))
    assert (layered.time_budget, layered.seed, layered.n_jobs, layered.n_concurrent_trials) == (60.0, 3, 2, 5)


def test_shipped_yaml_is_a_valid_job() -> None:
    cfg = config_from_args(parse(ROOT / "configs" / "automl_lgbm.yaml"))
    assert (cfg.task_id, cfg.metric, cfg.estimator_list, cfg.n_concurrent_trials) == ("breast_cancer_lgbm", "roc_auc", ["lgbm"], 5)


def test_docs_list_every_flag() -> None:
    text = (ROOT / "docs" / "automl.md").read_text()
    assert [name for name in field_names() if f"`--{name}`" not in text] == []


def test_concurrency_is_capped_by_cluster_cpus() -> None:
    users = plan_concurrency(5, 4, 8.0, on_ray=True)  # the users' settings on an 8-CPU cluster
    assert (users.trials, users.n_jobs) == (2, 4)
    assert users.describe() == ("concurrency: 2 trials at a time on Ray (8 CPUs), n_jobs=4 each; "
                                "5 concurrent trials were asked for, but 8 CPUs hold 2 of n_jobs=4")
    auto = plan_concurrency(2, -1, 4.0)
    assert (auto.trials, auto.n_jobs) == (2, 2)
    small = plan_concurrency(3, 4, 2.0)
    assert (small.trials, small.n_jobs) == (1, 2)
    assert small.describe().endswith("; n_jobs=4 capped at the 2 CPUs there are")


def test_a_job_that_can_run_one_trial_at_a_time_starts_no_ray(no_ray, tmp_path: Path) -> None:
    from dltune.automl.job import concurrency

    cfg = config_from_args(parse("--task_id", "one", "--train_data", tmp_path / "t.csv", "--output_path", tmp_path, "--ray_num_cpus", 2,
                                 "--estimator_kwargs", '{"n_jobs": 4, "n_concurrent_trials": 2}'))
    with concurrency(cfg) as plan:
        assert plan.trials == 1 and not plan.on_ray
        assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()  # 2 CPUs hold one trial of n_jobs=2
    assert "in this process" in plan.describe() and "2 concurrent trials were asked for" in plan.describe()


@pytest.mark.ray
@pytest.mark.slow
def test_concurrent_trials_overlap_on_local_ray(no_ray, tmp_path: Path) -> None:
    import ray

    train, test = write_split("breast_cancer", tmp_path / "data")
    # Ray reuses a trial's worker for the next trial; trials much shorter than starting a second
    # worker (seconds on a busy machine) would all land on the first one. A fixed n_estimators
    # (an estimator parameter passed through estimator_kwargs) makes each trial last long enough.
    automl("--task_id", "par", "--train_data", train, "--test_data", test, "--output_path", tmp_path,
           "--time_budget", 15, "--estimator_list", "lgbm", "--metric", "roc_auc", "--ray_num_cpus", 4, "--quiet",
           "--estimator_kwargs", '{"n_jobs": 1, "n_concurrent_trials": 2, "n_estimators": 1500}')
    assert not ray.is_initialized()  # the job shuts down the Ray it started
    task_dir = tmp_path / "par"
    metrics = metrics_of(task_dir)
    assert metrics["concurrent_trials"] == 2 and metrics["test"] > 0.9
    assert json.loads((task_dir / "best_config.json").read_text())["best_config"]["n_estimators"] == 1500
    assert "concurrency: 2 trials at a time on Ray (4 CPUs), n_jobs=1 each" in (task_dir / "job.log").read_text()
    spans = sorted((r["wall_clock_time"] - r["trial_time"], r["wall_clock_time"]) for r in trial_records(task_dir))
    assert len(spans) >= 2
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans


@pytest.mark.slow
def test_warm_start_tries_previous_best_first(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    train, test = write_split("breast_cancer", tmp_path / "data")
    common = ("--train_data", train, "--test_data", test, "--output_path", tmp_path, "--time_budget", 3, "--n_jobs", 2)
    automl("--task_id", "first", "--estimator_list", "lgbm", *common, "--quiet")
    previous = json.loads((tmp_path / "first" / "best_config.json").read_text())["best_config_per_estimator"]["lgbm"]
    capfd.readouterr()
    automl("--task_id", "second", "--estimator_list", "lgbm,rf", "--warm_start", tmp_path / "first", *common, "--quiet")
    assert capfd.readouterr().out == ""  # --quiet
    task_dir = tmp_path / "second"
    first_lgbm = next(r["config"] for r in trial_records(task_dir) if r["learner"] == "lgbm")
    assert first_lgbm == pytest.approx(previous)
    assert "warm start: first lgbm configuration tried is the previous best" in (task_dir / "job.log").read_text()
    assert metrics_of(task_dir)["warm_start_first_trial_is_previous_best"] == {"lgbm": True}


@pytest.mark.slow
def test_s3_input_and_outputs(s3_server: dict[str, str], tmp_path: Path) -> None:
    train, test = write_split("breast_cancer", tmp_path)
    for path in (train, test):
        storage.write_bytes(f"s3://lake/in/{path.name}", path.read_bytes())
    automl("--task_id", "s3job", "--train_data", "s3://lake/in/train.parquet", "--test_data", "s3://lake/in/test.parquet",
           "--output_path", "s3://lake/out", "--time_budget", 2, "--estimator_list", "lgbm", "--n_jobs", 2, "--quiet")
    names = {p.rsplit("/", 1)[-1] for p in storage.list_files("s3://lake/out/s3job")}
    assert {"model.pkl", "metrics.json", "predictions.parquet", "summary.json", "job.log", "flaml_trials.jsonl"} <= names
    automl("predict", "--model", "s3://lake/out/s3job", "--data", "s3://lake/in/test.parquet", "--out", "s3://lake/scored.parquet", "--quiet")
    scored, saved = (pd.read_parquet(io.BytesIO(storage.read_bytes(p))) for p in ("s3://lake/scored.parquet", "s3://lake/out/s3job/predictions.parquet"))
    pd.testing.assert_frame_equal(scored, saved)


def _write_bad_tables(root: Path) -> None:
    data = frame("breast_cancer")
    data.drop(columns="label").to_parquet(root / "nolabel.parquet")
    data.assign(label=1).to_parquet(root / "oneclass.parquet")
    data.iloc[:0].to_parquet(root / "norows.parquet")
    (root / "empty.parquet").write_bytes(b"")
    (root / "garbage.parquet").write_bytes(b"this is not parquet")
    data.to_parquet(root / "good.parquet")


# case -> (extra command-line arguments given the data directory, expected part of the one-line error)
BAD_INPUTS = {
    "missing label": (lambda root: ["--train_data", root / "nolabel.parquet"], "no label column 'label'"),
    "one class": (lambda root: ["--train_data", root / "oneclass.parquet"], "single class"),
    "empty file": (lambda root: ["--train_data", root / "empty.parquet"], "Parquet file size is 0 bytes"),
    "no rows": (lambda root: ["--train_data", root / "norows.parquet"], "has no rows"),
    "unreadable": (lambda root: ["--train_data", root / "garbage.parquet"], "cannot read"),
    "missing file": (lambda root: ["--train_data", root / "absent.parquet"], "no such file"),
    "unknown estimator": (lambda root: ["--train_data", root / "good.parquet", "--estimator_list", '["lgbmm"]'], "did you mean 'lgbm'"),
    "unknown metric": (lambda root: ["--train_data", root / "good.parquet", "--metric", "roc_auk"], "did you mean 'roc_auc'"),
    "metric of another task": (lambda root: ["--train_data", root / "good.parquet", "--task", "regression", "--metric", "roc_auc"], "not a regression metric"),
    "non-JSON estimator_kwargs": (lambda root: ["--train_data", root / "good.parquet", "--estimator_kwargs", "{n_jobs: 4}"], "estimator_kwargs: not valid JSON"),
    "malformed estimator_list": (lambda root: ["--train_data", root / "good.parquet", "--estimator_list", '["lgbm"'], "estimator_list: not a valid JSON list"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_code_2(case: str, tmp_path: Path) -> None:
    _write_bad_tables(tmp_path)
    extra, expected = BAD_INPUTS[case]
    done = cli("--task_id", "bad", "--output_path", tmp_path / "out", "--time_budget", 2, *extra(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("dltune: error: "), done.stderr
    assert expected in done.stderr
    assert not (tmp_path / "out").exists()  # nothing that could pass for output


def test_main_cli_registers_automl(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "dltune", "automl", "--task_id", "x", "--train_data", tmp_path / "t.parquet",
                           "--estimator_kwargs", "n_jobs=4"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("dltune: error: estimator_kwargs: not valid JSON"), done.stderr
