"""How fast each search method finds a good digits model, under the same wall budget and CPUs.

    python bench/search_efficiency.py [--budget 35] [--seeds 5] [--methods random,bohb,...] [--quick]

Every method searches the same five hyperparameters of the digits CNN
(learning rate, weight decay, width, dropout, batch size) with the epoch as
fidelity, for ``--budget`` seconds of wall time on one local Ray of 2 logical
CPUs (one CPU and one torch thread per trial), started once and reused, so
Ray's start-up is outside every budget while each search's own set-up (plan,
Tuner, trial actors) is inside it. ``optuna-plain`` is the tool a user would
pick instead: the same training loop without Ray, Optuna TPE with a
HyperbandPruner, two trials at a time in threads. Runs are interleaved (for
each seed, every method) so machine noise spreads over the methods.

The best validation accuracy so far is read over wall time from the per-trial
TensorBoard scalars that dltune's search monitor writes as each epoch's result
reaches the driver (plain Optuna: the time of each report). The target
accuracy is what random search's median curve reaches at half the budget.
Writes bench/results/search_efficiency.{md,png} (``--quick``: only with ``--out``).
"""
from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import yaml

import dltune
from dltune import schema
from dltune.config import Config, from_dict
from dltune.hpo.trial import trial_config
from dltune.train.loop import train_loop
from dltune.train.session import Session

RESULTS = Path(__file__).resolve().parent / "results"
CPUS = 2
METRIC = "val_acc"
SEARCH_SPACE: dict[str, dict[str, list]] = {
    "optim.lr": {"loguniform": [1.0e-4, 1.0e-1]},
    "optim.weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},
    "model.width": {"choice": [8, 16, 32, 64]},
    "model.dropout": {"uniform": [0.0, 0.5]},
    "train.batch_size": {"choice": [16, 32, 64, 128]},
}


def flow_yaml(mapping: dict[str, Any]) -> str:
    """One-line YAML for a key=value override (JSON would turn 1e-06 into a string)."""
    return yaml.safe_dump(mapping, default_flow_style=True, width=10**6).strip()


# Methods run through dltune.tune, as tune.* overrides.
TUNE_METHODS: dict[str, list[str]] = {
    "random": ["tune.searcher=random", "tune.scheduler=fifo"],
    "random+asha": ["tune.searcher=random", "tune.scheduler=asha"],
    "blendsearch": ["tune.searcher=blendsearch", "tune.scheduler=fifo"],
    "optuna-tpe+asha": ["tune.searcher=optuna", "tune.sampler=tpe", "tune.scheduler=asha"],
    "bohb": ["tune.searcher=bohb", "tune.scheduler=hyperband"],
    # PBT mutates what an exploit can carry over: a donor's weights fix the architecture (width).
    "pbt": ["tune.searcher=random", "tune.scheduler=pbt", f"tune.mutations={flow_yaml({k: v for k, v in SEARCH_SPACE.items() if k != 'model.width'})}"],
    "auto": ["tune.searcher=auto", "tune.scheduler=auto"],
}
PLAIN_OPTUNA = "optuna-plain"
METHODS = [*TUNE_METHODS, PLAIN_OPTUNA]
BASELINE = "random"
# A dltune trial needs a few seconds before its first epoch reports, so a smoke run still needs ~15 s a run.
QUICK: dict[str, Any] = {"budget": 15.0, "epochs": 3, "methods": f"{BASELINE},auto,{PLAIN_OPTUNA}"}


@dataclass
class Run:
    method: str
    reports: list[tuple[float, float]]  # (seconds since the run started, val_acc), in time order
    trials: int  # trials that reported at least one epoch
    errors: int  # trials that failed
    choice: str = ""
    causes: list[str] = field(default_factory=list)  # why trials failed


@dataclass
class Clock:
    """Wall time of one plain-Optuna run and the reports made within it."""

    budget: float
    started: float = field(default_factory=time.time)
    reports: list[tuple[float, float]] = field(default_factory=list)

    def record(self, value: float) -> None:
        self.reports.append((time.time() - self.started, value))

    def over(self) -> bool:
        return time.time() - self.started >= self.budget


def base_config(out: str, budget: float, epochs: int) -> Config:
    return from_dict({
        "data": {"name": "digits"},
        "model": {"name": "cnn"},
        "optim": {"name": "adamw", "schedule": "cosine"},
        "train": {"epochs": epochs, "seed": 0},  # one data split for every run
        "scaling": {"cpus_per_worker": 1},
        "output": {"dir": out},
        # More trials than any budget allows: the budget ends every search.
        "tune": {"metric": METRIC, "mode": "max", "num_samples": 100_000, "time_budget_s": budget, "local_cpus": CPUS, "space": SEARCH_SPACE},
    })


# --- dltune runs -------------------------------------------------------------
def monitor_reports(tb_dir: Path, started: float) -> list[tuple[float, float]]:
    """Every epoch's val_acc, stamped when the search driver received it."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    reports = []
    for path in tb_dir.rglob("events.out.tfevents.*"):
        for event in LegacyEventFileLoader(str(path)).Load():
            reports += [(event.wall_time - started, v.simple_value) for v in event.summary.value if v.tag == METRIC]
    return sorted(reports)


def failure_cause(error: BaseException) -> str:
    """The exception raised inside the trial, not Ray's wrapper around it."""
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1]}"


def describe_choice(summary: dict[str, Any]) -> str:
    sampler = f" ({summary['sampler']})" if summary.get("sampler") else ""
    return f"{summary['searcher']}{sampler} + {summary['scheduler']}: {summary['reason']}"


def run_tune(base: Config, method: str, seed: int) -> Run:
    started = time.time()
    experiment = f"{method.replace('+', '_')}-{seed}"
    result = dltune.tune(base, [*TUNE_METHODS[method], f"tune.seed={seed}", f"output.experiment={experiment}"], verbose=False)
    reports = monitor_reports(Path(result.experiment_dir) / "tensorboard", started)
    trained = sum(r.epochs > 0 for r in result.rows)
    failed = [r.result.error for r in result.rows if r.stop_reason == "error"]
    return Run(method, reports, trained, len(failed), describe_choice(result.summary), [failure_cause(e) for e in failed])


# --- plain Optuna ------------------------------------------------------------
class OptunaSession(Session):
    """Reports each epoch to an Optuna trial, which prunes it as its pruner says."""

    def __init__(self, cfg: Config, trial: optuna.Trial, clock: Clock) -> None:
        super().__init__(cfg)
        self.trial = trial
        self.clock = clock

    def report(self, metrics: dict[str, float], state: dict[str, Any] | None) -> None:
        self.clock.record(metrics[METRIC])
        self.trial.report(metrics[METRIC], int(metrics["epoch"]))
        if self.trial.should_prune() or self.clock.over():  # past the budget nothing counts: stop at once
            raise optuna.TrialPruned()


def suggest(trial: optuna.Trial, key: str, spec: dict[str, list]) -> Any:
    (kind, args), = spec.items()
    if kind == "choice":
        return trial.suggest_categorical(key, args)
    return trial.suggest_float(key, args[0], args[1], log=kind == "loguniform")


def run_plain_optuna(base: Config, seed: int) -> Run:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)  # one thread per trial, as in the Ray trials
    mapping = schema.to_mapping(base)
    clock = Clock(base.tune.time_budget_s)

    def objective(trial: optuna.Trial) -> float:
        cfg = trial_config(mapping, {key: suggest(trial, key, spec) for key, spec in SEARCH_SPACE.items()})
        return train_loop(cfg, OptunaSession(cfg, trial, clock))["final_metrics"][METRIC]

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=base.train.epochs, reduction_factor=3),
    )
    study.optimize(objective, timeout=clock.budget, n_jobs=CPUS)
    trained = sum(bool(t.intermediate_values) for t in study.trials)
    return Run(PLAIN_OPTUNA, sorted(clock.reports), trained, 0)  # a failing trial would have raised


# --- analysis ----------------------------------------------------------------
def best_so_far(run: Run, grid: np.ndarray) -> np.ndarray:
    """Best val_acc reported up to each grid time (0 before the first report)."""
    if not run.reports:
        return np.zeros_like(grid)
    times, values = np.array(run.reports).T
    best = np.maximum.accumulate(values)
    idx = np.searchsorted(times, grid, side="right") - 1
    return np.where(idx >= 0, best[np.maximum(idx, 0)], 0.0)


def time_to(run: Run, target: float, budget: float) -> float:
    """Seconds until the run first reports ``target`` within the budget; inf if never."""
    return next((t for t, v in run.reports if v >= target and t <= budget), float("inf"))


def target_accuracy(runs: list[Run], budget: float) -> float:
    return float(np.median([best_so_far(r, np.array([budget / 2]))[0] for r in runs if r.method == BASELINE]))


@dataclass
class Summary:
    method: str
    final: np.ndarray  # best val_acc at the end of the budget, one per seed
    times: np.ndarray  # time to target, one per seed (inf: never)
    trials: float
    epochs: float
    errors: int

    @property
    def median_time(self) -> float:
        return float(np.median(self.times))


def summarise(runs: list[Run], method: str, target: float, budget: float) -> Summary:
    mine = [r for r in runs if r.method == method]
    end = np.array([budget])
    return Summary(
        method,
        np.array([best_so_far(r, end)[0] for r in mine]),
        np.array([time_to(r, target, budget) for r in mine]),
        float(np.median([r.trials for r in mine])),
        float(np.median([sum(t <= budget for t, _ in r.reports) for r in mine])),
        sum(r.errors for r in mine),
    )


def fmt_seconds(value: float) -> str:
    return f"{value:.1f}" if np.isfinite(value) else "> budget"


def fmt_ratio(value: float, baseline: float) -> str:
    if not np.isfinite(value):
        return "> budget"
    return f"{value / baseline:.2f}x" if np.isfinite(baseline) and baseline > 0 else "-"


def table(summaries: list[Summary], baseline: float) -> list[str]:
    lines = [
        "| method | best val_acc at budget: median [min, max] | time to target s: median [min, max] | vs random | runs reaching target | trials trained (median) | epochs reported (median) | failed trials (all seeds) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        reached = int(np.isfinite(s.times).sum())
        lines.append(
            f"| {s.method} | {np.median(s.final):.4f} [{s.final.min():.4f}, {s.final.max():.4f}] "
            f"| {fmt_seconds(s.median_time)} [{fmt_seconds(s.times.min())}, {fmt_seconds(s.times.max())}] "
            f"| {fmt_ratio(s.median_time, baseline)} | {reached}/{len(s.times)} | {s.trials:g} | {s.epochs:g} | {s.errors} |"
        )
    return lines


def verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"


def targets(by_method: dict[str, Summary], baseline: float) -> list[str]:
    auto = by_method.get("auto")
    if auto is None or not np.isfinite(baseline):
        return ["Targets not evaluated: needs `auto` and a random search that reaches the target."]
    lines = [f"- `auto` reaches the target in <= 0.5x random search's median time: {fmt_ratio(auto.median_time, baseline)} -> {verdict(auto.median_time <= 0.5 * baseline)}"]
    plain = by_method.get(PLAIN_OPTUNA)
    if plain is not None:
        met = auto.median_time <= plain.median_time and np.isfinite(auto.median_time)
        lines.append(f"- `auto` no slower than plain Optuna: {fmt_seconds(auto.median_time)} s vs {fmt_seconds(plain.median_time)} s -> {verdict(met)}")
    return lines


def failures(runs: list[Run], methods: list[str]) -> list[str]:
    """One line per method and kind of failure (causes that differ only in numbers are one kind)."""
    lines = []
    for method in methods:
        kinds: dict[str, list[str]] = {}
        for cause in (c for r in runs if r.method == method for c in r.causes):
            kinds.setdefault(re.sub(r"\d", "", cause), []).append(cause)
        lines += [f"- {method}, {len(same)} trials: {same[0]}" for same in kinds.values()]
    return ["Failed trials, by cause (one example each):", "", *lines, ""] if lines else []


def report(runs: list[Run], args: argparse.Namespace, command: str, conditions: str) -> tuple[str, float]:
    target = target_accuracy(runs, args.budget)
    methods = [m for m in args.methods if any(r.method == m for r in runs)]
    summaries = [summarise(runs, m, target, args.budget) for m in methods]
    by_method = {s.method: s for s in summaries}
    baseline = by_method[BASELINE].median_time if BASELINE in by_method else float("inf")
    choices = sorted({r.choice for r in runs if r.method == "auto"})
    space = ", ".join(f"`{k}` {kind} {args_}" for k, spec in SEARCH_SPACE.items() for kind, args_ in spec.items())
    lines = [
        "# Search efficiency",
        "",
        f"Command: `{command}`",
        "",
        f"Digits CNN, {args.epochs} epochs max (the fidelity), AdamW + cosine; space: {space}. "
        f"{CPUS} logical CPUs (one local Ray, reused; plain Optuna: 2 threads), {os.cpu_count()} cores on the machine, "
        f"{args.budget:g} s wall budget per run, seeds {', '.join(map(str, range(args.seeds)))}, interleaved. "
        "Each run's clock starts when the search is called; Ray's own start-up happens once, before all runs.",
        "",
        conditions,
        "",
        f"Target accuracy: **{target:.4f}**, random search's median best-so-far at {args.budget / 2:g} s (half the budget)"
        + (": random had no result by then, so the budget is too short to compare times." if target <= 0 else "."),
        "",
        *table(summaries, baseline),
        "",
        f"`auto` chose: {'; '.join(choices) or '(not run)'}",
        "",
        *failures(runs, methods),
        "Targets:",
        "",
        *targets(by_method, baseline),
        "",
        "![best-so-far curves](search_efficiency.png)",
    ]
    return "\n".join(lines) + "\n", target


def plot(runs: list[Run], methods: list[str], budget: float, target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0.0, budget, 200)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for method in methods:
        curves = np.array([best_so_far(r, grid) for r in runs if r.method == method])
        if not len(curves):
            continue
        (line,) = ax.plot(grid, np.median(curves, axis=0), label=method, lw=1.8)
        ax.fill_between(grid, curves.min(axis=0), curves.max(axis=0), color=line.get_color(), alpha=0.12)
    ax.axhline(target, color="black", ls="--", lw=1, label=f"target {target:.4f}")
    ax.set_ylim(max(0.0, target - 0.15), 1.0)
    ax.set_xlabel("wall time since the search started (s)")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title("Digits CNN: median best-so-far over seeds (band: min to max)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- driver ------------------------------------------------------------------
def run_one(base: Config, method: str, seed: int) -> Run:
    run = run_plain_optuna(base, seed) if method == PLAIN_OPTUNA else run_tune(base, method, seed)
    best = max((v for t, v in run.reports if t <= base.tune.time_budget_s), default=0.0)
    print(f"seed {seed} {method:>16}: best {METRIC} {best:.4f}, {run.trials} trials trained, {run.errors} failed, {len(run.reports)} epochs reported", flush=True)
    return run


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run_all(args: argparse.Namespace, tmp: str) -> list[Run]:
    import ray

    from dltune.hpo.tuner import start_ray
    from dltune.ray_compat import quiet_tune_output

    base = base_config(tmp, args.budget, args.epochs)
    with quiet_tune_output():
        start_ray(base)  # the searches below find it initialised and reuse it
        try:
            return [run_one(base, method, seed) for seed in range(args.seeds) for method in args.methods]
        finally:
            ray.shutdown()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=35.0, help="wall seconds per run")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(METHODS)} (default: all)")
    parser.add_argument("--epochs", type=int, default=9, help="epochs of a full trial")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK['budget']:g} s budget, 1 seed, {QUICK['epochs']} epochs, methods {QUICK['methods']}")
    parser.add_argument("--out", type=Path, default=None, help="where the .md and .png go (default bench/results; --quick: nowhere)")
    args = parser.parse_args()
    if args.quick:
        args.budget, args.seeds, args.epochs = QUICK["budget"], 1, QUICK["epochs"]
        args.methods = args.methods or QUICK["methods"]
    args.methods = [m.strip() for m in (args.methods or ",".join(METHODS)).split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)} (choose from {', '.join(METHODS)})")
    if BASELINE not in args.methods:
        parser.error(f"--methods: include {BASELINE}; the target accuracy and the ratios come from it")
    if args.out is None and not args.quick:
        args.out = RESULTS
    return args


def main() -> None:
    args = parse_args()
    command = f"python bench/search_efficiency.py --budget {args.budget:g} --seeds {args.seeds} --epochs {args.epochs} --methods {','.join(args.methods)}"
    started, load_before = time.time(), load()
    with tempfile.TemporaryDirectory(prefix="search-efficiency-") as tmp:
        runs = run_all(args, tmp)
    # Other work on a shared machine slows trial start-up; say how busy it was.
    conditions = f"Load average (1/5/15 min): {load_before} before, {load()} after; total wall time {time.time() - started:.0f} s."
    text, target = report(runs, args, command, conditions)
    print(f"\n{text}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "search_efficiency.md").write_text(text)
        plot(runs, args.methods, args.budget, target, args.out / "search_efficiency.png")


if __name__ == "__main__":
    main()
