"""Every private Ray name dltune uses lives in dltune.ray_compat; an upgrade that changes one fails here."""
from __future__ import annotations

import os

import pytest

from dltune import ray_compat


def test_the_installed_ray_still_has_every_private_name_dltune_uses() -> None:
    assert ray_compat.missing() == [], "Ray changed names dltune.ray_compat relies on; see its docstring"


def test_the_gcs_port_variable_is_set_for_the_block_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ray_compat.GCS_PORT_VARIABLE, raising=False)
    with ray_compat.head_gcs_port(6390):
        assert os.environ[ray_compat.GCS_PORT_VARIABLE] == "6390"
    assert ray_compat.GCS_PORT_VARIABLE not in os.environ
    monkeypatch.setenv(ray_compat.GCS_PORT_VARIABLE, "7000")
    with ray_compat.head_gcs_port(6390):
        pass
    assert os.environ[ray_compat.GCS_PORT_VARIABLE] == "7000"
