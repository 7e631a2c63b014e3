"""Breast-cancer AutoML job with n_concurrent_trials 1 and 2, side by side.

    python bench/automl_concurrency.py [--time_budget 20] [--n_jobs 1] [--ray_num_cpus N]

Runs ``dltune automl`` as a user would (a fresh process per job, Ray started
by the job for the parallel one), one job after the other so they do not
share CPUs, and prints test ROC AUC, trials run, search time and wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.automl_data import write_split  # noqa: E402  (scikit-learn's breast cancer as parquet)


def run_job(data: tuple[Path, Path], out: Path, concurrent: int, args: argparse.Namespace) -> dict:
    train, test = data
    command = [
        sys.executable, "-m", "dltune.automl.cli", "--task_id", f"bc_concurrent_{concurrent}",
        "--train_data", str(train), "--test_data", str(test), "--output_path", str(out),
        "--time_budget", str(args.time_budget), "--task", "classification", "--metric", "roc_auc",
        "--estimator_list", '["lgbm"]', "--seed", "1", "--quiet",
        "--estimator_kwargs", json.dumps({"n_jobs": args.n_jobs, "n_concurrent_trials": concurrent}),
    ]
    if args.ray_num_cpus:
        command += ["--ray_num_cpus", str(args.ray_num_cpus)]
    started = time.time()
    subprocess.run(command, cwd=REPO, check=True)
    metrics = json.loads((out / f"bc_concurrent_{concurrent}" / "metrics.json").read_text())
    return {**metrics, "wall_s": time.time() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time_budget", type=float, default=20)
    parser.add_argument("--n_jobs", type=int, default=1)
    parser.add_argument("--ray_num_cpus", type=int, default=None, help="logical CPUs of the local Ray cluster (default: all cores)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="automl-bench-") as tmp:
        data = write_split("breast_cancer", Path(tmp) / "data")
        results = {n: run_job(data, Path(tmp) / "outputs", n, args) for n in (1, 2)}
    print(f"breast cancer, lgbm, time_budget {args.time_budget:g}s, n_jobs {args.n_jobs}, {os.cpu_count()} CPU cores")
    print(f"{'n_concurrent_trials':>19}  {'running at once':>15}  {'test roc_auc':>12}  {'trials':>6}  {'search s':>8}  {'wall s':>6}")
    for n, m in results.items():
        print(f"{n:>19}  {m['concurrent_trials']:>15}  {m['test']:>12.4f}  {m['trials']:>6}  {m['fit_time_s']:>8.1f}  {m['wall_s']:>6.1f}")


if __name__ == "__main__":
    main()
