from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from dltune import schema
from dltune.config import Config, load_config, to_yaml
from dltune.errors import ConfigError

TRAINING_CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if not p.name.startswith("automl"))


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path) -> None:
    cfg = load_config(str(path))
    assert isinstance(cfg, Config)
    assert cfg.output.experiment


def test_shipped_configs_exist() -> None:
    names = {p.name for p in TRAINING_CONFIGS}
    assert {"quickstart.yaml", "ctr_deepfm.yaml", "cifar10_resnet18.yaml"} <= names


def test_overrides_are_typed() -> None:
    cfg = load_config(None, ["optim.lr=0.05", "train.epochs=3", "data.feature_cols=a,b", "model.hidden=[8, 4]", "train.compile=true", "model.kwargs.depth=3"])
    assert cfg.optim.lr == 0.05 and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 3
    assert cfg.data.feature_cols == ["a", "b"]
    assert cfg.model.hidden == [8, 4]
    assert cfg.train.compile is True
    assert cfg.model.kwargs == {"depth": 3}
    assert load_config(None, ["optim.lr=1e-3"]).optim.lr == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=abc", "optim.lr: expected a number, got 'abc'"),
        ("train.epochs=2.5", "train.epochs: expected an integer"),
        ("optim.lrr=0.1", "optim.lrr: unknown key (did you mean 'lr'?)"),
        ("optimm.lr=0.1", "optimm: unknown key (did you mean 'optim'?)"),
        ("optim.schedule=cosin", "did you mean 'cosine'?"),
        ("optim.lr=-1", "optim.lr: must be > 0.0"),
        ("train.precision=fp64", "train.precision: 'fp64' is not one of"),
        ("train.compile=maybe", "train.compile: expected true or false"),
        ("optim.lr", "expected key=value"),
        ("optim.lr.x=1", "optim.lr.x: 'optim.lr' is not a section"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)


def test_unknown_yaml_key_names_path_and_closest(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key \(did you mean 'epochs'\?\)"):
        load_config(str(path))


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigError, match="data.path: required for data.name=tabular"):
        load_config(None, ["data.name=tabular"])
    with pytest.raises(ConfigError, match="model.target: expected 'package.module:function'"):
        load_config(None, ["model.target=mypkg.factory"])


def test_more_workers_than_the_local_launcher_runs_are_refused_before_the_run_not_in_a_torchrun_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    from dltune.preflight import check_run

    cfg = load_config(None, ["scaling.num_workers=2"])  # the config alone is fine: whether it runs depends on where
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ConfigError, match="scaling.num_workers: the local launcher runs one process"):
        check_run(cfg)
    monkeypatch.setenv("WORLD_SIZE", "2")  # a torchrun rank: the group is the workers
    check_run(cfg)


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  epochs: [1\n")
    with pytest.raises(ConfigError, match="broken.yaml line"):
        load_config(str(path))


def test_experiment_defaults_to_config_name(tmp_path: Path) -> None:
    path = tmp_path / "my_run.yaml"
    path.write_text("train:\n  epochs: 1\n")
    assert load_config(str(path)).output.experiment == "my_run"


def test_resolved_yaml_round_trips() -> None:
    cfg = load_config(None, ["optim.lr=0.02", "data.sparse_cols=x,y"])
    again = schema.from_mapping(Config, yaml.safe_load(to_yaml(cfg)))
    assert again == cfg


def test_reference_doc_lists_every_key() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for key, *_ in schema.describe(Config):
        assert f"`{key}`" in doc, f"docs/configuration.md misses {key} (regenerate: python -m dltune.docs)"


def test_check_prints_the_plan_of_this_config_without_training(tmp_path: Path, cli_here) -> None:
    from sklearn.datasets import load_digits

    from dltune.data import build_datasets
    from dltune.models import build_model

    overrides = [f"output.dir={tmp_path}", "model.width=24", "train.batch_size=100", "train.epochs=3", "optim.lr=0.01"]
    proc = cli_here("check", "configs/quickstart.yaml", *overrides)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "config OK"
    plan = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in lines[:-1])
    counts = re.search(r"([\d,]+) train / ([\d,]+) val samples", plan["dataset"])
    assert counts, plan["dataset"]
    train, val = (int(n.replace(",", "")) for n in counts.groups())
    assert train + val == len(load_digits().data) and val == round(0.2 * (train + val))
    cfg = load_config("configs/quickstart.yaml", overrides)
    model = build_model(cfg.model, build_datasets(cfg.data, 100, 0).spec)
    assert plan["model"].startswith(f"cnn ({sum(p.numel() for p in model.parameters()):,} parameters")  # the width-24 model, not the file's
    assert plan["training"] == f"3 epochs x {math.ceil(train / 100)} steps of batch 100 per process"
    assert "lr=0.01 " in plan["optimizer"] and plan["world size"] == "1"
    assert not (tmp_path / "quickstart").exists()


def test_cli_bad_input_is_one_line_exit_2(cli_here) -> None:
    proc = cli_here("check", "configs/quickstart.yaml", "optim.lr=abc")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["dltune: error: optim.lr: expected a number, got 'abc'"]
    missing = cli_here("train", "no/such/config.yaml")
    assert missing.returncode == 2
    assert "no/such/config.yaml" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1


def test_a_failure_ray_tune_passes_on_as_traceback_text_is_named_by_what_was_raised(capsys: pytest.CaptureFixture) -> None:
    """Ray Tune wraps an exception in a controller callback as TuneError(traceback text): the one
    error line names the exception at its end and where it was raised, not 'Traceback (most ...'."""
    import traceback

    from ray.tune import TuneError

    from dltune.command import run_guarded

    def body() -> int:
        try:
            open("/no/such/checkpoint_000001")  # noqa: SIM115 - raises
        except OSError:
            raise TuneError(traceback.format_exc()) from None
        return 0

    assert run_guarded(body, debug=False) == 1
    line = capsys.readouterr().err.strip()
    frame = next(i for i, text in enumerate(Path(__file__).read_text().splitlines(), 1) if 'open("/no/such/checkpoint_000001")' in text)
    assert line.startswith("dltune: failed: FileNotFoundError: [Errno 2] No such file or directory: '/no/such/checkpoint_000001' (")
    assert line.endswith(f"test_config.py:{frame}) (rerun with --debug for the traceback)"), line
