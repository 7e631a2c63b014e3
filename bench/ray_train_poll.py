"""How long a short Ray Train run takes with Ray's health-check interval (2 s) and with dltune's
(0.25 s), side by side in one run.

    python bench/ray_train_poll.py [--repeats 3] [--epochs 2] [--workers 2] [--out DIR] [--quick]

A Ray Train controller polls its workers every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S, and sees each
step of a run's life (started, running, finished, shut down) only at a poll. Each round starts a
fresh local Ray per variant (the controller reads the interval from the environment its workers
get) and times two runs of the quickstart (digits, small CNN, ``--epochs`` epochs, ``--workers``
workers) through ``dltune.train``: the first on that Ray, which also starts Ray Train's shared
actors, and the next, as every later trial of a search meets it. Variants alternate, in a
rotating order. Writes ray_train_poll.md to --out (default bench/results).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, interleave, invocation, machine_line, markdown_table, paired_ratio, parse_bench_args, spread, write_markdown  # noqa: E402
from dltune import api, ray_compat  # noqa: E402
from dltune.launch.ray_cluster import start_local_ray  # noqa: E402

INTERVALS = {"Ray's default (2 s)": "2", "dltune's (0.25 s)": "0.25"}


def two_runs(interval: str, overrides: list[str], times: dict[str, list[float]], label: str) -> float:
    """A fresh local Ray with this interval, two runs on it; the first run's time is returned (for
    interleave), the second's is kept in ``times``."""
    import ray

    with ray_compat.environment({ray_compat.HEALTH_CHECK_VARIABLE: interval}):
        start_local_ray(num_cpus=2, log_to_driver=False)
        try:
            with tempfile.TemporaryDirectory() as out:
                took = []
                for name in ("first", "next"):
                    start = time.perf_counter()
                    api.train(str(REPO / "configs" / "quickstart.yaml"), [*overrides, f"output.dir={out}", f"output.experiment={name}"], verbose=False)
                    took.append(time.perf_counter() - start)
        finally:
            ray.shutdown()
    times[label].append(took[1])
    print(f"{label}: first run {took[0]:.1f} s, next run {took[1]:.1f} s", flush=True)
    return took[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parse_bench_args(parser, {"repeats": 1})
    if ray_compat.HEALTH_CHECK_VARIABLE in os.environ:
        raise SystemExit(f"unset {ray_compat.HEALTH_CHECK_VARIABLE}: this benchmark sets it for each variant")
    overrides = ["scaling.launcher=ray", f"scaling.num_workers={args.workers}", f"train.epochs={args.epochs}"]
    nexts: dict[str, list[float]] = {label: [] for label in INTERVALS}
    firsts = interleave({label: (lambda label=label: two_runs(INTERVALS[label], overrides, nexts, label)) for label in INTERVALS}, args.repeats)
    default, ours = INTERVALS
    rows = [[label, spread(firsts[label], 1), spread(nexts[label], 1)] for label in INTERVALS]
    rows.append(["dltune / default (median of rounds)", f"{paired_ratio(firsts[ours], firsts[default]):.2f}",
                 f"{paired_ratio(nexts[ours], nexts[default]):.2f}"])
    text = "\n\n".join([
        "# A short Ray Train run: the controller's health-check interval",
        f"`{invocation()}`",
        machine_line(),
        f"Quickstart (digits, small CNN), {args.epochs} epochs on {args.workers} Ray Train workers, {args.repeats} rounds; "
        "seconds, median (min-max). First: the first run on a fresh local Ray. Next: the run after it on the same Ray.",
        markdown_table(["interval", "first run (s)", "next run (s)"], rows),
    ]) + "\n"
    print(text)
    write_markdown(args.out, "ray_train_poll", text)


if __name__ == "__main__":
    main()
