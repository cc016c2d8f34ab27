"""Resolve a model spec to a ready Generator.

Spec forms, tried in this order: a builtin zoo name, a local folder (config.json +
model.safetensors), a local official ``.pkl``, or a Hub repo id with an optional ``@revision``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import EpigrafError, ModelNotFoundError
from .models import CONFIG_NAME, WEIGHTS_NAME, Generator


def load_generator(spec: str | Path | None = None, device: str | torch.device = "cpu") -> Generator:
    """Load a generator in eval mode on ``device`` from any supported spec (None: the default model)."""
    folder = resolve_model_dir(spec)
    try:
        return Generator.from_pretrained(folder, map_location=device)
    except (ValueError, RuntimeError, OSError) as exc:
        raise EpigrafError(f"could not load the model in {folder}: {exc}") from exc


def resolve_model_dir(spec: str | Path | None) -> Path:
    """Return a local folder holding config.json + model.safetensors for ``spec``."""
    if spec is None:
        raise ModelNotFoundError("no --model given and no default model is available")
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise ModelNotFoundError(f"{path} is not a model folder: it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
        return path
    raise ModelNotFoundError(
        f"model {str(spec)!r} not found: expected a zoo name, a model folder, an official .pkl or a Hub repo id"
    )
