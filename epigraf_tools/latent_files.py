"""Latent files (``.npz``): a w or w+ found by ``epigraf invert``, and rendering it instead of seeds.

File layout (plain arrays only, read with ``np.load(allow_pickle=False)``)::

    ws            float32 [num_ws, w_dim]   the latent (in W every row is the same w)
    space         str                       "w" or "w+"
    camera        float64 [7]               yaw, pitch (radians), radius, fov (degrees), look_at x, y, z
    eg3d_label    float64 [25]              the same camera as EG3D's label, at the model's resolution
    loss_curve    float32 [steps]           latent optimisation loss per step
    pti_curve     float32 [pti_steps]       pivotal tuning loss per step (empty without PTI)
    metadata      str                       JSON: model, tuned_model folder, image, options, psnr, ...

The rendering pipelines (sample, video, interpolation, volumes, meshes) draw their ws from seeds
through ``G.mapping``. ``pin_latent`` swaps that mapping for one that returns the stored latent for
every z, so each pipeline renders the file's latent unchanged, with its truncation still applied
towards ``w_avg`` and the seed still picking the ray noise.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .atomic import write_bytes_atomic
from .camera import Camera, CameraError
from .errors import EpigrafError
from .models import Generator
from .models.mapping import truncate_ws

LATENT_KEYS = ("ws", "space", "camera", "eg3d_label", "loss_curve", "pti_curve", "metadata")
MAX_LATENT_BYTES = 64 * 2**20  # a w+ of the largest models is well under 1 MiB


class LatentFileError(EpigrafError):
    """A latent .npz that is missing, malformed, or does not fit the model."""


@dataclass(frozen=True)
class StoredLatent:
    """A latent read from a file: ws [num_ws, w_dim] float32, its space, camera and metadata."""

    ws: np.ndarray
    space: str
    camera: Camera
    metadata: dict[str, Any]
    path: Path | None = None

    @property
    def tuned_model(self) -> str | None:
        """The folder of the generator tuned for this latent (PTI), as recorded; None without PTI."""
        value = self.metadata.get("tuned_model")
        return value if isinstance(value, str) and value else None

    def check_model(self, G: Generator) -> StoredLatent:
        """Refuse a latent whose shape does not match the model's num_ws x w_dim."""
        want = (G.num_ws, G.config.w_dim)
        if tuple(self.ws.shape) != want:
            name = self.path.name if self.path is not None else "the latent"
            raise LatentFileError(
                f"{name} holds ws of shape {list(self.ws.shape)}, but this model needs {list(want)} "
                f"(num_ws x w_dim): it was made for another model ({self.metadata.get('model', 'unknown')})"
            )
        return self


def save_latent(
    path: str | Path,
    ws: torch.Tensor | np.ndarray,
    space: str,
    camera: Camera,
    resolution: int,
    loss_curve: list[float],
    pti_curve: list[float],
    metadata: dict[str, Any],
) -> Path:
    """Write a latent file atomically; ws [1, num_ws, w_dim] or [num_ws, w_dim]."""
    array = ws.detach().float().cpu().numpy() if isinstance(ws, torch.Tensor) else np.asarray(ws, np.float32)
    array = array.reshape(array.shape[-2:]).astype(np.float32)
    arrays = {
        "ws": array,
        "space": np.array(space),
        "camera": np.array([camera.yaw, camera.pitch, camera.radius, camera.fov, *camera.look_at], np.float64),
        "eg3d_label": camera.to_eg3d(resolution).astype(np.float64),
        "loss_curve": np.asarray(loss_curve, np.float32),
        "pti_curve": np.asarray(pti_curve, np.float32),
        "metadata": np.array(json.dumps(metadata, sort_keys=True)),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes_atomic(path, buffer.getvalue())


def load_latent(path: str | Path, G: Generator | None = None) -> StoredLatent:
    """Read and strictly check a latent file (no pickles; finite float ws; known keys); with ``G``,
    also that its shape fits the model. Raises LatentFileError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise LatentFileError(f"latent file {path} does not exist")
    if path.stat().st_size > MAX_LATENT_BYTES:
        raise LatentFileError(f"latent file {path.name} is {path.stat().st_size:,} bytes: too large for a latent")
    if not zipfile.is_zipfile(path):
        raise LatentFileError(f"{path.name} is not a .npz file (a zip of arrays written by epigraf invert)")
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise LatentFileError(f"{path.name} is a single .npy array, not a latent .npz from epigraf invert")
            arrays = {k: data[k] for k in data.files}
    except LatentFileError:
        raise
    except ValueError as exc:  # object arrays need pickles: refused
        raise LatentFileError(f"{path.name} cannot be read without pickles ({exc}); latents are plain arrays") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise LatentFileError(f"{path.name} is not a readable .npz file: {exc}") from None
    latent = _parse(arrays, path)
    return latent.check_model(G) if G is not None else latent


def _parse(arrays: dict[str, np.ndarray], path: Path) -> StoredLatent:
    name = path.name
    if "ws" not in arrays:
        raise LatentFileError(f"{name} has no 'ws' array (keys: {', '.join(sorted(arrays)) or 'none'})")
    ws = arrays["ws"]
    if ws.dtype.kind != "f" or ws.ndim != 2 or 0 in ws.shape:
        raise LatentFileError(f"{name}: 'ws' must be a float array [num_ws, w_dim], got {ws.dtype} {list(ws.shape)}")
    if not np.isfinite(ws).all():
        raise LatentFileError(f"{name}: 'ws' contains NaN or infinite values")
    space = str(arrays["space"]) if "space" in arrays and arrays["space"].dtype.kind == "U" else "w+"
    if space not in ("w", "w+"):
        raise LatentFileError(f"{name}: 'space' must be 'w' or 'w+', got {space!r}")
    metadata: dict[str, Any] = {}
    if "metadata" in arrays:
        if arrays["metadata"].dtype.kind != "U" or arrays["metadata"].ndim != 0:
            raise LatentFileError(f"{name}: 'metadata' must be one JSON string")
        try:
            metadata = json.loads(str(arrays["metadata"]))
        except json.JSONDecodeError as exc:
            raise LatentFileError(f"{name}: 'metadata' is not valid JSON ({exc.msg})") from None
        if not isinstance(metadata, dict):
            raise LatentFileError(f"{name}: 'metadata' must be a JSON object")
    return StoredLatent(ws.astype(np.float32), space, _camera(arrays.get("camera"), name), metadata, path)


def _camera(values: np.ndarray | None, name: str) -> Camera:
    if values is None:
        return Camera()
    vec = np.asarray(values)
    if vec.dtype.kind != "f" or vec.shape != (7,) or not all(math.isfinite(float(v)) for v in vec):
        raise LatentFileError(f"{name}: 'camera' must be 7 finite numbers (yaw, pitch, radius, fov, look_at)")
    try:
        return Camera(float(vec[0]), float(vec[1]), float(vec[2]), float(vec[3]), tuple(float(v) for v in vec[4:]))
    except CameraError as exc:
        raise LatentFileError(f"{name}: 'camera' is not a valid camera: {exc}") from None


class PinnedMapping(nn.Module):
    """A mapping network that returns one stored latent for every z: [B, num_ws, w_dim].

    Truncation still works (towards the original ``w_avg``), so ``--truncation 0.7`` on a stored latent
    means what it means for a seed. Keeps ``w_avg`` and the sizes other code reads from a mapping.
    """

    def __init__(self, original: nn.Module, ws: torch.Tensor) -> None:
        super().__init__()
        self.original = original
        self.register_buffer("pinned", ws.reshape(1, *ws.shape[-2:]).to(original.w_avg.device, torch.float32))
        self.z_dim, self.c_dim, self.w_dim = original.z_dim, original.c_dim, original.w_dim
        self.num_ws = original.num_ws

    @property
    def w_avg(self) -> torch.Tensor:
        return self.original.w_avg

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        camera_angles: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        batch = z.shape[0] if z is not None else (c.shape[0] if c is not None else 1)
        ws = self.pinned.expand(batch, -1, -1)
        return truncate_ws(ws, self.original.w_avg, truncation_psi, truncation_cutoff)


def pin_latent(G: Generator, latent: StoredLatent) -> Generator:
    """Make ``G`` render ``latent`` for every seed (in place; returns G). The shape is checked first."""
    latent.check_model(G)
    if G.config.c_dim > 0:
        raise LatentFileError("latent files are supported for unconditional models only (this one has classes)")
    current = G.mapping.original if isinstance(G.mapping, PinnedMapping) else G.mapping
    G.mapping = PinnedMapping(current, torch.from_numpy(latent.ws))
    return G


def latent_label(model_label: str, latent: StoredLatent) -> str:
    """How outputs name their source: the model plus the latent file."""
    return f"{model_label} + latent {latent.path.name if latent.path is not None else '(in memory)'}"
