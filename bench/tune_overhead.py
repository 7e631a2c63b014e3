"""What dltune's search driver costs on top of Ray Tune, measured side by side in one run.

    python bench/tune_overhead.py [--trials 200] [--reports 10] [--startup-trials 5]

1. The same trivial trainable (``--reports`` reports per trial) through
   ``dltune.hpo.tuner.run_search`` (resource plan, monitor, TensorBoard per
   trial, results export) and through a plain Ray Tune script; prints the
   wall-time ratio dltune / raw (target <= 1.10).
2. Start-up of a single-worker training trial: dltune's direct path (the loop
   inside the Tune trial) versus the same trial run as a one-worker
   TorchTrainer; prints both medians of the per-trial wall time.

Writes bench/results/tune_overhead.md.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def trivial(config: dict, base: dict | None = None) -> None:
    from ray import tune

    for i in range(REPORTS):
        tune.report({"epoch": i + 1, "val_loss": (config["optim.lr"] - 0.01) ** 2 + 1.0 / (i + 1)})


REPORTS = 10


def dltune_search(trials: int, out: str, trial_fn=None, extra: list[str] = ()) -> tuple[float, list]:
    from dltune.config import load_config
    from dltune.hpo.tuner import run_search

    cfg = load_config(None, [f"output.dir={out}", "output.experiment=bench", "tune.searcher=random", "tune.scheduler=fifo",
                             f"tune.num_samples={trials}", "tune.space={optim.lr: {uniform: [0.0001, 0.1]}}", *extra])
    started = time.perf_counter()
    result = run_search(cfg, verbose=False, trial_fn=trial_fn)
    return time.perf_counter() - started, result.rows


def raw_search(trials: int, out: str, concurrency: int) -> float:
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    tuner = tune.Tuner(
        tune.with_resources(trivial, {"CPU": 1}),
        param_space={"optim.lr": tune.uniform(0.0001, 0.1)},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", num_samples=trials, max_concurrent_trials=concurrency),
        # Ray's default result loggers (dltune keeps the same two; TensorBoard is its own).
        run_config=tune.RunConfig(storage_path=out, name="raw", verbose=0, callbacks=[JsonLoggerCallback(), CSVLoggerCallback()]),
    )
    started = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - started


def main() -> None:
    global REPORTS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--startup-trials", type=int, default=5)
    args = parser.parse_args()
    REPORTS = args.reports

    import os

    import ray

    from dltune.hpo.trial import multi_worker_trial
    from dltune.hpo.tuner import quiet_ray_output

    quiet_ray_output()
    cpus = os.cpu_count() or 2
    ray.init(num_cpus=cpus, log_to_driver=False, include_dashboard=True, dashboard_host="127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp:
        raw_s = raw_search(args.trials, tmp, cpus)
        dlt_s, _ = dltune_search(args.trials, f"{tmp}/d", trial_fn=trivial)
        small = ["model.hidden=[16]", "train.epochs=1", "train.max_steps_per_epoch=1", "train.batch_size=16"]
        _, direct = dltune_search(args.startup_trials, f"{tmp}/s1", extra=small)
        _, trainer = dltune_search(args.startup_trials, f"{tmp}/s2", trial_fn=multi_worker_trial, extra=[*small, "tune.max_concurrent_trials=1"])
    ray.shutdown()
    direct_med = statistics.median(r.wall_time_s for r in direct)
    trainer_med = statistics.median(r.wall_time_s for r in trainer)
    lines = [
        "# Tune overhead",
        "",
        f"Machine: {cpus} CPUs; command: `python bench/tune_overhead.py --trials {args.trials} --reports {args.reports} --startup-trials {args.startup_trials}`",
        "",
        "| measure | value |",
        "|---|---|",
        f"| raw Ray Tune, {args.trials} trivial trials x {args.reports} reports | {raw_s:.1f} s |",
        f"| dltune run_search, same trainable | {dlt_s:.1f} s |",
        f"| **ratio dltune / raw** (target <= 1.10) | **{dlt_s / raw_s:.2f}** |",
        f"| single-worker trial, dltune direct path, median wall | {direct_med:.2f} s |",
        f"| same trial as a 1-worker TorchTrainer, median wall | {trainer_med:.2f} s |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tune_overhead.md").write_text(text)


if __name__ == "__main__":
    main()
