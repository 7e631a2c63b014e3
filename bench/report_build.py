"""How long `dltune report` takes for a large search: a synthetic experiment dir of N trials
(each with its own learning curve, some paused and resumed, a quarter stopped early) is written,
then the report is built R times, timed, with its parts timed once.

    python bench/report_build.py --trials 1000 --epochs 20 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from dltune.report import write_report
from dltune.report.experiment import load


def write_experiment(root: Path, trials: int, epochs: int, slots: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    exp = root / "big"
    exp.mkdir()
    rows = ["trial_id,best_loss,stop_reason"]
    free = [0.0] * slots
    for i in range(trials):
        trial_id = f"{i:08x}"
        lr, width = float(10 ** rng.uniform(-4, -1)), int(rng.choice([16, 32, 64]))
        stop = int(rng.choice([1, 3, 9])) if rng.random() < 0.25 else epochs
        slot = int(np.argmin(free))
        t, lines, best = free[slot], [], None
        since = 0.0
        for e in range(1, stop + 1):
            restored = e == 1 or (e == 4 and stop > 4)  # a pause at epoch 3, as HyperBand makes
            if restored:
                since, k = 0.0, 0
                t += 2.0
            k += 1
            step = float(rng.uniform(0.5, 1.5))
            t += step
            since += step
            loss = abs(np.log10(lr) + 2.5) + 1.0 / e + rng.normal(0, 0.02)
            best = loss if best is None else min(best, loss)
            lines.append(json.dumps({"loss": loss, "epoch": e, "training_iteration": e, "timestamp": int(1_700_000_000 + t), "time_this_iter_s": step,
                                     "time_since_restore": since, "iterations_since_restore": k, "config": {"optim.lr": lr, "model.width": width}}))
        free[slot] = t
        trial_dir = exp / f"fn_trial_{trial_id}_{i}_lr={lr:.4f}_2026-01-01_00-00-00"
        trial_dir.mkdir()
        (trial_dir / "result.json").write_text("\n".join(lines) + "\n")
        rows.append(f"{trial_id},{best},{'completed' if stop == epochs else 'early_stopped'}")
    (exp / "results.csv").write_text("\n".join(rows) + "\n")
    summary = {"status": "finished", "searcher": "optuna", "sampler": "tpe", "scheduler": "hyperband", "reason": "synthetic", "metric": "loss", "mode": "min",
               "trials": trials, "concurrency": slots, "resources_per_trial": {"CPU": 1.0}, "wall_time_s": max(free)}
    (exp / "summary.json").write_text(json.dumps(summary))
    return exp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exp = write_experiment(Path(tmp), args.trials, args.epochs, args.slots)
        from dltune.report import render

        started = time.perf_counter()
        loaded = load(str(exp))
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        render.build(loaded)
        build_s = time.perf_counter() - started
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            write_report(str(exp))
            times.append(time.perf_counter() - started)
        size = (exp / "report.html").stat().st_size
    print(f"{args.trials} trials x {args.epochs} epochs: read {read_s:.2f} s, draw {build_s:.2f} s (the first, with imports); "
          f"whole report {statistics.median(times):.2f} s median of {args.repeats} (min {min(times):.2f}, max {max(times):.2f}); report.html {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
