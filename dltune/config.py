"""The dltune config: YAML + dotted overrides -> typed dataclasses, validated once.

Every key below appears in docs/configuration.md (generated from the ``help``
text here by ``python -m dltune.docs``).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from dltune import plugins, schema, storage
from dltune.errors import ConfigError
from dltune.schema import option, section
from dltune.space import parse_space


@dataclass
class DataConfig:
    name: Literal["digits", "cifar10", "imagefolder", "tabular", "synthetic"] = option("digits", help="dataset by name (ignored when target is set)")
    target: str = option("", help="built-in loop: user datasets 'package.module:function', called as function(config) and returning dltune.TorchDatasets")
    path: str = option("", help="training data: a file, a directory or a glob; local, NFS, hdfs://, webhdfs:// or s3://")
    val_path: str = option("", help="validation data (same forms as path); empty: split val_fraction off the training data")
    val_fraction: float = option(0.2, help="share of the training data held out for validation when val_path is empty", gt=0.0, max=0.9)
    feature_cols: list[str] = option([], help="tabular: dense numeric columns (comma-separated on the command line)")
    sparse_cols: list[str] = option([], help="tabular: categorical columns, hashed into hash_buckets embedding ids")
    label_cols: list[str] = option(["label"], help="tabular: label column(s); several columns train one binary head each")
    hash_buckets: int = option(100_000, help="tabular: embedding ids per sparse column", min=2)
    task: Literal["auto", "binary", "multiclass", "regression"] = option("auto", help="tabular/synthetic: loss and metrics; auto = multiclass for images, binary for tabular")
    num_classes: int = option(0, help="classes for multiclass tabular or synthetic data (0: from the dataset)", min=0)
    augment: bool = option(True, help="cifar10/imagefolder: random crop + horizontal flip on training images")
    image_size: int = option(32, help="imagefolder/synthetic: images are resized (imagefolder) or generated at this size", min=4)
    channels: int = option(3, help="synthetic images: channels", min=1)
    num_samples: int = option(2048, help="synthetic: number of training samples", min=8)
    num_features: int = option(16, help="synthetic tabular: dense features", min=1)
    loader_workers: int = option(0, help="DataLoader worker processes per training process", min=0)


@dataclass
class ModelConfig:
    name: Literal["mlp", "cnn", "resnet18", "deepfm"] = option("mlp", help="model by name (ignored when target is set)")
    target: str = option("", help="user model factory 'package.module:function', called as function(model_cfg, data_spec)")
    hidden: list[int] = option([128, 64], help="mlp / deepfm deep part: hidden layer widths")
    width: int = option(32, help="cnn: channels of the first conv block (doubled in the second)", min=1)
    dropout: float = option(0.0, help="dropout before each hidden layer's output", min=0.0, max=0.95)
    cifar_stem: bool = option(True, help="resnet18: 3x3 stride-1 stem without max-pool, for 32x32 images")
    embed_dim: int = option(8, help="deepfm: embedding width of each sparse column", min=1)
    kwargs: dict[str, Any] = option({}, help="free-form arguments for a user model factory (model_cfg.kwargs)")

    def validate(self) -> None:
        plugins.check_import_path("model.target", self.target)


@dataclass
class OptimConfig:
    name: Literal["sgd", "adam", "adamw"] = option("adamw", help="optimizer")
    lr: float = option(1e-3, help="peak learning rate", gt=0.0)
    weight_decay: float = option(0.0, help="weight decay", min=0.0)
    momentum: float = option(0.9, help="sgd momentum (adam/adamw: beta1)", min=0.0, max=0.999)
    schedule: Literal["none", "cosine", "step", "onecycle"] = option("none", help="learning-rate schedule, stepped every batch (step: every step_epochs epochs)")
    warmup_epochs: float = option(0.0, help="linear warm-up from 0 to lr over this many epochs (none/cosine/step)", min=0.0)
    step_epochs: int = option(10, help="step schedule: epochs between decays", min=1)
    gamma: float = option(0.1, help="step schedule: decay factor", gt=0.0, max=1.0)


@dataclass
class TrainConfig:
    fn: str = option("", help="the training function 'package.module:function', called with the run context (docs/bring_your_own.md); empty: the built-in loop")
    loss: str = option("", help="built-in loop: user loss 'package.module:function', called as loss(output, target) -> scalar tensor; empty: by task")
    epochs: int = option(10, help="training epochs (schedulers' full fidelity: a train.fn should run this many)", min=1)
    batch_size: int = option(64, help="batch size per training process (the global batch is batch_size x world size)", min=1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = option("auto", help="auto: bf16 autocast on GPU, fp32 on CPU; fp16 uses a gradient scaler")
    grad_clip: float = option(0.0, help="clip the gradient norm to this value (0: off)", min=0.0)
    seed: int = option(0, help="seed for data split, shuffling, init and dropout (runs on CPU are reproducible)")
    checkpoint_every: int = option(1, help="save a checkpoint every N epochs (and always after the last)", min=1)
    eval_every: int = option(1, help="validate every N epochs (and always after the last)", min=1)
    max_steps_per_epoch: int = option(0, help="cap on training batches per epoch, for smoke runs (0: no cap)", min=0)
    channels_last: bool = option(False, help="image models: channels_last memory format (faster convs on GPU with AMP)")
    compile: bool = option(False, help="wrap the model in torch.compile")
    device: Literal["auto", "cpu", "cuda"] = option("auto", help="auto: cuda when scaling.use_gpu and a GPU is visible, else cpu")

    def validate(self) -> None:
        plugins.check_import_path("train.fn", self.fn)
        plugins.check_import_path("train.loss", self.loss)


@dataclass
class ScalingConfig:
    launcher: Literal["local", "torchrun", "ray"] = option("local", help="local: in this process; torchrun: num_workers processes here; ray: Ray Train TorchTrainer")
    num_workers: int = option(1, help="training processes (DDP world size) for the torchrun and ray launchers", min=1)
    use_gpu: bool = option(False, help="train on GPUs (one CUDA device per process)")
    gpus_per_worker: float = option(1.0, help="ray: GPUs reserved per worker when use_gpu (fractions pack several workers on one GPU)", min=0.0)
    cpus_per_worker: float | None = option(None, help="CPUs per worker: what Ray reserves (1 when unset) and torch's threads (unset: this machine's cores shared by its local workers)", min=0.0)
    avoid_head: bool = option(False, help="ray: place workers only on nodes that offer the 'worker_node' resource, never on the head")
    max_failures: int = option(0, help="ray: restarts of the worker group from the last checkpoint after a worker dies", min=-1)


def reserved_cpus(scaling: ScalingConfig) -> float:
    """The CPUs Ray reserves for one worker or single-worker trial."""
    return 1.0 if scaling.cpus_per_worker is None else scaling.cpus_per_worker


@dataclass
class OutputConfig:
    dir: str = option("outputs", help="root of all outputs: local/NFS path, hdfs:// or s3:// URI")
    experiment: str = option("", help="experiment name; outputs go to dir/experiment (empty: the config file's name)")
    export_torchscript: bool = option(True, help="also export the final model as TorchScript where the model allows")
    report: bool = option(True, help="a search writes report.html with report/*.png at its end, and study.journal (its trials for optuna-dashboard) as it runs")
    report_every_s: float = option(60.0, help="while a search runs, rewrite its report.html at most this often, in a process of its own "
                                              "(0: only at the end)", min=0.0)


TIME_COSTS = ("cpu_seconds", "gpu_seconds")


@dataclass
class BudgetConfig:
    total: float = option(0.0, help="end the search once its trials' summed cost reaches this (0: no compute budget)", min=0.0)
    cost: str = option("auto", help="a trial's cost: cpu_seconds or gpu_seconds (its wall time x the CPUs or GPUs it holds), or the name of a "
                                    "cumulative metric it reports (e.g. simulated seconds); auto: gpu_seconds when trials hold GPUs, else cpu_seconds")


@dataclass
class TuneConfig:
    space: dict[str, Any] = option({}, help="search space: dotted config key -> {uniform|loguniform: [a, b]}, {quniform: [a, b, q]}, {randint: [a, b]} (inclusive), {choice: [...]} or {grid: [...]}")
    metric: str = option("val_loss", help="metric to optimise (any reported one: val_acc, val_auc, val_loss, ...)")
    mode: Literal["min", "max"] = option("min", help="minimise or maximise the metric")
    num_samples: int = option(8, help="trials to run (grid: repetitions of the whole grid)", min=1)
    time_budget_s: float = option(0.0, help="stop the search after this many seconds (0: no limit)", min=0.0)
    budget: BudgetConfig = section(BudgetConfig, help="compute budget: the search stops starting trials, and ends the running ones, once their summed cost reaches total")
    max_concurrent_trials: int | Literal["auto"] = option("auto", help="trials at once; auto: as many as the cluster can hold with all their workers")
    seed: int = option(0, help="seed for searchers that take one")
    searcher: str = option("auto", help="search algorithm by name (docs/tuning.md), or 'package.module:Class' of a Ray Tune Searcher or an Optuna sampler; auto picks from the space and the job")
    searcher_kwargs: dict[str, Any] = option({}, help="keyword arguments for the searcher (optuna: for its sampler, e.g. multivariate, n_startup_trials, constant_liar (tpe and gp); smac: initial_configs)")
    sampler: str = option("tpe", help="optuna's sampler by name")
    low_cost: dict[str, Any] = option({}, help="blendsearch/cfo: partial config known to be cheap, where the search starts")
    scheduler: str = option("auto", help="trial scheduler by name (docs/tuning.md), or 'package.module:Class' of a Ray Tune TrialScheduler; auto: chosen with the searcher when searcher=auto, else fifo (bohb: its HyperBand; smac: smac_hyperband, or fifo when train.epochs is not above grace_period)")
    scheduler_kwargs: dict[str, Any] = option({}, help="keyword arguments for the scheduler, over dltune's own (time_attr, max_t, ...)")
    grace_period: int = option(1, help="asha/median/optuna_hyperband: epochs before a trial may be stopped", min=1)
    reduction_factor: float = option(3.0, help="asha/hyperband/bohb/optuna_hyperband: keep 1/reduction_factor at each rung", gt=1.0)
    perturbation_interval: int = option(2, help="pbt/pb2: epochs between exploit/explore steps", min=1)
    mutations: dict[str, Any] = option({}, help="pbt: keys to mutate (same grammar as space); empty: the space's keys. pb2: bounds from uniform/loguniform entries")
    quantile_fraction: float = option(0.25, help="pbt/pb2: bottom fraction that copies the top fraction", gt=0.0, max=0.5)
    synch: bool = option(False, help="pbt: synchronous PBT (every trial waits at each perturbation point; no straggler misses an exploit)")
    resample_probability: float = option(0.25, help="pbt: chance to resample a mutated value instead of perturbing it", min=0.0, max=1.0)
    max_failures: int = option(0, help="retries of a failed trial from its last checkpoint", min=0)
    reuse_actors: bool = option(True, help="single-worker trials run one after another in the same Ray worker process, skipping its start-up and imports (multi-worker trials always start afresh)")
    top_k: int = option(5, help="best trials shown at the end", min=1)
    local_cpus: float = option(0.0, help="local Ray only: logical CPUs to start Ray with (0: the machine's cores)", min=0.0)


@dataclass
class Config:
    data: DataConfig = section(DataConfig, help="dataset")
    model: ModelConfig = section(ModelConfig, help="model")
    optim: OptimConfig = section(OptimConfig, help="optimizer and schedule")
    train: TrainConfig = section(TrainConfig, help="training loop")
    scaling: ScalingConfig = section(ScalingConfig, help="processes and devices")
    output: OutputConfig = section(OutputConfig, help="where results go")
    tune: TuneConfig = section(TuneConfig, help="hyperparameter search (dltune tune)")
    params: dict[str, Any] = option({}, help="free-form values for a train.fn (ctx.params): any keys, set with params.key=value, searched as tune.space params.key")

    def validate(self) -> None:
        if self.data.target:
            plugins.check_import_path("data.target", self.data.target)
        else:
            self._validate_named_data()
        if self.tune.space:
            parse_space(self.tune.space, Config)

    def _validate_named_data(self) -> None:
        if self.data.name in ("cifar10", "imagefolder", "tabular") and not self.data.path:
            raise ConfigError(f"data.path: required for data.name={self.data.name}")
        if self.data.name == "tabular":
            if not self.data.label_cols:
                raise ConfigError("data.label_cols: at least one label column is required for tabular data")
            if not self.data.feature_cols and not self.data.sparse_cols:
                raise ConfigError("data.feature_cols: tabular data needs feature_cols and/or sparse_cols")
            if self.data.task == "multiclass" and self.data.num_classes < 2:
                raise ConfigError("data.num_classes: set the number of classes for multiclass tabular data")
        if self.model.name == "deepfm" and not self.model.target and self.data.name != "tabular" and not (self.data.name == "synthetic" and self.data.task != "multiclass"):
            raise ConfigError("model.name: deepfm needs tabular data (data.name=tabular)")


def load_mapping(path: str) -> dict[str, Any]:
    """Read a YAML config file (any storage) into a plain mapping."""
    try:
        text = storage.read_text(path)
    except storage.StorageError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections at the top level")
    return data


def apply_overrides(mapping: dict[str, Any], overrides: list[str], cls: type = Config) -> dict[str, Any]:
    for text in overrides:
        key, value = schema.parse_override(text)
        schema.set_dotted(cls, mapping, key, value)
    return mapping


def experiment_name(config_path: str | None) -> str:
    if not config_path:
        return "run"
    stem = os.path.basename(config_path.rstrip("/"))
    for suffix in (".yaml", ".yml"):
        stem = stem.removesuffix(suffix)
    return stem or "run"


def load_config(path: str | None, overrides: list[str] = (), cls: type = Config) -> Any:
    """Load, override and validate a config. ``path=None`` starts from the defaults."""
    mapping = load_mapping(path) if path else {}
    apply_overrides(mapping, list(overrides), cls)
    cfg = schema.from_mapping(cls, mapping)
    if not cfg.output.experiment:
        cfg.output.experiment = experiment_name(path)
    return cfg


def absolute_paths(cfg: Config) -> Config:
    """A copy of ``cfg`` whose local paths no longer depend on the working directory
    (Ray workers run in a directory of their own)."""
    def fix(path: str) -> str:
        return os.path.abspath(os.path.expanduser(path)) if path and not storage.is_remote(path) else path

    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, path=fix(cfg.data.path), val_path=fix(cfg.data.val_path)),
        output=dataclasses.replace(cfg.output, dir=fix(cfg.output.dir)),
    )


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML, secrets redacted: safe to write next to results."""
    return yaml.safe_dump(storage.redact(schema.to_mapping(cfg)), sort_keys=False)


def from_dict(data: dict[str, Any], cls: type = Config) -> Any:
    return schema.from_mapping(cls, data)
