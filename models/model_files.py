"""A model folder's two files: ``config.json`` and ``model.safetensors``, checked before use.

The config is parsed within a size limit and validated field by field; the safetensors header is
compared with the architecture's state dict (keys, shapes, dtypes) before any tensor is read, and
loaded weights must be finite. Errors are ``ConfigError`` / ``ModelFileError`` (ValueErrors naming the
file and field), which the toolkit turns into one-line user errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from .config import ConfigError, GeneratorConfig
from .initial_weights import weights_from_file

CONFIG_NAME = "config.json"
MODEL_FAMILY_KEY = "model_family"  # absent (EpiGRAF, the first family) or e.g. "eg3d"
WEIGHTS_NAME = "model.safetensors"
M = TypeVar("M", bound=torch.nn.Module)


class ModelFileError(ValueError):
    """A model folder's files are unreadable or do not match the architecture; the message names the file."""


_SAFETENSORS_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
MAX_CONFIG_BYTES = 1 << 20  # config.json is ~2 KB; a larger file is not a config


def read_config_json(path: Path) -> Any:
    """Parse ``config.json`` within MAX_CONFIG_BYTES into a dict; ModelFileError names the file.

    Shared by every model family: the family's own ``from_dict`` validates the fields.
    """
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ModelFileError(f"{path.name} is {size:,} bytes; a generator config is at most {MAX_CONFIG_BYTES:,}")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path.name} is not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        if isinstance(exc, ModelFileError):
            raise
        raise ModelFileError(f"{path.name} is not a usable JSON config ({str(exc).splitlines()[0][:120]})") from None
    return data


def read_config_file(path: Path) -> GeneratorConfig:
    """Parse and validate an EpiGRAF ``config.json``; ConfigError/ModelFileError name the file and the field."""
    data = read_config_json(path)
    try:
        return GeneratorConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None


def load_weights_file(path: Path, model: torch.nn.Module, assign: bool = False) -> None:
    """Header check against ``model``'s state dict, read, refuse NaN/inf, then a strict load into ``model``.

    ``assign``: the file's tensors replace the model's own instead of being copied into them (for a
    model built on the meta device, see ``build_with_weights``).
    """
    from safetensors.torch import load_file

    check_weights_file(path, model.state_dict())
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # the header was fine but the data could not be read
        raise ModelFileError(f"{path.name} could not be read ({str(exc).splitlines()[0][:160]})") from None
    check_finite(state, path.name)
    model.load_state_dict(state, strict=True, assign=assign)


def build_with_weights(build: Callable[[], M], path: Path) -> M:
    """``build()`` a model and load the weights file ``path`` into it (checked as ``load_weights_file``).

    The initial weights are not drawn (``initial_weights.weights_from_file``): the strict load replaces
    every one of them, and the file's tensors are assigned rather than copied.
    """
    with weights_from_file():
        model = build()
    load_weights_file(path, model, assign=True)
    return model


def check_weights_file(path: Path, expected: dict[str, torch.Tensor]) -> None:
    """Compare a safetensors header with the model's state dict before reading any tensor data.

    ``safe_open`` parses only the header (and checks that its offsets exactly cover the file, so a
    truncated file or a header that lies about the data fails here); a declared shape is compared with
    the architecture before anything of that size is allocated.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            keys = set(fh.keys())
            missing, unexpected = sorted(set(expected) - keys), sorted(keys - set(expected))
            if missing or unexpected:
                parts = [f"missing {', '.join(missing[:3])}" if missing else "", ""]
                if unexpected:
                    parts[1] = f"unexpected {', '.join(unexpected[:3])}"
                detail = "; ".join(p for p in parts if p)
                raise ModelFileError(f"{path.name} does not match the config's architecture: {detail}")
            for name, want in expected.items():
                view = fh.get_slice(name)
                shape, dtype = tuple(view.get_shape()), view.get_dtype()
                if shape != tuple(want.shape):
                    raise ModelFileError(
                        f"{path.name}: tensor {name} has shape {list(shape)}, the config needs {list(want.shape)}"
                    )
                if dtype != _SAFETENSORS_DTYPES.get(want.dtype):
                    raise ModelFileError(
                        f"{path.name}: tensor {name} has dtype {dtype}, expected {_SAFETENSORS_DTYPES.get(want.dtype)}"
                    )
    except ModelFileError:
        raise
    except Exception as exc:  # SafetensorError (a Rust exception), OSError, ...
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ModelFileError(f"{path.name} is not a valid safetensors file ({reason})") from None


def check_finite(state: dict[str, torch.Tensor], label: str) -> None:
    """Refuse NaN or infinite weights (they render an all-black picture without any error)."""
    for name, tensor in state.items():
        if not tensor.is_floating_point() or tensor.dtype == torch.float64:
            finite = not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())
        else:  # a float64 sum of float32/16 values cannot overflow, and NaN/inf propagate: exact, 10x cheaper
            finite = math.isfinite(float(tensor.sum(dtype=torch.float64)))
        if not finite:
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelFileError(f"{label}: tensor {name} has {bad} NaN or infinite values; the weights are corrupt")
