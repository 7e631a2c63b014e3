"""Does a killed-and-resumed ASHA or HyperBand search make the decisions an uninterrupted one would?

Each run, with ``--scheduler asha``: an ASHA search (16 trials of a simulated objective, one at
a time, rungs 1, 3, 9) whose driver is SIGKILLed once six trials have reported; with
``--scheduler hyperband``: a HyperBand search of one band (17 trials, brackets of 3, 5 and 9, two
at a time) killed once 11 have reported. Then it is `--resume`d; the scheduler's decisions are
replayed offline from every trial's result.json with the full history, and the trials that
trained past a replayed stop, or were stopped where the replay lets them through, are counted.
An uninterrupted search is replayed first, as the control (it must show 0).

    python bench/resume_replay.py --runs 3               # this checkout
    python bench/resume_replay.py --runs 3 --tree OTHER  # another checkout of dltune, e.g. an older commit
    python bench/resume_replay.py --runs 2 --scheduler hyperband
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from asha_replay import Replay, replay_asha, replay_hyperband  # noqa: E402
from conftest import trial_results  # noqa: E402
from user_package import write_user_package  # noqa: E402

ARGS = ["tune", "configs/quickstart_tune.yaml", "train.fn=byo_user.train:simulated", "tune.space={params.x: {uniform: [-5.0, 5.0]}}",
        "tune.metric=loss", "tune.mode=min", "tune.searcher=random", "tune.reduction_factor=3", "train.epochs=9", "params={sleep: 0.5}",
        "tune.local_cpus=2", "output.experiment=k"]
SCHEDULERS = {  # the search's own arguments, the reports before the kill, its replay
    "asha": (["tune.scheduler=asha", "tune.grace_period=1", "tune.num_samples=16", "tune.max_concurrent_trials=1"], 6,
             lambda exp: replay_asha(exp, "loss", "min", max_t=9, grace_period=1, reduction_factor=3)),
    "hyperband": (["tune.scheduler=hyperband", "tune.num_samples=17", "tune.max_concurrent_trials=auto"], 11,
                  lambda exp: replay_hyperband(exp, "loss", "min", max_t=9, reduction_factor=3)),
}


def _search(tree: Path, out: Path, env: dict[str, str], scheduler: str, killed: bool) -> Replay:
    own, kill_after, replay = SCHEDULERS[scheduler]
    args = [sys.executable, "-m", "dltune", *ARGS, *own, f"output.dir={out}"]
    exp = out / "k"
    proc = subprocess.Popen(args, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    if killed:
        while proc.poll() is None and (not exp.exists() or len(trial_results(exp)) < kill_after):
            time.sleep(0.5)
        time.sleep(2)  # let the experiment state record them
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc = subprocess.Popen([*args, "--resume"], cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if proc.wait() != 0:
        raise SystemExit(f"the search in {out} failed (exit {proc.returncode})")
    return replay(exp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="killed-and-resumed searches")
    parser.add_argument("--tree", type=Path, default=REPO, help="the dltune checkout to run")
    parser.add_argument("--scheduler", choices=sorted(SCHEDULERS), default="asha")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="resume-replay-") as tmp:
        root = write_user_package(Path(tmp) / "user")
        env = dict(os.environ, TUNE_GLOBAL_CHECKPOINT_S="1", RAY_ADDRESS="", OMP_NUM_THREADS="1", PYTHONPATH=f"{args.tree}{os.pathsep}{root}")
        rows = [("uninterrupted", _search(args.tree, Path(tmp) / "control", env, args.scheduler, killed=False))]
        rows += [(f"killed {i + 1}", _search(args.tree, Path(tmp) / f"run{i}", env, args.scheduler, killed=True)) for i in range(args.runs)]
    print(f"{'search':<14} {'rung decisions':>14} {'past a stop':>12} {'wrongly stopped':>16}")
    for name, r in rows:
        print(f"{name:<14} {r.decisions:>14} {len(r.past_stop):>12} {len(r.wrongly_stopped):>16}")
    killed = [r for name, r in rows if name != "uninterrupted"]
    print(f"killed and resumed, all runs: {sum(r.decisions for r in killed)} decisions, {sum(len(r.past_stop) for r in killed)} past a stop, "
          f"{sum(len(r.wrongly_stopped) for r in killed)} wrongly stopped")


if __name__ == "__main__":
    main()
