from __future__ import annotations

import pytest
import torch
from torch import nn

from dltune.config import ModelConfig, load_config
from dltune.data import DataSpec
from dltune.errors import ConfigError
from dltune.models import build_model

IMAGE = DataSpec(kind="image", task="multiclass", num_outputs=10, input_shape=(3, 32, 32))
TABULAR = DataSpec(kind="tabular", task="binary", num_outputs=2, num_dense=4, num_sparse=3, hash_buckets=50)


def _batch(spec: DataSpec) -> tuple[torch.Tensor, ...]:
    if spec.kind == "image":
        return (torch.randn(4, *spec.input_shape),)
    return torch.randn(4, spec.num_dense), torch.randint(0, spec.hash_buckets, (4, spec.num_sparse))


@pytest.mark.parametrize(("name", "spec"), [("mlp", IMAGE), ("cnn", IMAGE), ("resnet18", IMAGE), ("mlp", TABULAR), ("deepfm", TABULAR)])
def test_forward_backward(name: str, spec: DataSpec) -> None:
    model = build_model(ModelConfig(name=name, hidden=[16], width=8, dropout=0.1), spec)
    out = model(*_batch(spec))
    assert out.shape == (4, spec.num_outputs)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_resnet18_stems() -> None:
    cifar = build_model(ModelConfig(name="resnet18"), IMAGE)
    imagenet = build_model(ModelConfig(name="resnet18", cifar_stem=False), IMAGE)
    assert cifar.conv1.stride == (1, 1) and isinstance(cifar.maxpool, nn.Identity)
    assert imagenet.conv1.stride == (2, 2)


def tiny_factory(cfg: ModelConfig, spec: DataSpec) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(spec.input_shape).prod()), spec.num_outputs * cfg.kwargs.get("mult", 1)))


def test_user_factory_by_target() -> None:
    cfg = load_config(None, ["model.target=test_models:tiny_factory", "model.kwargs.mult=2"])
    model = build_model(cfg.model, IMAGE)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 20)


def test_bad_targets() -> None:
    with pytest.raises(ConfigError, match="cannot import module 'no_such_pkg'"):
        build_model(ModelConfig(target="no_such_pkg:f"), IMAGE)
    with pytest.raises(ConfigError, match="has no callable 'nope'"):
        build_model(ModelConfig(target="test_models:nope"), IMAGE)
    with pytest.raises(ConfigError, match="deepfm needs tabular data"):
        build_model(ModelConfig(name="deepfm"), IMAGE)


def test_example_custom_model_trains(tmp_path, monkeypatch) -> None:
    from conftest import ROOT, run_cli

    proc = run_cli("train", "configs/quickstart.yaml", "model.target=custom_model:build", "model.kwargs.channels=8", "train.epochs=2", f"output.dir={tmp_path}",
                   env={"PYTHONPATH": str(ROOT / "examples")})
    assert proc.returncode == 0, proc.stderr
    assert "custom_model:build" in proc.stdout
