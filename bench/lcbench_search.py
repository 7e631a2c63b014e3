"""dltune's search methods against plain Optuna and Syne Tune on the LCBench surrogate, many seeds fast.

    python -m venv .bench && .bench/bin/pip install -e . -r bench/requirements-lcbench.txt
    .bench/bin/python bench/lcbench_search.py --lcbench-dir PATH [--seeds 3] [--budgets 10,30] [--slots 1,4]
    .bench/bin/python bench/lcbench_search.py --lcbench-dir PATH --single-fidelity [--seeds 3] [--budgets 10,30] [--slots 1,4]

``PATH`` is a folder holding the LCBench surrogate of YAHPO Gym (model.onnx,
encoding.json, config_space.json; Apache 2.0, not shipped with dltune). Each
search runs in a discrete-event simulation (bench/lcbench_sim.py) that drives the
very searcher and scheduler objects dltune builds, on a simulated clock, so a
search of hundreds of trials takes about a second. Every method meets the same
tasks, seeds, budgets and concurrency in one run; Syne Tune and onnxruntime live
in the benchmark's own environment (bench/requirements-lcbench.txt).

The protocol is the surrogate's README's: the budget is a multiple of one full
run's training seconds (all trials' epochs summed); the score is the best
epoch-52 validation accuracy reached within it; regret is the best of 20,000
random epoch-52 configurations minus the score. Regret is normalised per task by
the gap between that optimum and the median random configuration, so 0 is the
optimum, 1 is a typical random guess, and tasks weigh alike. A search with no
trial at epoch 52 by then scores 0 accuracy.

``--single-fidelity`` measures the searchers alone (``auto``'s branches for a
trial that reports once): each trial trains its 52 epochs and reports its
epoch-52 accuracy once, at the end; the peer is plain Optuna TPE, and the
results go to bench/results/lcbench_search_single.{md,png,json}.

``auto`` is not simulated apart: at each concurrency it is the method dltune's
``auto`` rule picks there, with the same seeds. A search's decisions do not
depend on its budget, so one simulated search gives its score at every budget.
Writes bench/results/lcbench_search.{md,png,json}; ``--from-json`` re-renders
the tables from an earlier run's json (after a change to the ``auto`` rule), or
from several runs' jsons over the same tasks, seeds, budgets and concurrency
(a method measured later): the simulation is seeded, so a search's regret does
not depend on the run it was in, though its milliseconds per trial do.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, invocation, machine_line, markdown_table  # noqa: E402

import lcbench_sim as sim  # noqa: E402

DEV_TASKS = ("126026 126029 146212 167104 167149 167152 167161 167168 167181 167184 167185 167190 167200 167201 "
             "168329 168330 168331 168335 168908 168910 189354 189862 189865 189866 189873 189905 189906 189908").split()
DLTUNE_METHODS = ["random+fifo", "random+asha", "random+hyperband", "optuna+fifo", "optuna+asha", "optuna+optuna_hyperband",
                  "hyperopt+asha", "blendsearch+fifo", "blendsearch+asha", "bohb+hyperband"]
PEERS = ["optuna-plain", "synetune-asha", "synetune-bohb"]
SINGLE_METHODS = ["random+fifo", "optuna+fifo", "optuna:gp+fifo", "optuna:cmaes+fifo", "hyperopt+fifo", "blendsearch+fifo",
                  "cfo+fifo", "optuna-plain"]
LABELS = {"random+fifo": "random search (full fidelity)", "optuna-plain": "plain Optuna TPE + HyperbandPruner",
          "synetune-asha": "Syne Tune ASHA", "synetune-bohb": "Syne Tune BOHB"}
SINGLE_LABELS = {"random+fifo": "random search", "optuna-plain": "plain Optuna TPE"}

_surrogate: sim.Surrogate | None = None


def _init(folder: str) -> None:
    global _surrogate
    import torch

    torch.set_num_threads(1)  # one search per worker process: GPSampler's torch threads would oversubscribe the cores
    sim.quiet()
    _surrogate = sim.Surrogate(Path(folder))


def _scale(task: str) -> tuple[str, sim.TaskScale]:
    assert _surrogate is not None
    return task, sim.task_scale(_surrogate, task)


def _search(job: tuple[str, str, int, int, float, int]) -> dict[str, Any]:
    task, method, seed, slots, budget, epochs = job
    assert _surrogate is not None
    started = time.perf_counter()
    outcome, chosen = sim.run_search(_surrogate, task, method, seed, slots, budget, epochs)
    return {"task": task, "method": method, "seed": seed, "slots": slots, "trace": outcome.trace, "trials": outcome.trials,
            "epochs": outcome.epochs, "stalled": outcome.stalled, "wall_s": time.perf_counter() - started}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(args.workers, initializer=_init, initargs=(str(args.lcbench_dir),)) as pool:
        scales = dict(pool.map(_scale, args.tasks))
        top = max(args.budgets)
        jobs = [(task, method, seed, slots, top * scales[task].full_run_s, args.epochs)
                for seed in range(args.seeds) for task in args.tasks for slots in args.slots for method in args.methods]
        searches = run_jobs(pool, _search, jobs)
    return {"command": recorded_command(), "machine": machine_line(), "epochs": args.epochs, "budgets": args.budgets, "slots": args.slots, "seeds": args.seeds,
            "tasks": args.tasks, "methods": args.methods, "scales": {t: vars(s) for t, s in scales.items()}, "searches": searches}


def run_jobs(pool: Any, search: Any, jobs: list[tuple]) -> list[dict[str, Any]]:
    """Every search, in the order they end, saying how many have ended every 50."""
    searches = []
    for i, result in enumerate(pool.imap_unordered(search, jobs, chunksize=1), 1):
        searches.append(result)
        if i % 50 == 0 or i == len(jobs):
            print(f"{i}/{len(jobs)} searches", flush=True)
    return searches


def recorded_command() -> str:
    """The command line for the results: the surrogate's folder as PATH, and without --out (where
    the files go changes nothing in them)."""
    words, out = invocation().split(" "), []
    for word in words:
        if out and out[-1] in ("--lcbench-dir", "--out"):
            out[-1:] = [] if out[-1] == "--out" else [out[-1], "PATH"]
        else:
            out.append(word)
    return " ".join(out)


def epochs_of(data: dict[str, Any]) -> int:
    return data.get("epochs", sim.EPOCHS)  # runs before --single-fidelity were all multi-fidelity


def labels(data: dict[str, Any]) -> dict[str, str]:
    return SINGLE_LABELS if epochs_of(data) == 1 else LABELS


def auto_method(slots: int, epochs: int, trials: int, space: str, metric: str) -> str:
    """What dltune's ``auto`` picks for this space at this concurrency, as a method name. The rule is
    asked with ``tune.num_samples`` at ``trials``, the full runs the largest budget buys: what a
    user who can afford that many sets (the simulated searches themselves run to the budget)."""
    from dltune.config import Config, load_config
    from dltune.hpo import algorithms
    from dltune.space import parse_space

    cfg = load_config(None, [*sim.dltune_overrides("auto", 0, space, metric, epochs), f"tune.max_concurrent_trials={slots}",
                             f"tune.num_samples={trials}"])
    choice = algorithms.resolve_choice(parse_space(cfg.tune.space, Config), cfg)
    sampler = f":{choice.sampler}" if choice.searcher == "optuna" and choice.sampler != "tpe" else ""
    kwargs = "@" + ";".join(f"{k}={v}" for k, v in choice.searcher_kwargs.items()) if choice.searcher_kwargs else ""
    return f"{choice.searcher}{sampler}{kwargs}+{choice.scheduler}"


def score_at(trace: list[list[float]], budget: float, floor: float = 0.0) -> float:
    """The best score within ``budget``; ``floor`` before any (the protocol's 0 accuracy, a table's worst configuration)."""
    best = [acc for spent, acc in trace if spent <= budget]
    return best[-1] if best else floor


def regrets(data: dict[str, Any]) -> dict[tuple[str, int, float, str], list[float]]:
    """Normalised regret of every search, by (method, slots, budget multiple, task)."""
    out: dict[tuple[str, int, float, str], list[float]] = defaultdict(list)
    for s in data["searches"]:
        scale = data["scales"][s["task"]]
        gap = scale["optimum"] - scale["typical"]
        for b in data["budgets"]:
            score = score_at(s["trace"], b * scale["full_run_s"], scale.get("floor", 0.0))
            out[(s["method"], s["slots"], b, s["task"])].append((scale["optimum"] - score) / gap)
    return out


def auto_picks(data: dict[str, Any]) -> dict[int, str]:
    # runs on the surrogate before other objectives were benchmarked carry no space
    space, metric = data.get("space", sim.lcbench_space()), data.get("metric", sim.METRIC)
    picks = {slots: auto_method(slots, epochs_of(data), int(max(data["budgets"])), space, metric) for slots in data["slots"]}
    for slots, method in picks.items():
        if method not in data["methods"]:
            raise SystemExit(f"auto picks {method} at {slots} slots, which this run did not measure; add it to --methods")
    return picks


def with_auto(data: dict[str, Any], table: dict[tuple[str, int, float, str], list[float]]) -> tuple[dict, dict[int, str]]:
    picks = auto_picks(data)
    for (method, slots, b, task), values in list(table.items()):
        if method == picks[slots]:
            table[("auto", slots, b, task)] = values
    return table, picks


def medians(table: dict, methods: list[str], slots: int, b: float, tasks: list[str]) -> np.ndarray:
    """(methods x tasks) median normalised regret over seeds."""
    return np.array([[float(np.median(table[(m, slots, b, t)])) for t in tasks] for m in methods])


def ranks(values: np.ndarray) -> np.ndarray:
    """Per task (column), the rank of each method, ties sharing their mean rank (1 is best)."""
    from scipy.stats import rankdata

    return np.apply_along_axis(rankdata, 0, values)


def report(data: dict[str, Any]) -> str:
    table, picks = with_auto(data, regrets(data))
    methods = ["auto", *data["methods"]]
    tasks, names, single = data["tasks"], labels(data), epochs_of(data) == 1
    baseline = "random+fifo" if single else "random+asha"
    command = data["command"] if data["command"].startswith("`") else f"`{data['command']}`"
    about = data.get("about", "Each trial trains its 52 epochs and reports once, at the end, so the searchers learn from finished runs "
                              "only (a budget of Nx buys about N trials)." if single else "")
    lines = [data.get("title", f"# Search methods on the LCBench surrogate{', single fidelity' if single else ''}"), "", f"Command: {command}", "",
             data["machine"], "", *([about, ""] if about else []),
             f"{len(tasks)} {data.get('task_word', 'development tasks')}, {data['seeds']} seeds each, budgets of {', '.join(f'{b:g}x' for b in data['budgets'])} "
             f"a full run, {' and '.join(map(str, data['slots']))} concurrent trial{'s' if data['slots'] != [1] else ''}. Figures are normalised regret "
             f"(0: {data.get('optimum', 'the optimum estimate')}, 1: a median random configuration), the median over seeds, then over tasks.", "",
             "`auto` picks: " + "; ".join(f"{m} at {s} slot{'s' if s > 1 else ''}" for s, m in picks.items()), ""]
    settings = [(s, b) for s in data["slots"] for b in data["budgets"]]
    grids = {setting: medians(table, methods, *setting, tasks) for setting in settings}
    rank_grids = {setting: ranks(grids[setting]) for setting in settings}
    headers = ["method", *[f"{s} slot{'s' if s > 1 else ''}, {b:g}x" for s, b in settings], "average rank"]
    rows = []
    for i, m in enumerate(methods):
        cells = [f"{np.median(grids[st][i]):.3f}" for st in settings]
        avg_rank = np.mean([rank_grids[st][i].mean() for st in settings])
        rows.append((avg_rank, [names.get(m, m), *cells, f"{avg_rank:.2f}"]))
    lines += ["## Median normalised regret over tasks, and average rank over tasks and settings", "",
              markdown_table(headers, [r for _, r in sorted(rows, key=lambda x: x[0])]), ""]
    lines += ["## Targets, per setting", "", markdown_table(
        ["setting", "auto <= plain Optuna (tasks)", "auto <= 0.5x plain Optuna (tasks)", "auto's rank among all", f"auto worse than {names.get(baseline, baseline)} (tasks)"],
        [target_row(grids[st], rank_grids[st], methods, headers[1 + k], baseline) for k, st in enumerate(settings)]), ""]
    cost = defaultdict(list)
    for s in data["searches"]:
        cost[s["method"]].append(1000 * s["wall_s"] / max(s["trials"], 1))
    lines += ["## The method's own cost", "", "Wall-clock milliseconds per trial that the searcher and scheduler take "
              "(the simulation itself is a small share of it), median over all searches:", "",
              markdown_table(["method", "ms per trial"], [[names.get(m, m), f"{np.median(cost[m]):.1f}"] for m in data["methods"]]), ""]
    stalled = sum(s["stalled"] for s in data["searches"])
    lines += [f"Searches that stopped starting trials before their budget was spent: {stalled} of {len(data['searches'])}.", ""]
    return "\n".join(lines)


def target_row(grid: np.ndarray, rank_grid: np.ndarray, methods: list[str], setting: str, baseline: str) -> list[str]:
    auto, optuna, asha = (methods.index(m) for m in ("auto", "optuna-plain", baseline))
    n = grid.shape[1]
    at_or_below = int(np.sum(grid[auto] <= grid[optuna]))
    half = int(np.sum(grid[auto] <= 0.5 * grid[optuna]))
    worse = int(np.sum(grid[auto] > grid[asha]))
    avg = rank_grid.mean(axis=1)
    place = int(np.sum(avg < avg[auto])) + 1
    return [setting, f"{at_or_below}/{n} ({'met' if at_or_below >= 0.8 * n else 'missed'})", f"{half}/{n} ({'met' if half >= 0.5 * n else 'missed'})",
            f"{place} of {len(methods)} ({'met' if place == 1 else 'missed'})", f"{worse}/{n} ({'met' if worse <= 0.1 * n else 'missed'})"]


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.geomspace(1, max(data["budgets"]), 40)
    picks = auto_picks(data)
    fig, axes = plt.subplots(1, len(data["slots"]), figsize=(6.5 * len(data["slots"]), 4.8), squeeze=False)
    for ax, slots in zip(axes[0], data["slots"]):
        by_method: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
        for s in data["searches"]:
            if s["slots"] == slots:
                scale = data["scales"][s["task"]]
                gap = scale["optimum"] - scale["typical"]
                by_method[s["method"]][s["task"]].append(np.array([(scale["optimum"] - score_at(s["trace"], b * scale["full_run_s"], scale.get("floor", 0.0))) / gap for b in grid]))
        for i, m in enumerate(data["methods"]):
            curve = np.median([np.median(seeds, axis=0) for seeds in by_method[m].values()], axis=0)
            auto = m == picks[slots]
            ax.plot(grid, curve, label=labels(data).get(m, m) + (" (= auto)" if auto else ""), color=plt.cm.tab20(i % 20),
                    linestyle="--" if m in PEERS else "-", linewidth=3 if auto else 1.4)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.05)
        ax.set_xlabel("budget (multiples of one full run's training time)")
        ax.set_ylabel("median normalised regret")
        ax.set_title(f"{slots} concurrent trial{'s' if slots > 1 else ''}")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_run_arguments(parser: argparse.ArgumentParser, budgets: str) -> None:
    """The options of a benchmark run: seeds, budgets (``budgets`` says what they multiply), slots, workers, where to write."""
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budgets", default="10,30", help=budgets)
    parser.add_argument("--slots", default="1,4", help="concurrent trials")
    parser.add_argument("--workers", type=int, default=2, help="processes running searches")
    parser.add_argument("--out", type=Path, default=RESULTS)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lcbench-dir", type=Path, help="the LCBench surrogate's folder (model.onnx, encoding.json)")
    parser.add_argument("--from-json", type=Path, nargs="+", help="re-render earlier runs' results jsons (merged) instead of measuring")
    parser.add_argument("--tasks", default=",".join(DEV_TASKS), help="OpenML task ids (default: the 28 development tasks)")
    parser.add_argument("--single-fidelity", action="store_true", help="trials of one step (the searchers alone); default methods and budgets change")
    parser.add_argument("--methods", help="searcher[:sampler][@key=value;...]+scheduler names, optuna-plain, synetune-NAME (default: every method of the mode)")
    add_run_arguments(parser, "multiples of one full run's training seconds")
    args = parser.parse_args()
    if not args.from_json and not (args.lcbench_dir and (args.lcbench_dir / "model.onnx").is_file()):
        parser.error("--lcbench-dir: give the folder of the LCBench surrogate (its model.onnx), or --from-json")
    args.epochs = 1 if args.single_fidelity else sim.EPOCHS
    args.methods = (args.methods or ",".join(SINGLE_METHODS if args.single_fidelity else DLTUNE_METHODS + PEERS)).split(",")
    if args.single_fidelity and any(m.startswith("synetune-") for m in args.methods):
        parser.error("--methods: Syne Tune's schedulers are multi-fidelity; the single-fidelity objective has one step")
    args.tasks = args.tasks.split(",")
    unknown = sorted(set(args.tasks) - set(DEV_TASKS))
    if unknown:
        parser.error(f"--tasks: {', '.join(unknown)} are not development tasks (the surrogate's README keeps the others for independent checks)")
    args.budgets = [float(b) for b in args.budgets.split(",")]
    args.slots = [int(s) for s in args.slots.split(",")]
    return args


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table from runs of different methods over the same tasks, seeds, budgets and concurrency."""
    first = runs[0]
    if len(runs) == 1:
        return first
    for run in runs[1:]:
        for key in ("tasks", "seeds", "budgets", "slots"):
            if run[key] != first[key]:
                raise SystemExit(f"--from-json: the runs differ in {key} ({first[key]} and {run[key]}); only runs over the same ones merge")
        if epochs_of(run) != epochs_of(first):
            raise SystemExit("--from-json: a single-fidelity run and a multi-fidelity one do not merge")
    methods = [m for run in runs for m in run["methods"]]
    twice = sorted({m for m in methods if methods.count(m) > 1})
    if twice:
        raise SystemExit(f"--from-json: {', '.join(twice)} measured in more than one run")
    return dict(first, methods=methods, searches=[s for run in runs for s in run["searches"]],
                wall_s=sum(run["wall_s"] for run in runs), command=" and ".join(f"`{run['command'].strip('`')}`" for run in runs))


def main() -> None:
    args = parse_args()
    if args.from_json:
        data = merge([json.loads(path.read_text()) for path in args.from_json])
    else:
        started = time.time()
        data = measure(args)
        data["wall_s"] = time.time() - started
    stem = "lcbench_search_single" if epochs_of(data) == 1 else "lcbench_search"
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.from_json or len(args.from_json) > 1:
        (args.out / f"{stem}.json").write_text(json.dumps(data))
    text = report(data) + f"\nMeasured in {data['wall_s'] / 60:.0f} min of wall time.\n"
    (args.out / f"{stem}.md").write_text(text)
    plot(data, args.out / f"{stem}.png")
    print(text)


if __name__ == "__main__":
    main()
