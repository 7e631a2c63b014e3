"""GPU throughput through dltune's own config, launcher and training loop, on one CUDA device.

    bash scripts/gpu_check.sh [--quick]          (checks packages and sets PYTHONPATH first)
    python bench/gpu_throughput.py [--out DIR] [--quick]

Cases, one after the other (the compiled one last: it is the slowest to start):
ResNet-18 (configs/cifar10_resnet18.yaml) on synthetic CIFAR-shaped images in
fp32, bf16 autocast, bf16 + channels_last and bf16 + channels_last +
torch.compile; DeepFM (configs/ctr_deepfm.yaml) on generated Criteo-shaped
parquet read by dltune's tabular reader; and the bf16 + channels_last ResNet-18
as a one-process torchrun job through scripts/dist_train.sh. For each: training
samples/s from the run's metrics.jsonl (epochs after the first) and peak GPU
memory (torch.cuda.max_memory_allocated). Writes DIR/gpu.md (default
bench/results) after every case, so a run cut short keeps what it measured.

Without a CUDA device it prints "no CUDA device: GPU parts skipped", writes
nothing and exits 0. Ray is never imported.
"""
from __future__ import annotations

import argparse
import atexit
import dataclasses
import gc
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REPO, machine_line, markdown_table, parse_bench_args, run_rate, write_ctr_parquet, write_markdown  # noqa: E402
from dltune.config import ModelConfig, load_config  # noqa: E402
from dltune.data import DataSpec  # noqa: E402
from dltune.launch.local import run_local  # noqa: E402
from dltune.models import build_model  # noqa: E402
from dltune.storage import first_line  # noqa: E402
from dltune.train.session import read_summary  # noqa: E402

RESNET = REPO / "configs" / "cifar10_resnet18.yaml"
DEEPFM = REPO / "configs" / "ctr_deepfm.yaml"
PEAK_FILE_ENV = "DLTUNE_GPU_CHECK_PEAK_FILE"
PEAK_TARGET = "bench.gpu_throughput:recording_peak_memory"
SKIPPED = "no CUDA device: GPU parts skipped"
MIB = 2**20


@dataclass
class Case:
    name: str
    config: Path
    settings: list[str]
    torchrun: bool = False


@dataclass
class Result:
    case: Case
    precision: str = ""
    samples_per_s: float = 0.0
    peak_mib: float = 0.0
    error: str = ""


def recording_peak_memory(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    """``model.target`` for the torchrun case: the named model, and at exit this
    process's peak GPU memory written to $DLTUNE_GPU_CHECK_PEAK_FILE (the number
    lives in the torchrun child, not here)."""
    path = Path(os.environ[PEAK_FILE_ENV])
    atexit.register(lambda: path.write_text(str(torch.cuda.max_memory_allocated())))
    return build_model(dataclasses.replace(cfg, target=""), spec)


def cases(args: argparse.Namespace, ctr_dir: Path) -> list[Case]:
    common = [
        "scaling.launcher=local", "scaling.num_workers=1", "scaling.use_gpu=true",
        f"train.epochs={args.epochs}", f"train.eval_every={args.epochs}", f"train.checkpoint_every={args.epochs}",
    ]
    resnet = ["data.name=synthetic", f"data.num_samples={args.samples}", *common]
    bf16_cl = [*resnet, "train.precision=bf16", "train.channels_last=true"]
    return [
        Case("ResNet-18 fp32", RESNET, [*resnet, "train.precision=fp32", "train.channels_last=false"]),
        Case("ResNet-18 bf16 autocast", RESNET, [*resnet, "train.precision=bf16", "train.channels_last=false"]),
        Case("ResNet-18 bf16 + channels_last", RESNET, bf16_cl),
        Case("DeepFM (ctr_deepfm.yaml), parquet", DEEPFM, [f"data.path={ctr_dir}", "data.val_path=", *common]),
        Case("ResNet-18 bf16 + channels_last, torchrun 1 process (dist_train.sh)", RESNET, [*bf16_cl, f"model.target={PEAK_TARGET}"], torchrun=True),
        Case("ResNet-18 bf16 + channels_last + torch.compile", RESNET, [*bf16_cl, "train.compile=true"]),
    ]


def outputs(case: Case, out: Path, index: int) -> tuple[list[str], Path]:
    experiment = f"case{index}"
    return [*case.settings, f"output.dir={out}", f"output.experiment={experiment}", "output.export_torchscript=false"], out / experiment


def run_here(case: Case, settings: list[str]) -> float:
    """Peak GPU MiB of one in-process run."""
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    run_local(load_config(str(case.config), settings), overwrite=True, verbose=False)
    return torch.cuda.max_memory_allocated() / MIB


def run_torchrun(case: Case, settings: list[str], peak_file: Path) -> float:
    """Peak GPU MiB of the torchrun child, as ``recording_peak_memory`` left it in ``peak_file``."""
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env[PEAK_FILE_ENV] = str(peak_file)
    command = ["bash", "scripts/dist_train.sh", "1", "--config", str(case.config), *settings, "--overwrite"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise RuntimeError(f"scripts/dist_train.sh exited {done.returncode} (its stderr is above)")
    return int(peak_file.read_text()) / MIB


def run_case(case: Case, out: Path, index: int) -> Result:
    settings, exp_dir = outputs(case, out, index)
    try:
        peak = run_torchrun(case, settings, out / "torchrun_peak_bytes") if case.torchrun else run_here(case, settings)
        summary = read_summary(str(exp_dir)) or {}
        return Result(case, summary.get("precision", "?"), run_rate(exp_dir), peak)
    except Exception as exc:  # noqa: BLE001 - one failing case must not hide the others' numbers
        return Result(case, error=f"{type(exc).__name__}: {first_line(str(exc))}")


def report(results: list[Result], args: argparse.Namespace) -> str:
    fp32 = results[0].samples_per_s  # the first case; 0 when it failed
    rows = []
    for r in results:
        vs = f"{r.samples_per_s / fp32:.2f}" if fp32 and r.case.config == RESNET and not r.error else ""
        rows.append([r.case.name, r.precision, f"{r.samples_per_s:,.0f}" if not r.error else "", vs,
                     f"{r.peak_mib:,.0f}" if not r.error else "", r.error or "ok"])
    table = markdown_table(["case", "precision", "samples/s", "vs ResNet-18 fp32", "peak GPU memory MiB", "status"], rows)
    props = torch.cuda.get_device_properties(0)
    return "\n".join([
        "# GPU check", "",
        f"Card: **{torch.cuda.get_device_name(0)}** ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
        machine_line(), f"Command: `bash scripts/gpu_check.sh{' --quick' if args.quick else ''}`", "",
        f"ResNet-18: configs/cifar10_resnet18.yaml (batch 128, SGD one-cycle) on {args.samples:,} synthetic 3x32x32 images; "
        f"DeepFM: configs/ctr_deepfm.yaml (batch 4096, 13 dense + 26 hashed columns, 100,000 buckets) on {args.rows:,} generated rows; "
        f"{args.epochs} epochs each, samples/s = median of epochs 2+ from metrics.jsonl. fp32 convolutions may use TF32 "
        "(PyTorch's cuDNN default; dltune does not change it). The torchrun case runs one process "
        "through scripts/dist_train.sh: it joins a one-rank NCCL process group and trains under DDP, so NCCL's set-up and "
        "all-reduce path run, but nothing crosses between GPUs.",
        "", table, "",
    ])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=25_600, help="synthetic ResNet-18 training images")
    parser.add_argument("--rows", type=int, default=1_000_000, help="DeepFM parquet rows")
    parser.add_argument("--epochs", type=int, default=3)
    return parse_bench_args(parser, {"samples": 2_560, "rows": 100_000, "epochs": 2})


def main() -> int:
    args = parse_args()
    if not torch.cuda.is_available():
        print(SKIPPED)
        return 0
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="dltune-gpu-check-") as tmp:
        work = Path(tmp)
        write_ctr_parquet(work / "ctr", args.rows, files=4, row_group_rows=50_000)
        for index, case in enumerate(cases(args, work / "ctr")):
            print(f"gpu check: {case.name} ...", flush=True)
            results.append(run_case(case, work, index))
            text = report(results, args)
            write_markdown(args.out, "gpu", text)
    print(text)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
