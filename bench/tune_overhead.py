"""What dltune's search driver costs on top of Ray Tune, measured side by side in one run.

    python bench/tune_overhead.py [--trials 200] [--reports 10] [--repeats 3] [--startup-trials 12]
                                  [--slots 1] [--work-ms 0] [--rss-trials 100,500,1000] [--only overhead|startup|rss]

1. The same trivial trainable (``--reports`` reports per trial) through
   ``dltune.hpo.tuner.run_search`` (resource plan, monitor, TensorBoard per
   trial, results export) and through a plain Ray Tune script; prints the
   wall-time ratio dltune / raw (target <= 1.10) with actor reuse on both
   sides, and the ratio to Ray Tune's default (a new actor per trial). Beside
   them, the same trivial trial written as a user ``train.fn`` (plain Python
   calling ``ctx.report``, handed to run_search as a function object), against
   the same raw runs (target <= 1.10); and dltune with ``output.report=false``
   (no study.journal as it runs, no report.html at its end), for what those cost:
   in all, and in the search alone (summary.json's ``wall_time_s``, before the
   outputs and the final report). ``--work-ms`` makes each trial sleep before
   each report, for trials that do something (its own section).
   Each repeat runs the four back to back
   in a rotating order; the ratios are medians over repeats.
   Trials run one at a time (``--slots 1``) on both sides: with trials this
   short and two slots, whether Ray Tune's second worker process comes up
   before the first one's reused actor takes every trial is a race, so a
   search takes either one process's time or half of it. Each row records how
   many worker processes its trials ran in.
2. Start-up of a single-worker training trial: ``--startup-trials`` minimal
   trials (one training step, evaluation, checkpoint) one after another, and
   the median time from one trial's end to the next one's end (target <= 2 s).
   Side by side: dltune's default (one reused worker process for all trials),
   a fresh worker process per trial (``tune.reuse_actors=false``), and the same
   trial as a one-worker TorchTrainer.
3. Driver memory: peak RSS of the process running the Tune loop for searches
   of ``--rss-trials`` trivial one-report trials, each in a fresh process with
   the local Ray that dltune starts; also the peaks of Ray's GCS + raylet and
   of the whole head. Target: driver peak at the largest size <= 1.5x the
   smallest (flat, not linear in trials).

Writes bench/results/tune_overhead.md (one section per part; running one part
keeps the others' last sections) and, for part 3, tune_overhead.png.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

RESULTS = Path(__file__).resolve().parent / "results"


def trivial(config: dict, base: dict | None = None) -> None:
    from ray import tune

    for i in range(REPORTS):
        time.sleep(WORK_S)
        tune.report({"epoch": i + 1, "val_loss": (config["optim.lr"] - 0.01) ** 2 + 1.0 / (i + 1)})


def trivial_fn(ctx) -> None:
    """The same trivial trial as a user train.fn: plain Python on the run context, no torch."""
    for i in range(REPORTS):
        time.sleep(WORK_S)
        ctx.report({"val_loss": (ctx.params["lr"] - 0.01) ** 2 + 1.0 / (i + 1)})  # epoch counted by dltune


REPORTS = 10
WORK_S = 0.0  # an epoch's work before each report (--work-ms); set before the Ray workers start


def dltune_search(trials: int, out: str, trial_fn=None, extra: list[str] = (), fn=None) -> tuple[float, list]:
    """A dltune search of ``trials`` trials: of ``trial_fn`` (replacing the whole Tune trial), or of
    ``fn`` as the train.fn (a function object, cloudpickled to the workers; it searches params.lr)."""
    from dltune.config import load_config
    from dltune.hpo.tuner import run_search

    space = "{params.lr: {uniform: [0.0001, 0.1]}}" if fn is not None else "{optim.lr: {uniform: [0.0001, 0.1]}}"
    user = ["params.lr=0.01", f"train.epochs={REPORTS}"] if fn is not None else []
    cfg = load_config(None, [f"output.dir={out}", "output.experiment=bench", "tune.searcher=random", "tune.scheduler=fifo",
                             f"tune.num_samples={trials}", f"tune.space={space}", *user, *extra])
    started = time.perf_counter()
    result = run_search(cfg, verbose=False, trial_fn=trial_fn, fn=fn)
    return time.perf_counter() - started, result.rows


def raw_search(trials: int, out: str, concurrency: int, reuse_actors: bool) -> float:
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    tuner = tune.Tuner(
        tune.with_resources(trivial, {"CPU": 1}),
        param_space={"optim.lr": tune.uniform(0.0001, 0.1)},
        tune_config=tune.TuneConfig(metric="val_loss", mode="min", num_samples=trials, max_concurrent_trials=concurrency, reuse_actors=reuse_actors),
        # Ray's default result loggers (dltune keeps the same two; TensorBoard is its own).
        run_config=tune.RunConfig(storage_path=out, name="raw", verbose=0, callbacks=[JsonLoggerCallback(), CSVLoggerCallback()]),
    )
    started = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - started


@contextlib.contextmanager
def bench_ray() -> Iterator[int]:
    """One local Ray for every search of a part; yields its CPUs."""
    import ray

    from dltune.ray_compat import quiet_tune_output

    cpus = os.cpu_count() or 2
    with quiet_tune_output():  # both sides alike, and Ray's workers inherit it
        ray.init(num_cpus=cpus, log_to_driver=False, include_dashboard=True, dashboard_host="127.0.0.1")
        try:
            yield cpus
        finally:
            ray.shutdown()


def search_phase(out: str) -> float:
    """A dltune search's own time, up to the end of Tune's loop: summary.json's wall_time_s (the outputs come after)."""
    with open(f"{out}/bench/summary.json") as f:
        return json.load(f)["wall_time_s"]


def worker_processes(out: str) -> int:
    """How many worker processes a search's trials ran in (each result names its process)."""
    pids = set()
    for path in Path(out).rglob("result.json"):
        with open(path) as f:
            pids.add(json.loads(f.readline())["pid"])
    return len(pids)


def overhead(args: argparse.Namespace) -> None:
    """Part 1: the driver's cost on top of raw Ray Tune."""
    global REPORTS, WORK_S
    REPORTS, WORK_S = args.reports, args.work_ms / 1000
    slots = [f"tune.max_concurrent_trials={args.slots}"]

    with bench_ray() as cpus, tempfile.TemporaryDirectory() as tmp:
        # Each repeat runs all four back to back, in an order that rotates, so warm-up and the
        # machine's noise hit every side alike; ratios are taken within a repeat.
        variants = {
            "raw": lambda out: raw_search(args.trials, out, args.slots, reuse_actors=True),
            "dltune": lambda out: dltune_search(args.trials, out, trial_fn=trivial, extra=slots)[0],  # like for like: dltune reuses actors
            "fn": lambda out: dltune_search(args.trials, out, fn=trivial_fn, extra=slots)[0],
            "noreport": lambda out: dltune_search(args.trials, out, trial_fn=trivial, extra=[*slots, "output.report=false"])[0],
        }
        runs: dict[str, list[float]] = {name: [] for name in variants}
        searching: dict[str, list[float]] = {"dltune": [], "noreport": []}
        processes: dict[str, set[int]] = {name: set() for name in variants}
        names = list(variants)
        for i in range(args.repeats):
            for name in names[i % len(names):] + names[:i % len(names)]:
                runs[name].append(variants[name](f"{tmp}/{name}{i}"))
                processes[name].add(worker_processes(f"{tmp}/{name}{i}"))
                if name in searching:
                    searching[name].append(search_phase(f"{tmp}/{name}{i}"))
        raw_runs, dlt_runs, fn_runs = runs["raw"], runs["dltune"], runs["fn"]
        dlt_s = statistics.median(dlt_runs)
        ratio = statistics.median(d / r for d, r in zip(dlt_runs, raw_runs))
        fn_ratio = statistics.median(d / r for d, r in zip(fn_runs, raw_runs))
        report_ratio = statistics.median(d / n for d, n in zip(dlt_runs, runs["noreport"]))
        search_ratio = statistics.median(d / n for d, n in zip(searching["dltune"], searching["noreport"]))
        outputs_s = statistics.median(t - s for t, s in zip(dlt_runs, searching["dltune"]))
        bare_outputs_s = statistics.median(t - s for t, s in zip(runs["noreport"], searching["noreport"]))
        bare_ratio = statistics.median(n / r for n, r in zip(runs["noreport"], raw_runs))
        print(f"overhead: dltune / raw {ratio:.2f}, dltune train.fn / raw {fn_ratio:.2f}, with / without report and journal {report_ratio:.2f}, "
              f"the search alone {search_ratio:.2f} (medians over repeats)", flush=True)
        raw_fresh_s = raw_search(args.trials, f"{tmp}/raw-fresh", args.slots, reuse_actors=False)  # Ray Tune's default

    def runs_of(name: str) -> str:
        counts = "/".join(str(n) for n in sorted(processes[name]))
        return f"{statistics.median(runs[name]):.1f} s ({', '.join(f'{x:.1f}' for x in runs[name])}); worker processes per search: {counts}"

    work = f" --work-ms {args.work_ms:g}" if args.work_ms else ""
    write_section(OVERHEAD_WORK if args.work_ms else OVERHEAD, [
        f"Machine: {cpus} CPUs, load average {load_average()} at the end; command: "
        f"`python bench/tune_overhead.py --only overhead --trials {args.trials} --reports {args.reports} --repeats {args.repeats} --slots {args.slots}{work}`",
        "",
        f"{args.slots} trial(s) at a time on both sides. With two slots and trials this short, the second worker process "
        "Ray Tune starts often loses the race to the first one's reused actor, so a search's time is either one "
        "process's or about half of it, on either side, from run to run; one slot takes that race out.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| raw Ray Tune, {args.trials} trivial trials x {args.reports} reports (`tune.report`, {args.work_ms:g} ms of sleep before each), `reuse_actors=True`: median (runs) | {runs_of('raw')} |",
        f"| dltune run_search, the same trainable (reuses actors by default): median (runs) | {runs_of('dltune')} |",
        f"| dltune run_search, the trivial function as `train.fn` (function object, `ctx.report`, no torch): median (runs) | {runs_of('fn')} |",
        f"| **ratio dltune / raw, like for like: median over repeats** (target <= 1.10) | **{ratio:.2f}** |",
        f"| **ratio dltune train.fn / raw: median over repeats** (target <= 1.10) | **{fn_ratio:.2f}** |",
        f"| dltune run_search, the same trainable, `output.report=false` (no study.journal, no report.html): median (runs) | {runs_of('noreport')} |",
        f"| ratio dltune with / without its report and journal: median over repeats | {report_ratio:.2f} |",
        f"| **ratio with / without, the search alone** (summary.json `wall_time_s`: to the end of Tune's loop, the journal written as trials report): median over repeats | **{search_ratio:.2f}** |",
        f"| after the search, the outputs: with report and journal (settling the journal, report.html and its PNGs) / without: medians | {outputs_s:.1f} s / {bare_outputs_s:.1f} s |",
        f"| ratio dltune without its report and journal / raw: median over repeats | {bare_ratio:.2f} |",
        f"| raw Ray Tune with its default `reuse_actors=False` | {raw_fresh_s:.1f} s |",
        f"| ratio dltune / raw Ray Tune's default | {dlt_s / raw_fresh_s:.2f} |",
    ])


def startup(args: argparse.Namespace) -> None:
    """Part 2: how long a single-worker trial takes to start, by trial path."""
    from dltune.hpo.trial import multi_worker_trial, single_worker_trial

    with bench_ray() as cpus, tempfile.TemporaryDirectory() as tmp:
        cycles = {name: trial_cycle_s(args.startup_trials, f"{tmp}/{name}", fn, extra) for name, fn, extra in (
            ("reused", single_worker_trial, []),
            ("fresh", single_worker_trial, ["tune.reuse_actors=false"]),
            ("trainer", multi_worker_trial, ["tune.reuse_actors=false"]),  # as dltune runs TorchTrainer trials
        )}
    write_section(STARTUP, [
        f"Machine: {cpus} CPUs, load average {load_average()} at the end; command: `python bench/tune_overhead.py --only startup --startup-trials {args.startup_trials}`",
        "",
        f"{args.startup_trials} minimal single-worker trials (one training step of a 16-unit MLP on digits, "
        "evaluation, checkpoint), one at a time; median time from one trial's end to the next one's end.",
        "",
        "| trial path | median s per trial | search start to the first trial's end, s |",
        "|---|---|---|",
        f"| **dltune default: trials reuse one worker process** (target <= 2 s) | **{cycles['reused'][1]:.2f}** | {cycles['reused'][0]:.2f} |",
        f"| a fresh worker process per trial (`tune.reuse_actors=false`) | {cycles['fresh'][1]:.2f} | {cycles['fresh'][0]:.2f} |",
        f"| the trial as a 1-worker TorchTrainer | {cycles['trainer'][1]:.2f} | {cycles['trainer'][0]:.2f} |",
    ])


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def timed(trial_fn, ends_file: str):
    """``trial_fn`` (a dltune trial) that also appends the time it ended to ``ends_file`` (one machine:
    clocks agree). run_search passes a trial_fn only ``base``: the built-in loop's user code is empty."""
    from dltune.launch.user_code import UserCode

    def timed_trial(config: dict, base: dict) -> None:
        trial_fn(config, base, UserCode())
        with open(ends_file, "a") as f:
            f.write(f"{time.time()}\n")

    return timed_trial


def trial_cycle_s(trials: int, out: str, trial_fn, extra: list[str]) -> tuple[float, float]:
    """A search running one minimal trial at a time: seconds from its start to the first trial's end
    (the worker process's start and imports), and the median time between consecutive trial ends."""
    ends_file = f"{out}.ends"
    small = ["model.hidden=[16]", "train.epochs=1", "train.max_steps_per_epoch=1", "train.batch_size=16", "tune.max_concurrent_trials=1", *extra]
    started = time.time()
    dltune_search(trials, out, trial_fn=timed(trial_fn, ends_file), extra=small)
    ends = sorted(float(line) for line in Path(ends_file).read_text().split())
    return ends[0] - started, statistics.median(np.diff(ends))


# --- part 3: driver memory ----------------------------------------------------
RSS_CPUS_PER_TRIAL = 0.25  # trivial trials barely use a CPU: run 4 per core so 1000 of them fit in minutes
RSS_SAMPLE_S = 0.5
RSS_TARGET = 1.5
RAY_DAEMONS = ("gcs_server", "raylet")
MIB = 2**20


@dataclass
class MemoryPeaks:
    """Peak RSS in bytes, sampled: Ray's GCS + raylet, and every process of the head (driver included)."""

    daemons: int = 0
    head: int = 0


def sample_head(peaks: MemoryPeaks, stop: threading.Event) -> None:
    """Sum RSS over this process and all its descendants (everything ray.init started) until ``stop``.
    Shared pages count once per process, so the head total is an upper bound."""
    me = psutil.Process()
    while not stop.wait(RSS_SAMPLE_S):
        daemons = head = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                rss, name = proc.memory_info().rss, proc.name()
            except psutil.Error:  # gone between listing and reading
                continue
            head += rss
            daemons += rss if name in RAY_DAEMONS else 0
        peaks.daemons, peaks.head = max(peaks.daemons, daemons), max(peaks.head, head)


def rss_child(trials: int) -> None:
    """One search of ``trials`` one-report trials in this (fresh) process; prints its peaks as JSON."""
    global REPORTS
    REPORTS = 1
    peaks, stop = MemoryPeaks(), threading.Event()
    sampler = threading.Thread(target=sample_head, args=(peaks, stop), daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        wall_s, rows = dltune_search(trials, tmp, trial_fn=trivial, extra=[f"scaling.cpus_per_worker={RSS_CPUS_PER_TRIAL}"])
    stop.set()
    sampler.join()
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(RSS_LINE + json.dumps({"trials": trials, "finished": len(rows), "wall_s": wall_s, "driver": driver, "daemons": peaks.daemons, "head": peaks.head}), flush=True)


RSS_LINE = "rss: "


def measure_rss(trials: int, limit_s: float) -> dict[str, float] | None:
    """The peaks of one search in a fresh process; None when it does not finish within ``limit_s``."""
    child = subprocess.Popen([sys.executable, __file__, "--rss-child", str(trials)], stdout=subprocess.PIPE, text=True)
    try:
        out, _ = child.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        child.terminate()  # Ray's SIGTERM handler in the child shuts down the head it started
        child.communicate()
        return None
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return json.loads(next(line for line in out.splitlines() if line.startswith(RSS_LINE))[len(RSS_LINE):])


def measure_sizes(sizes: list[int], limit_s: float) -> list[dict[str, float]]:
    """Smallest first. Stops before a size that would outlast ``limit_s`` at the rate the last one ran
    (trial start-up dominates, so wall time is about linear in trials) and after one that did."""
    rows: list[dict[str, float]] = []
    for n in sizes:
        if rows and rows[-1]["wall_s"] * n / rows[-1]["trials"] > limit_s:
            print(f"{n} trials: skipped, about {rows[-1]['wall_s'] * n / rows[-1]['trials']:.0f} s at the last rate", flush=True)
            break
        row = measure_rss(n, limit_s)
        print(f"{n} trials: " + (f"driver peak {row['driver'] / MIB:.0f} MiB, {row['wall_s']:.0f} s" if row else f"not finished in {limit_s:g} s"), flush=True)
        if row is None:
            break
        rows.append(row)
    return rows


def memory(args: argparse.Namespace) -> None:
    """Part 3: each size in a fresh process, so no peak carries over from a smaller one."""
    sizes = [int(n) for n in args.rss_trials.split(",")]
    rows = measure_sizes(sizes, args.rss_limit_s)
    if not rows:
        raise SystemExit(f"--rss-trials: not even {sizes[0]} trials finished within --rss-limit-s {args.rss_limit_s:g}")
    write_section(MEMORY, memory_section(rows, sizes, args))
    plot_rss(rows, RESULTS / "tune_overhead.png")


def projection(rows: list[dict[str, float]], trials: int) -> list[str]:
    """A straight line through the measured driver peaks, read at ``trials``: an estimate, not a measurement."""
    if len(rows) < 2:
        return []
    slope, intercept = np.polyfit([r["trials"] for r in rows], [r["driver"] for r in rows], 1)
    ratio = (intercept + slope * trials) / rows[0]["driver"]
    return [f"Extrapolated (least-squares line through the measured driver peaks, {slope / 1024:.1f} KiB per trial): "
            f"{(intercept + slope * trials) / MIB:.0f} MiB at {trials} trials, {ratio:.2f}x the {rows[0]['trials']}-trial peak "
            f"({'within' if ratio <= RSS_TARGET else 'beyond'} the {RSS_TARGET:g}x target).", ""]


def memory_section(rows: list[dict[str, float]], sizes: list[int], args: argparse.Namespace) -> list[str]:
    done = [r["trials"] for r in rows]
    skipped = [n for n in sizes if n not in done]
    ratio = rows[-1]["driver"] / rows[0]["driver"]
    verdict = "not measured" if skipped else ("met" if ratio <= RSS_TARGET else "missed")
    return [
        f"Machine: {os.cpu_count()} CPUs, load average {'/'.join(f'{x:.1f}' for x in os.getloadavg())} at the end; "
        f"command: `python bench/tune_overhead.py --only rss --rss-trials {args.rss_trials} --rss-limit-s {args.rss_limit_s:g}`",
        "",
        f"Trivial trials with one report each, through dltune's run_search (local Ray started by dltune, "
        f"{RSS_CPUS_PER_TRIAL:g} CPU per trial); each size in a fresh process. Driver: the process running the Tune "
        "loop, peak RSS from getrusage. GCS + raylet and the head total (driver plus every process Ray started: "
        f"dashboard, workers, ...) are sampled every {RSS_SAMPLE_S:g} s; the total counts shared pages once per process.",
        "",
        "| trials | finished | wall s | driver peak RSS MiB | GCS + raylet peak MiB | head total peak MiB |",
        "|---|---|---|---|---|---|",
        *(f"| {r['trials']} | {r['finished']} | {r['wall_s']:.0f} | {r['driver'] / MIB:.0f} | {r['daemons'] / MIB:.0f} | {r['head'] / MIB:.0f} |" for r in rows),
        "",
        *([f"Not measured: {', '.join(map(str, skipped))} trials (would not finish within {args.rss_limit_s:g} s each here: "
           "every trial starts a Ray worker process, and that start-up sets the pace).", ""] if skipped else []),
        f"**Driver peak at {done[-1]} / at {done[0]} trials: {ratio:.2f}** (target, at {sizes[-1]} trials: <= {RSS_TARGET:g}x; {verdict})",
        "",
        *(projection(rows, sizes[-1]) if skipped else []),
        "![peak RSS against trials](tune_overhead.png)",
    ]


def plot_rss(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [r["trials"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("driver", "driver (Tune loop) peak"), ("daemons", "GCS + raylet peak"), ("head", "head total peak")):
        ax.plot(trials, [r[key] / MIB for r in rows], marker="o", label=label)
    ax.axhline(rows[0]["driver"] * RSS_TARGET / MIB, color="black", ls="--", lw=1, label=f"target: {RSS_TARGET:g}x driver at {trials[0]}")
    ax.set_xlabel("trivial trials in the search")
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("dltune search: peak memory against number of trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- results file ---------------------------------------------------------------
OVERHEAD = "Driver time"
OVERHEAD_WORK = "Driver time, trials that work between reports"
STARTUP = "Trial start-up"
MEMORY = "Driver memory against trials"
TITLE = "# Tune overhead"


def write_section(title: str, lines: list[str]) -> None:
    """Replace one part's section of tune_overhead.md, keeping the other part's last results."""
    path = RESULTS / "tune_overhead.md"
    sections = {OVERHEAD: "", OVERHEAD_WORK: "", STARTUP: "", MEMORY: ""}
    if path.exists():
        for chunk in path.read_text().split("\n## ")[1:]:
            name, _, body = chunk.partition("\n")
            sections[name.strip()] = body.strip()
    sections[title] = "\n".join(lines)
    text = "\n\n".join([TITLE, *(f"## {name}\n\n{body}" for name, body in sections.items() if body)]) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--reports", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=9, help="like-for-like searches per side, in rotating order")
    parser.add_argument("--work-ms", type=float, default=0.0, help="in the overhead part, each trial sleeps this long before each report")
    parser.add_argument("--slots", type=int, default=1, help="trials at a time in the overhead part, on both sides")
    parser.add_argument("--startup-trials", type=int, default=12)
    parser.add_argument("--rss-trials", default="100,500,1000", help="comma-separated search sizes for the memory part, smallest first")
    parser.add_argument("--rss-limit-s", type=float, default=600, help="wall limit for each memory search; larger sizes that would outlast it are skipped")
    parser.add_argument("--only", choices=PARTS, help="run one part (default: all)")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)  # one memory measurement, run by the parent
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    for name, part in PARTS.items():
        if args.only in (None, name):
            part(args)


PARTS = {"overhead": overhead, "startup": startup, "rss": memory}

if __name__ == "__main__":
    main()
