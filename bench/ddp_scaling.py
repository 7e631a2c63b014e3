"""DDP scaling on CPU: 1 vs 2 gloo workers under torchrun and under Ray Train, same model and data.

    python bench/ddp_scaling.py [--samples 2048] [--epochs 3] [--repeats 3] [--out DIR] [--quick]

Every run is a real dltune run of configs/quickstart.yaml's CNN on synthetic
CIFAR-shaped images (3x32x32): torchrun runs go through ``dltune train
--launcher torchrun`` (a fresh single-node torchrun per run), Ray Train runs
through dltune's Ray launcher (``run_ray_train``, what ``dltune train --launcher
ray`` calls) on one local Ray started here and shut down at the end. Samples/s
is dltune's own per-epoch figure from the run's metrics.jsonl (all ranks
together, epochs after the first). The four variants alternate round by round.

Prints and writes ddp_scaling.md and ddp_scaling.png (to --out, default bench/results): scaling
efficiency (2-worker / twice the 1-worker rate) per launcher and the Ray Train /
torchrun ratio at 2 workers.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    REPO, interleave, invocation, machine_line, markdown_table, median, paired_ratio, parse_bench_args, run_rate, save_bars, spread,
    write_markdown,
)
from dltune.config import load_config  # noqa: E402
from dltune.launch.ray_train import run_ray_train  # noqa: E402

CONFIG = REPO / "configs" / "quickstart.yaml"
VARIANTS = [("torchrun", 1), ("torchrun", 2), ("ray", 1), ("ray", 2)]
LAUNCHERS = {"torchrun": "torchrun", "ray": "Ray Train"}


def label(launcher: str, workers: int) -> str:
    return f"{LAUNCHERS[launcher]}, {workers} worker{'s' if workers > 1 else ''}"


def overrides(args: argparse.Namespace, out: Path, launcher: str, workers: int) -> list[str]:
    last = args.epochs  # validate and checkpoint once, after the last epoch
    return [
        "data.name=synthetic", f"data.num_samples={args.samples}", "model.width=16", f"train.epochs={args.epochs}",
        f"train.eval_every={last}", f"train.checkpoint_every={last}", "output.export_torchscript=false",
        f"output.dir={out}", f"output.experiment={launcher}-{workers}", f"scaling.num_workers={workers}",
    ]


def torchrun_run(settings: list[str]) -> None:
    command = [sys.executable, "-m", "dltune", "train", str(CONFIG), "--launcher", "torchrun", "--overwrite", *settings]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun run failed ({done.returncode}):\n{done.stderr[-3000:]}")


def ray_run(settings: list[str]) -> None:
    run_ray_train(load_config(str(CONFIG), [*settings, "scaling.launcher=ray"]), overwrite=True)


def variant(args: argparse.Namespace, out: Path, launcher: str, workers: int, walls: list[float]) -> Callable[[], float]:
    """One run of ``launcher`` with ``workers``: returns its samples/s, appends its wall time to ``walls``."""
    start = torchrun_run if launcher == "torchrun" else ray_run

    def run() -> float:
        started = time.perf_counter()
        start(overrides(args, out, launcher, workers))
        walls.append(time.perf_counter() - started)
        return run_rate(out / f"{launcher}-{workers}")

    return run


def report(args: argparse.Namespace, rates: dict[tuple[str, int], list[float]], walls: dict[tuple[str, int], list[float]]) -> str:
    rows: list[list[object]] = [[label(*key), spread(rates[key]), f"{median(walls[key]):.1f}"] for key in VARIANTS]
    for launcher, name in LAUNCHERS.items():
        eff = paired_ratio(rates[(launcher, 2)], [2 * r for r in rates[(launcher, 1)]])
        rows.append([f"scaling efficiency, {name}: rate(2) / (2 x rate(1))", f"{eff:.2f}", ""])
    ray_vs_torch = paired_ratio(rates[("ray", 2)], rates[("torchrun", 2)])
    rows.append(["**Ray Train / torchrun samples/s, 2 workers** (paired median)", f"**{ray_vs_torch:.2f}**", ""])
    rows.append(["same as time: Ray Train epoch time / torchrun epoch time (Ray's release test allows <= 1.15)", f"{1 / ray_vs_torch:.2f}", ""])
    table = markdown_table(["variant", "samples/s, median (min-max)", "wall s per run, median (incl. start-up)"], rows)
    return "\n".join([
        "# DDP scaling (CPU, gloo)", "", machine_line(), f"Command: `{invocation()}`; {args.repeats} alternating rounds.", "",
        f"Workload: configs/quickstart.yaml's CNN (width 16) on {args.samples:,} synthetic 3x32x32 images, batch 64 per worker, "
        f"{args.epochs} epochs; OMP_NUM_THREADS=1 per worker. Samples/s is dltune's per-epoch figure (all ranks), median over epochs 2+.",
        "", table, "",
        f"Two workers share the machine's {os.cpu_count()} cores with each other (and with anything else running), "
        "so the scaling efficiency is bounded by the idle cores, not by gloo.", "",
    ])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2048, help="synthetic training images")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    return parse_bench_args(parser, {"samples": 256, "epochs": 2, "repeats": 1})


def main() -> None:
    args = parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # the same one thread per worker for both launchers
    os.environ.pop("RAY_ADDRESS", None)
    import ray

    ray.init(num_cpus=max(2, os.cpu_count() or 1), include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False)
    walls: dict[tuple[str, int], list[float]] = {key: [] for key in VARIANTS}
    try:
        with tempfile.TemporaryDirectory(prefix="dltune-bench-ddp-") as tmp:
            rates = interleave({key: variant(args, Path(tmp), *key, walls[key]) for key in VARIANTS}, args.repeats)
    finally:
        ray.shutdown()
    text = report(args, rates, walls)
    print(text)
    write_markdown(args.out, "ddp_scaling", text)
    save_bars(args.out, "ddp_scaling", [("samples/s (median, min-max whiskers)", "samples/s", {label(*key): rates[key] for key in VARIANTS})])


if __name__ == "__main__":
    main()
