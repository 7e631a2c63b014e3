"""`dltune check`: validate a config (data and model included) and describe what would run."""
from __future__ import annotations

from dltune import storage
from dltune.config import Config, load_config
from dltune.data import build_datasets
from dltune.models import build_model, count_parameters
from dltune.train.session import experiment_dir


def planned_device(cfg: Config) -> str:
    if cfg.train.device == "cpu" or (cfg.train.device == "auto" and not cfg.scaling.use_gpu):
        return "cpu"
    return "cuda"


def describe_plan(config_path: str, overrides: list[str]) -> str:
    cfg = load_config(config_path, overrides)
    data = build_datasets(cfg.data, cfg.train.batch_size, cfg.train.seed)
    model = build_model(cfg.model, data.spec)
    world = 1 if cfg.scaling.launcher == "local" else cfg.scaling.num_workers
    device = planned_device(cfg)
    precision = cfg.train.precision if cfg.train.precision != "auto" else ("bf16" if device == "cuda" else "fp32")
    rows = [
        ("config", config_path),
        ("experiment", storage.redact(experiment_dir(cfg))),
        ("dataset", f"{cfg.data.name} ({data.spec.kind}, task {data.spec.task}, {data.train.num_samples:,} train / {data.val.num_samples:,} val samples{' read here' if data.pre_sharded else ''})"),
        ("model", f"{cfg.model.target or cfg.model.name} ({count_parameters(model):,} parameters, {data.spec.num_outputs} output(s))"),
        ("optimizer", f"{cfg.optim.name} lr={cfg.optim.lr:g} weight_decay={cfg.optim.weight_decay:g} schedule={cfg.optim.schedule}"),
        ("training", f"{cfg.train.epochs} epochs x {len(data.train)} steps of batch {cfg.train.batch_size} per process"),
        ("launcher", cfg.scaling.launcher),
        ("world size", str(world)),
        ("device", device + (f" ({cfg.scaling.gpus_per_worker:g} GPU per worker)" if device == "cuda" and cfg.scaling.launcher == "ray" else "")),
        ("precision", precision),
    ]
    width = max(len(k) for k, _ in rows)
    text = "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
    if cfg.tune.space:
        from dltune.hpo.tuner import local_cluster_resources, make_plan

        text += "\n\ndltune tune (local Ray; a cluster in RAY_ADDRESS may offer more):\n" + make_plan(cfg, local_cluster_resources(cfg)).describe()
    return text + "\nconfig OK"
