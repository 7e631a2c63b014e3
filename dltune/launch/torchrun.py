"""Entry point for torchrun (scripts/dist_train.sh):

    torchrun --nproc_per_node N -m dltune.launch.torchrun --config CONFIG [key=value ...] [--resume] [--overwrite]

and ``dltune train --launcher torchrun``, which starts a single-node torchrun for you.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from dltune.command import run_guarded, split_overrides
from dltune.config import Config
from dltune.launch.user_code import UserCode


def torchrun_command(config_path: str, overrides: list[str], nproc: int, resume: bool, overwrite: bool) -> list[str]:
    """A single-node torchrun of this module (rendezvous on a free local port)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "dltune.launch.torchrun", "--config", config_path, *overrides, "scaling.launcher=local"]
    return cmd + (["--resume"] if resume else []) + (["--overwrite"] if overwrite else [])


def run_torchrun(cfg: Config, config_path: str, overrides: list[str], resume: bool, overwrite: bool) -> int:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env["PYTHONPATH"] = UserCode.of(cfg).pythonpath(env)
    return subprocess.call(torchrun_command(config_path, overrides, cfg.scaling.num_workers, resume, overwrite), env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dltune.launch.torchrun", description="one rank of a torchrun job")
    parser.add_argument("--config", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--debug", action="store_true")
    args, overrides = parser.parse_known_args(argv)
    return run_guarded(lambda: _train(args, overrides), args.debug)


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    from dltune.config import load_config
    from dltune.launch.local import run_local

    cfg = load_config(args.config, split_overrides(overrides))
    verbose = int(os.environ.get("RANK", "0")) == 0
    run_local(cfg, resume=args.resume, overwrite=args.overwrite, verbose=verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
