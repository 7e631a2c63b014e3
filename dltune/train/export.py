"""Model export: state_dict always, TorchScript where the model allows."""
from __future__ import annotations

import io
import warnings
from typing import Any

import torch
from torch import nn

from dltune import storage

STATE_FILE = "model_state.pt"
SCRIPTED_FILE = "model_scripted.pt"


def torchscript(model: nn.Module, example: tuple[torch.Tensor, ...]) -> tuple[Any, str]:
    """Script the model, or trace it on a real batch; (None, reason) when neither works."""
    errors = []
    for how in ("script", "trace"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TorchScript's deprecation notice
                if how == "script":
                    return torch.jit.script(model), ""
                return torch.jit.trace(model, example, check_trace=False), ""
        except Exception as exc:  # noqa: BLE001 - any scripting failure just means no TorchScript export
            errors.append(f"{how}: {storage.first_line(str(exc))[:200]}")
    return None, "; ".join(errors)


def export_state_dict(state: dict[str, Any], directory: str, prefix: str = "") -> dict[str, str]:
    """Write ``directory``/model_state.pt; returns what was written, by name."""
    buf = io.BytesIO()
    torch.save(state, buf)
    storage.write_bytes(storage.join(directory, STATE_FILE), buf.getvalue())
    return {"state_dict": prefix + STATE_FILE}


def export_model(model: nn.Module, example: tuple[torch.Tensor, ...], directory: str, with_torchscript: bool, prefix: str = "") -> dict[str, str]:
    """Write ``directory``/model_state.pt (and model_scripted.pt); returns what was written, by name."""
    model = model.cpu().eval()
    exported = export_state_dict(model.state_dict(), directory, prefix)
    if with_torchscript:
        scripted, why = torchscript(model, tuple(t.cpu() for t in example))
        if scripted is not None:
            buf = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.jit.save(scripted, buf)
            storage.write_bytes(storage.join(directory, SCRIPTED_FILE), buf.getvalue())
            exported["torchscript"] = prefix + SCRIPTED_FILE
        else:
            exported["torchscript_skipped"] = why
    return exported
