"""`dltune check`: validate a config (training function, data and model included) and describe what would run."""
from __future__ import annotations

from dltune import storage
from dltune.config import Config, load_config
from dltune.data import build_datasets
from dltune.data.user import load_user_datasets
from dltune.models import build_model, count_parameters
from dltune.preflight import check_run
from dltune.train.session import experiment_dir


def planned_device(cfg: Config) -> str:
    if cfg.train.device == "cpu" or (cfg.train.device == "auto" and not cfg.scaling.use_gpu):
        return "cpu"
    return "cuda"


def _count(dataset: object) -> str:
    return f"{len(dataset):,}" if hasattr(dataset, "__len__") else "a stream of"  # type: ignore[arg-type]


def _builtin_rows(cfg: Config) -> list[tuple[str, str]]:
    """Read the data and build the model the built-in loop would train."""
    if cfg.data.target:
        user = load_user_datasets(cfg)
        spec, what = user.spec(), f"{cfg.data.target} (task {user.task}, {_count(user.train)} train / {_count(user.val)} val samples)"
        steps = "?"
    else:
        data = build_datasets(cfg.data, cfg.train.batch_size, cfg.train.seed)
        spec, steps = data.spec, str(len(data.train))
        what = f"{cfg.data.name} ({spec.kind}, task {spec.task}, {data.train.num_samples:,} train / {data.val.num_samples:,} val samples{' read here' if data.pre_sharded else ''})"
    model = build_model(cfg.model, spec)
    return [
        ("dataset", what),
        ("model", f"{cfg.model.target or cfg.model.name} ({count_parameters(model):,} parameters, {spec.num_outputs} output(s))"),
        ("optimizer", f"{cfg.optim.name} lr={cfg.optim.lr:g} weight_decay={cfg.optim.weight_decay:g} schedule={cfg.optim.schedule}"),
        ("training", f"{cfg.train.epochs} epochs x {steps} steps of batch {cfg.train.batch_size} per process"),
    ]


def describe_plan(config_path: str, overrides: list[str]) -> str:
    cfg = load_config(config_path, overrides)
    check_run(cfg, search=bool(cfg.tune.space))  # with a space, check what `dltune tune` would refuse
    world = 1 if cfg.scaling.launcher == "local" else cfg.scaling.num_workers
    device = planned_device(cfg)
    precision = cfg.train.precision if cfg.train.precision != "auto" else ("bf16" if device == "cuda" else "fp32")
    rows = [("config", config_path), ("experiment", storage.redact(experiment_dir(cfg)))]
    if cfg.train.fn:
        rows += [("train.fn", f"{cfg.train.fn} ({cfg.train.epochs} epochs)"), ("params", ", ".join(f"{k}={v!r}" for k, v in cfg.params.items()) or "(none)")]
    else:
        rows += _builtin_rows(cfg)
    rows += [
        ("launcher", cfg.scaling.launcher),
        ("world size", str(world)),
        ("device", device + (f" ({cfg.scaling.gpus_per_worker:g} GPU per worker)" if device == "cuda" and cfg.scaling.launcher == "ray" else "")),
        ("precision", precision),
    ]
    width = max(len(k) for k, _ in rows)
    text = "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
    if cfg.tune.space:
        from dltune.hpo.search_plan import local_cluster_resources, make_plan

        text += "\n\ndltune tune (local Ray; a cluster in RAY_ADDRESS may offer more):\n" + make_plan(cfg, local_cluster_resources(cfg)).describe()
    return text + "\nconfig OK"
