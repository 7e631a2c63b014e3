"""A user's own training function, datasets, loss, searcher, scheduler and objective
(tests/user_package.py, written to disk as a real package) under every launcher."""
from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_cli
from objectives import curve as objective
from dltune import api, cli
from dltune.train.threads import machine_cores

BYO = ["train.fn=byo_user.train:train", "params={lr: 0.1, hidden: 8}"]
EXAMPLES = ROOT / "examples"
PORT = EXAMPLES / "own_loop"


def _metrics(exp: Path) -> list[dict]:
    return [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]


def _write_config(path: Path, **sections: object) -> Path:
    path.write_text(yaml.safe_dump(sections))
    return path


# --- dltune train ----------------------------------------------------------------------------

def test_train_fn_in_process_reports_checkpoints_and_resumes(user_root: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    common = [*BYO, f"output.dir={tmp_path}", "output.experiment=own"]
    summary = api.train(None, [*common, "train.epochs=2"], verbose=False)
    exp = tmp_path / "own"
    assert summary["epochs"] == 2 and summary["world_size"] == 1 and summary["shard_sizes"] == [512]
    assert [m["epoch"] for m in _metrics(exp)] == [1, 2] and _metrics(exp)[-1]["lr"] == 0.1
    acc = EventAccumulator(str(exp / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("val_loss")] == [1, 2]
    written = json.loads((exp / "summary.json").read_text())
    assert written["status"] == "finished" and written["exported"] == {"checkpoints": str(exp / "checkpoints")}

    (exp / "summary.json").unlink()  # as if the run had been killed after epoch 2
    resumed = api.train(None, [*common, "train.epochs=4"], resume=True, verbose=False)
    assert [m["epoch"] for m in _metrics(exp)] == [1, 2, 3, 4]
    assert [m["donor_epoch"] for m in _metrics(exp)] == [0, 0, 2, 2]  # load_checkpoint() gave epoch 2's state
    assert resumed["final_metrics"]["val_acc"] > 0.9


def test_the_local_launcher_sets_torch_threads_for_the_call_only(user_root: Path, tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    common = [*BYO, "train.epochs=1", f"output.dir={tmp_path}"]
    try:
        torch.set_num_threads(3)
        pinned = api.train(None, [*common, "scaling.cpus_per_worker=1", "output.experiment=one"], verbose=False)
        assert pinned["threads"] == [1] and torch.get_num_threads() == 3
        shared = api.train(None, [*common, "output.experiment=all"], verbose=False)
        assert shared["threads"] == [machine_cores()] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_iterable_dataset_in_the_users_loop_and_the_builtin_loop(user_root: Path, tmp_path: Path) -> None:
    own = api.train(None, [*BYO, "params.iterable=true", "train.epochs=1", f"output.dir={tmp_path}", "output.experiment=stream"], verbose=False)
    assert own["shard_sizes"] == [512]
    builtin = ["data.target=byo_user.data:blobs", "model.name=mlp", "model.hidden=[16]", "train.epochs=4", "optim.lr=0.01", "train.batch_size=30", f"output.dir={tmp_path}"]
    mapped = api.train(None, [*builtin, "train.loss=byo_user.data:label_smoothed", "output.experiment=blobs"], verbose=False)
    assert mapped["final_metrics"]["val_acc"] > 0.9 and mapped["train_samples"] == 600 and mapped["ranks_disjoint"] is True
    assert json.loads((tmp_path / "blobs" / "summary.json").read_text())["exported"]["torchscript"] == "model/model_scripted.pt"
    streamed = api.train(None, [*builtin, "params.iterable=true", "train.max_steps_per_epoch=20", "output.experiment=blobstream"], verbose=False)
    assert streamed["final_metrics"]["val_acc"] > 0.9 and streamed["ranks_disjoint"] is None
    refused = cli.main(["train", "configs/quickstart.yaml", *builtin, "params.iterable=true", "output.experiment=nolen"])
    assert refused == 2


def test_the_ported_ddp_script_changes_under_20_lines_and_runs_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed

    before, after = ((PORT / name).read_text().splitlines() for name in ("before_ddp.py", "train.py"))
    changed = [line for line in difflib.unified_diff(before, after, lineterm="", n=0) if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert len(changed) < 20, changed
    monkeypatch.syspath_prepend(str(EXAMPLES))
    summary = api.train(str(PORT / "config.yaml"), ["train.epochs=1", f"output.dir={tmp_path}"], verbose=False)
    # its DistributedSampler, all_reduce and DDP ran in the one-rank group, which is gone again
    assert summary["epochs"] == 1 and 0.0 < summary["final_metrics"]["val_acc"] <= 1.0
    assert not torch.distributed.is_initialized()
    assert json.loads((tmp_path / "own_loop" / "summary.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_the_ported_ddp_script_computes_what_the_original_does_under_torchrun(tmp_path: Path) -> None:
    flags = {"lr": 0.01, "width": 8, "smoothing": 0.1, "batch_size": 32}
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(PORT / "before_ddp.py"), "--epochs=1",
               *(f"--{key.replace('_', '-')}={value}" for key, value in flags.items())]
    original = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    if original.returncode != 0 and "(SIGABRT)" in original.stderr:
        # The reference is plain torch: a gloo rank of it once aborted under load ("terminate called
        # without an active exception"), which says nothing of the port. It gets one more run.
        original = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert original.returncode == 0, original.stderr[-3000:]
    params = "{" + ", ".join(f"{key}: {value}" for key, value in flags.items()) + "}"
    ported = run_cli("train", "own_loop/config.yaml", "--launcher", "torchrun", "scaling.num_workers=2", "train.epochs=1", f"params={params}",
                     f"output.dir={tmp_path}", cwd=EXAMPLES)
    assert ported.returncode == 0, ported.stderr[-3000:]
    printed = [line for line in original.stdout.splitlines() if line.startswith("epoch 1: ")]
    assert len(printed) == 1 and printed[0] in ported.stdout.splitlines()  # the same losses, to the last digit


@pytest.mark.slow
def test_train_fn_under_torchrun_two_ranks_reads_disjoint_shards(user_root: Path, tmp_path: Path) -> None:
    config = _write_config(tmp_path / "own.yaml", train={"fn": "byo_user.train:train", "epochs": 2}, params={"lr": 0.1},
                           scaling={"launcher": "torchrun", "num_workers": 2}, output={"dir": str(tmp_path)})
    # run from the package's directory, as a user runs their own project: the ranks import it from there
    proc = run_cli("train", str(config), cwd=user_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "own" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["disjoint"] is True and summary["shard_sizes"] == [256, 256]
    assert summary["threads"] == [max(1, machine_cores() // 2)] * 2  # the machine's cores shared by its two ranks
    assert proc.stdout.count("epoch 2/2") == 1


@pytest.mark.slow
@pytest.mark.ray
def test_train_fn_on_two_ray_train_workers_of_a_local_ray_it_starts(user_root: Path, tmp_path: Path) -> None:
    """A cold CLI, run from the user's project directory, starts its own Ray: the workers import
    the project, shard its data and gather across ranks, and the console shows dltune's lines only."""
    config = _write_config(tmp_path / "own.yaml", train={"fn": "byo_user.train:train", "epochs": 2}, params={"lr": 0.1}, output={"dir": "rel_out"})
    proc = run_cli("train", str(config), "--launcher", "ray", "scaling.num_workers=2", cwd=user_root, env={"RAY_ADDRESS": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = user_root / "rel_out" / "own"  # a relative output.dir is the launching directory's, not a worker's
    summary = json.loads((exp / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["disjoint"] is True and summary["shard_sizes"] == [256, 256] and len(_metrics(exp)) == 2
    named = [p.read_text() for p in (exp / "ray_train").rglob("experiment_checkpoint.txt")]  # Ray Train's checkpoints name rank 0's
    assert sorted(named) == ["checkpoints/epoch_0001.pt", "checkpoints/epoch_0002.pt"] and not any((exp / "ray_train").rglob("*.pt"))
    # the console shows dltune's lines; Ray's start-up notices and rank 0's per-report lines go to ray.log
    console = proc.stdout + proc.stderr
    assert proc.stdout.count("epoch 2/2") == 1 and "outputs:" in console
    for noise in ("Token authentication", "Started a local Ray", "Reporting training result", "Attempting to start training worker group",
                  "core_worker.cc"):  # the ERROR line Ray Train's preemption watcher prints when it starts
        assert noise not in console, noise
    assert "Reporting training result" in (exp / "ray.log").read_text()  # rank 0's worker lines are kept with the experiment


@pytest.mark.slow
@pytest.mark.ray
def test_a_train_fn_failing_on_ray_train_workers_ends_with_its_own_cause(ray_cluster, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = _write_config(tmp_path / "own.yaml", train={"fn": "byo_user.train:fails", "epochs": 2}, params={"lr": 0.1}, output={"dir": str(tmp_path)})
    assert cli.main(["train", str(config), "--launcher", "ray", "scaling.num_workers=2"]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # the cause, not Ray's WorkerGroupError, and last
    assert last.startswith("dltune: failed: RuntimeError: the user's code broke on rank ") and "byo_user/train.py:" in last, err[-2000:]


@pytest.mark.slow
@pytest.mark.ray
def test_a_restarted_ray_train_group_resumes_from_the_one_copy_of_its_checkpoint(ray_cluster, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "died"
    config = _write_config(tmp_path / "own.yaml", train={"fn": "byo_user.train:dies_once", "epochs": 4}, params={"marker": str(marker)},
                           output={"dir": str(tmp_path)})
    assert cli.main(["train", str(config), "--launcher", "ray", "scaling.num_workers=2", "scaling.max_failures=1"]) == 0, capsys.readouterr().err[-3000:]
    exp = tmp_path / "own"
    summary = json.loads((exp / "summary.json").read_text())
    assert (tmp_path / "died.0").exists() and summary["resumed_from"] == 2  # the group died at step 2 and went on from the epoch-2 checkpoint
    assert [m["epoch"] for m in _metrics(exp)] == [1, 2, 3, 4]
    assert sorted(p.name for p in (exp / "checkpoints").iterdir()) == ["epoch_0003.pt", "epoch_0004.pt"]
    ray_files = [p for p in (exp / "ray_train").rglob("*") if p.is_file() and p.parent.name.startswith("checkpoint_")]
    assert ray_files and {p.name for p in ray_files} == {"experiment_checkpoint.txt"}  # Ray Train holds names, not copies
    assert {p.read_text() for p in ray_files} == {"checkpoints/epoch_0003.pt", "checkpoints/epoch_0004.pt"}


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("fn", "message"),
    [
        ("byo_missing.mod:train", "train.fn: cannot import module 'byo_missing.mod' (not found on the Python path; install the package or run from its directory)"),
        ("byo_user.train:nope", "train.fn: module 'byo_user.train' has no callable 'nope'"),
        ("byo_user.train:CONSTANT", "train.fn: 'byo_user.train:CONSTANT' is a int, not callable"),
        ("byo_user.train:two_args", "train.fn: two_args(ctx, extra) cannot be called with 1 argument(s); a train.fn takes one argument, the run context"),
        ("byo_user.broken:train", "train.fn: importing 'byo_user.broken' failed: ImportError: byo_user.broken needs a library this machine lacks"),
        ("byo_user.train", "train.fn: expected 'package.module:function', got 'byo_user.train'"),
    ],
)
@pytest.mark.parametrize("command", ["check", "train", "tune"])
def test_a_bad_train_fn_is_one_line_and_exit_2_before_anything_runs(no_ray, user_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, fn: str, message: str, command: str) -> None:
    import ray

    code = cli.main([command, "configs/quickstart_tune.yaml", f"train.fn={fn}", f"output.dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code == 2 and err == f"dltune: error: {message}\n"
    assert not ray.is_initialized() and not (tmp_path / "quickstart_tune").exists()


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        ("byo_user.train:fails", "RuntimeError: the user's code broke on rank 0 ("),
        ("byo_user.train:same_epoch_twice", "ValueError: ctx.report(): metrics['epoch'] must be an integer above the last reported epoch 1, got 1"),
        ("byo_user.train:numpy_checkpoint", "TypeError: checkpoint['weights'] is a numpy.ndarray, which a weights-only checkpoint cannot hold (torch.as_tensor it)"),
    ],
)
def test_a_failing_train_fn_names_its_exception_and_line(user_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, fn: str, message: str) -> None:
    code = cli.main(["train", "configs/quickstart.yaml", f"train.fn={fn}", f"output.dir={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith(f"dltune: failed: {message}")
    assert "byo_user/train.py:" in err[0]
    assert not (tmp_path / "quickstart" / "summary.json").exists()


def test_space_checks_for_params_and_integer_keys(user_root: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli.main(["check", "configs/quickstart.yaml", *BYO, "tune.space={params.lr: {loguniform: [0.001, 0.1]}, params.depth: {lograndint: [1, 64]}}"])
    out = capsys.readouterr().out
    assert code == 0 and "warning: tune.space.params.depth: the config's params section has no 'depth'" in out
    assert "params.lr" not in out.split("warning")[1]  # defined keys are not warned about
    code = cli.main(["check", "configs/quickstart.yaml", "tune.space={train.batch_size: {loguniform: [16, 256]}}"])
    assert code == 2 and capsys.readouterr().err.strip() == (
        "dltune: error: tune.space.train.batch_size: loguniform samples floats but train.batch_size is an integer; "
        "use {lograndint: [low, high]} or quniform with an integer step")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["tune.searcher=optunaa"], "tune.searcher: 'optunaa' is not one of auto, random, grid, optuna, hyperopt, blendsearch, cfo, bohb, smac, "
                                    "or a 'package.module:Class' (did you mean 'optuna'?)"),
        (["tune.scheduler=byo_user.train:Net"], "tune.scheduler: byo_user.train:Net is not a ray.tune.schedulers.TrialScheduler subclass"),
        (["tune.searcher=byo_user.train:Points"], "tune.searcher: byo_user.train:Points is not a ray.tune.search.Searcher or optuna.samplers.BaseSampler subclass"),
        (["tune.searcher=optuna", "tune.searcher_kwargs={n_startup_trialz: 3}"], "tune.searcher_kwargs: TPESampler refused ['n_startup_trialz', 'seed']"),
    ],
)
def test_bad_searchers_and_schedulers_are_refused_at_check(user_root: Path, capsys: pytest.CaptureFixture, overrides: list[str], message: str) -> None:
    if "searcher_kwargs" in overrides[-1]:  # kwargs meet the class only when it is built: the plan builds it
        from dltune.config import load_config
        from dltune.errors import ConfigError
        from dltune.hpo.algorithms import build_searcher, resolve_choice
        from dltune.space import parse_space

        cfg = load_config("configs/quickstart_tune.yaml", overrides)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            build_searcher(resolve_choice(parse_space(cfg.tune.space, type(cfg)), cfg), cfg, 1)
        return
    assert cli.main(["check", "configs/quickstart_tune.yaml", *overrides]) == 2
    assert capsys.readouterr().err.strip() == f"dltune: error: {message}"


# --- pre-flight: refused before anything runs ------------------------------------------------

@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "configs/cifar10_resnet18.yaml"], "scaling.use_gpu: needs a GPU; none found (set scaling.use_gpu=false or train.device=cpu)"),
        (["train", "configs/quickstart.yaml", "--launcher", "ray", "scaling.use_gpu=true"], "scaling.use_gpu: needs a GPU; none found (set scaling.use_gpu=false or train.device=cpu)"),
        (["check", "configs/quickstart.yaml", "data.path=/data/digits"], "data.path: data.name=digits reads no files, so /data/digits would be ignored; remove data.path or set data.name"),
        (["train", "configs/quickstart.yaml", "data.name=cifar10", "data.path=/does/not/exist"], "data.path: /does/not/exist does not exist"),
        (["tune", "configs/quickstart_tune.yaml", "data.name=cifar10", "data.path=/does/not/exist"], "data.path: /does/not/exist does not exist"),
        (["tune", "configs/quickstart_tune.yaml", "model.target=nosuchpkg.models:make"],
         "model.target: cannot import module 'nosuchpkg.models' (not found on the Python path; install the package or run from its directory)"),
        (["tune", "configs/quickstart_tune.yaml", "tune.metric=val_accuracy"], "tune.metric: the built-in loop reports no 'val_accuracy' (did you mean 'val_acc'?); "
         "it reports train_loss, epoch_time_s, samples_per_s, lr, val_loss, val_acc, val_auc, val_logloss, val_rmse, val_mae (the val_ ones by task)"),
    ],
)
def test_what_cannot_run_is_refused_before_ray_starts(no_ray, capsys: pytest.CaptureFixture, tmp_path: Path, args: list[str], message: str) -> None:
    import ray
    import torch

    if torch.cuda.is_available() and "GPU" in message:
        pytest.skip("a GPU is present")
    assert cli.main([*args, f"output.dir={tmp_path}"]) == 2
    assert capsys.readouterr().err == f"dltune: error: {message}\n"
    assert not ray.is_initialized() and not any(tmp_path.iterdir())


def test_a_bad_search_config_is_refused_without_importing_ray() -> None:
    code = ("import sys, dltune\n"
            "from dltune.errors import ConfigError\n"
            "try:\n    dltune.tune(None, ['tune.space={optim.lr: {uniform: [0.1, 0.01]}}'])\n"
            "except ConfigError as exc:\n    print('refused', 'ray' in sys.modules)\n")
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "refused False", out.stderr[-2000:]


def test_dltune_train_takes_a_function_object(tmp_path: Path) -> None:
    summary = api.train(None, ["train.epochs=2", "params={x: 1.5}", f"output.dir={tmp_path}", "output.experiment=fn"], verbose=False, fn=objective)
    assert summary["final_metrics"]["loss"] == pytest.approx(0.25 + 0.5) and summary["epochs"] == 2
    assert yaml.safe_load((tmp_path / "fn" / "config.yaml").read_text())["params"] == {"x": 1.5}


# --- the context's building blocks, without a launcher ---------------------------------------

def _context(*overrides: str, rank: int = 0, world: int = 1):
    from dltune.config import load_config
    from dltune.train.context import RunContext
    from dltune.train.dist import DistInfo
    from dltune.train.session import Session

    cfg = load_config(None, list(overrides))
    return RunContext(cfg, Session(cfg, rank), DistInfo(rank, world, 0, "cpu", False))


def test_prepare_loader_splits_between_ranks_for_training_and_evaluation() -> None:
    import torch
    from torch.utils.data import TensorDataset

    data = TensorDataset(torch.arange(10))
    def read(rank: int, **kwargs) -> list[int]:
        loader = _context(rank=rank, world=4).prepare_loader(data, batch_size=1, **kwargs)
        return [int(x) for (x,) in loader]

    training = [read(r) for r in range(4)]
    assert [len(t) for t in training] == [2, 2, 2, 2] and len(set().union(*training)) == 8  # disjoint, equal steps
    assert sorted(sum((read(r, shuffle=False) for r in range(4)), [])) == list(range(10))  # evaluation: each sample once
    assert {len(read(r, shuffle=False, drop_last=True)) for r in range(4)} == {2}  # a sequential training loader


def test_export_model_leaves_the_model_as_it_was(tmp_path: Path) -> None:
    from torch import nn

    from dltune.config import load_config
    from dltune.train.context import RunContext
    from dltune.train.dist import DistInfo
    from dltune.train.session import LocalSession

    cfg = load_config(None, [f"output.dir={tmp_path}"])
    session = LocalSession(cfg, verbose=False)
    ctx = RunContext(cfg, session, DistInfo(0, 1, 0, "cpu", False))
    model = nn.Linear(3, 2).train()
    ctx.export_model(model)
    assert model.training and (tmp_path / "run" / "model" / "model_state.pt").is_file() and session.exported == {"state_dict": "model/model_state.pt"}


def test_function_objects_of_any_kind_are_named() -> None:
    import functools

    from dltune.plugins import import_path_of

    class Objective:
        def __call__(self, ctx) -> None:
            pass

    assert import_path_of(objective) == "objectives:curve"
    assert import_path_of(functools.partial(objective)) == "functools:partial"
    assert import_path_of(Objective()).endswith("Objective")


def test_a_gpu_search_on_a_given_cluster_is_left_to_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from dltune.config import load_config
    from dltune.errors import ConfigError
    from dltune.preflight import check_run

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    cfg = load_config(None, ["scaling.use_gpu=true"])
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    check_run(cfg, search=True)  # the joined cluster's GPUs decide (the search plan checks them)
    with pytest.raises(ConfigError, match="scaling.use_gpu"):
        check_run(cfg)  # the local launcher trains here, whatever cluster is named
