"""Training data: a zip or folder of images with the official ``dataset.json`` side file.

Layout (the official one)::

    dataset.zip / folder
      00000/img00000000.png ...
      dataset.json   {"camera_angles": {"00000/img00000000.png": [yaw, pitch, roll], ...},
                      "labels": {"00000/img00000000.png": 3, ...}  (int class or float vector)}

Keys are matched on the relative path without its extension (as the official loader does).
Images are converted to RGB and resized (Lanczos) to the training resolution when they differ.
With ``xflip`` the dataset is doubled by mirrored copies whose yaw is negated.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from epigraf_tools.errors import EpigrafError

from .dataset_cameras import read_dataset_cameras

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DATASET_JSON = "dataset.json"
# Warn when the mean training pose is further than this (radians) from yaw 0, pitch pi/2.
CENTRE_TOLERANCE = 0.25


class DatasetError(EpigrafError):
    """A dataset that cannot be used for training (the message names the file and the fix)."""


def _strip_ext(name: str) -> str:
    return os.path.splitext(name.replace("\\", "/"))[0]


class _Source:
    """Uniform read access to a folder or a zip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.kind = "dir"
            self.names = sorted(
                os.path.relpath(os.path.join(root, f), path).replace("\\", "/")
                for root, _dirs, files in os.walk(path)
                for f in files
            )
        elif path.is_file() and path.suffix.lower() == ".zip":
            self.kind = "zip"
            try:
                self.names = sorted(n for n in self._zipfile().namelist() if not n.endswith("/"))
            except zipfile.BadZipFile as exc:
                raise DatasetError(f"{path} is not a valid zip file ({exc})") from None
        elif not path.exists():
            raise DatasetError(f"dataset {path} does not exist")
        else:
            raise DatasetError(f"dataset {path} must be a folder or a .zip file")

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip

    def read(self, name: str) -> bytes:
        if self.kind == "dir":
            return (self.path / name).read_bytes()
        return self._zipfile().read(name)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None}


def _open_image(data: bytes, name: str):
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        raise DatasetError(f"cannot decode image {name}: {exc}") from None
    return img


@dataclass
class PoseStats:
    """Summary of the dataset's camera angles (radians)."""

    count: int
    yaw_mean: float
    yaw_std: float
    yaw_min: float
    yaw_max: float
    pitch_mean: float
    pitch_std: float
    pitch_min: float
    pitch_max: float


class ImageDataset(torch.utils.data.Dataset):
    """Images (uint8 [3, R, R]) with labels (float32 [c_dim]) and camera angles (float32 [3]).

    ``require_poses``: every image needs an entry in ``camera_angles`` (set False when the generator
    draws poses from a distribution instead; missing poses then read as zeros). ``cache``: keep the
    decoded images in memory (default: when they take less than ``cache_limit_mb``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        resolution: int | None = None,
        xflip: bool = False,
        use_labels: bool = True,
        require_poses: bool = True,
        check_sizes: bool = True,
        cache: bool | None = None,
        cache_limit_mb: float = 1024.0,
    ) -> None:
        self.path = Path(path)
        self._src = _Source(self.path)
        self.image_names = [n for n in self._src.names if n.lower().endswith(IMAGE_EXTENSIONS)]
        if not self.image_names:
            raise DatasetError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {self.path}")
        self.raw_size = self._check_sizes() if check_sizes else self._image_size(self.image_names[0])
        self.resolution = resolution or self.raw_size
        if self.resolution < 4 or self.resolution & (self.resolution - 1):
            raise DatasetError(f"training resolution must be a power of two >= 4, got {self.resolution}")
        meta = self._read_meta()
        self.cameras = read_dataset_cameras(meta)  # the dataset's own camera settings (None: not given)
        self.camera_angles, self.has_poses = self._load_poses(meta, require_poses)
        self.labels = self._load_labels(meta) if use_labels else np.zeros([len(self.image_names), 0], np.float32)
        self.class_names = self._load_class_names(meta)
        self.xflip = xflip
        self._cache: dict[int, np.ndarray] = {}
        bytes_needed = len(self.image_names) * 3 * self.resolution**2
        self.cache_enabled = bytes_needed <= cache_limit_mb * 2**20 if cache is None else cache
        if self.has_poses:
            self.warn_if_not_centred()

    # ------------------------------------------------------------------ metadata
    def _image_size(self, name: str) -> int:
        img = _open_image(self._src.read(name), name)
        w, h = img.size
        if w != h:
            raise DatasetError(f"image {name} is {w}x{h}: training images must be square")
        return w

    def _check_sizes(self) -> int:
        from PIL import Image

        first = None
        for name in self.image_names:
            try:
                w, h = Image.open(io.BytesIO(self._src.read(name))).size
            except Exception as exc:  # noqa: BLE001
                raise DatasetError(f"cannot read image {name}: {exc}") from None
            if w != h:
                raise DatasetError(f"image {name} is {w}x{h}: training images must be square")
            if first is None:
                first = (name, w)
            elif w != first[1]:
                raise DatasetError(
                    f"image {name} is {w}x{w} but {first[0]} is {first[1]}x{first[1]}: all images must have one size"
                )
        return first[1]

    def _read_meta(self) -> dict:
        candidates = [n for n in self._src.names if n == DATASET_JSON or n.endswith("/" + DATASET_JSON)]
        if not candidates:
            return {}
        if len(candidates) > 1:
            raise DatasetError(f"{self.path} holds several {DATASET_JSON} files: {', '.join(candidates[:3])}")
        try:
            meta = json.loads(self._src.read(candidates[0]))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{candidates[0]} is not valid JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise DatasetError(f"{candidates[0]} must hold a JSON object with 'camera_angles' and/or 'labels'")
        root = os.path.dirname(candidates[0])
        self._meta_root = root + "/" if root else ""
        return meta

    def _field(self, meta: dict, key: str) -> dict[str, object] | None:
        values = meta.get(key)
        if values is None:
            return None
        if isinstance(values, list):  # [[name, value], ...] as written by StyleGAN's dataset_tool
            values = dict(values)
        if not isinstance(values, dict):
            raise DatasetError(f"{DATASET_JSON}: '{key}' must map file names to values")
        out = {_strip_ext(k): v for k, v in values.items()}
        if len(out) != len(values):
            raise DatasetError(f"{DATASET_JSON}: '{key}' has duplicate file names (ignoring extensions)")
        return out

    def _key(self, name: str) -> str:
        root = getattr(self, "_meta_root", "")
        rel = name[len(root) :] if root and name.startswith(root) else name
        return _strip_ext(rel)

    def _load_poses(self, meta: dict, require: bool) -> tuple[np.ndarray, bool]:
        field = self._field(meta, "camera_angles")
        n = len(self.image_names)
        if field is None:
            if require and (self.cameras is None or self.cameras.pose_distribution is None):
                raise DatasetError(
                    f"{self.path} has no camera poses: add {DATASET_JSON} with "
                    '{"camera_angles": {"file.png": [yaw, pitch, roll], ...}} or train with a camera distribution'
                )
            return np.zeros([n, 3], np.float32), False
        missing = [name for name in self.image_names if self._key(name) not in field]
        if missing:
            if require:
                raise DatasetError(
                    f"{len(missing)} of {n} images have no camera_angles entry in {DATASET_JSON} (first: {missing[0]})"
                )
        angles = np.zeros([n, 3], np.float32)
        for i, name in enumerate(self.image_names):
            value = field.get(self._key(name))
            if value is None:
                continue
            arr = np.asarray(value, dtype=np.float32).reshape(-1)
            if arr.size not in (2, 3):
                raise DatasetError(f"camera_angles for {name} must be [yaw, pitch, roll], got {value}")
            angles[i, : arr.size] = arr
        if not np.isfinite(angles).all():
            raise DatasetError(f"{DATASET_JSON}: camera_angles contain NaN or infinite values")
        return angles, True

    def _load_labels(self, meta: dict) -> np.ndarray:
        field = self._field(meta, "labels")
        n = len(self.image_names)
        if field is None:
            return np.zeros([n, 0], np.float32)
        missing = [name for name in self.image_names if self._key(name) not in field]
        if missing:
            raise DatasetError(f"{len(missing)} of {n} images have no label in {DATASET_JSON} (first: {missing[0]})")
        raw = np.array([field[self._key(name)] for name in self.image_names])
        if raw.ndim == 1:
            if not np.issubdtype(raw.dtype, np.integer) or raw.min() < 0:
                raise DatasetError(f"{DATASET_JSON}: class labels must be non-negative integers")
            onehot = np.zeros([n, int(raw.max()) + 1], np.float32)
            onehot[np.arange(n), raw] = 1
            return onehot
        if raw.ndim == 2:
            return raw.astype(np.float32)
        raise DatasetError(f"{DATASET_JSON}: labels must be integers or vectors of floats")

    def _load_class_names(self, meta: dict) -> list[str] | None:
        """Optional ``class_names`` list (one per one-hot class); kept only when it fits the labels."""
        names = meta.get("class_names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        return [str(n) for n in names] if len(names) == self.labels.shape[1] else None

    # ------------------------------------------------------------------ access
    @property
    def num_raw(self) -> int:
        return len(self.image_names)

    @property
    def c_dim(self) -> int:
        return int(self.labels.shape[1])

    def __len__(self) -> int:
        return self.num_raw * (2 if self.xflip else 1)

    def _raw_index(self, idx: int) -> tuple[int, bool]:
        if not 0 <= idx < len(self):
            raise IndexError(idx)
        return idx % self.num_raw, idx >= self.num_raw

    def load_image(self, raw_idx: int) -> np.ndarray:
        """Decoded image uint8 [3, R, R] at the training resolution."""
        if raw_idx in self._cache:
            return self._cache[raw_idx]
        from PIL import Image

        name = self.image_names[raw_idx]
        img = _open_image(self._src.read(name), name).convert("RGB")
        if img.size[0] != img.size[1]:
            raise DatasetError(f"image {name} is {img.size[0]}x{img.size[1]}: training images must be square")
        if img.size[0] != self.resolution:
            img = img.resize((self.resolution, self.resolution), Image.LANCZOS)
        arr = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()
        if self.cache_enabled:
            self._cache[raw_idx] = arr
        return arr

    def get_label(self, idx: int) -> np.ndarray:
        return self.labels[self._raw_index(idx)[0]].copy()

    def get_camera_angles(self, idx: int) -> np.ndarray:
        raw, flip = self._raw_index(idx)
        angles = self.camera_angles[raw].copy()
        if flip:
            angles[0] = -angles[0]
        return angles

    def __getitem__(self, idx: int) -> dict[str, np.ndarray]:
        raw, flip = self._raw_index(idx)
        image = self.load_image(raw)
        if flip:
            image = image[:, :, ::-1].copy()
        return {"image": image, "label": self.get_label(idx), "camera_angles": self.get_camera_angles(idx)}

    def batch(self, indices: list[int] | np.ndarray) -> dict[str, torch.Tensor]:
        """Stack items: image uint8 [B, 3, R, R], label [B, c_dim], camera_angles [B, 3]."""
        items = [self[int(i)] for i in indices]
        return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in ("image", "label", "camera_angles")}

    # ------------------------------------------------------------------ checks and statistics
    def pose_stats(self) -> PoseStats | None:
        if not self.has_poses:
            return None
        yaw, pitch = self.camera_angles[:, 0], self.camera_angles[:, 1]
        return PoseStats(
            count=len(yaw),
            yaw_mean=float(yaw.mean()),
            yaw_std=float(yaw.std()),
            yaw_min=float(yaw.min()),
            yaw_max=float(yaw.max()),
            pitch_mean=float(pitch.mean()),
            pitch_std=float(pitch.std()),
            pitch_min=float(pitch.min()),
            pitch_max=float(pitch.max()),
        )

    def centring_problem(self) -> str | None:
        """A sentence when the mean pose is far from the frontal one (yaw 0, pitch pi/2), else None."""
        stats = self.pose_stats()
        if stats is None:
            return None
        # Yaw is circular: when views go all around the object (short mean resultant vector) there is
        # no meaningful centre to check; otherwise the circular mean must be near 0.
        yaw = self.camera_angles[:, 0].astype(np.float64)
        resultant = np.hypot(np.cos(yaw).mean(), np.sin(yaw).mean())
        yaw_centre = float(np.arctan2(np.sin(yaw).mean(), np.cos(yaw).mean())) if resultant > 0.5 else 0.0
        if abs(yaw_centre) > CENTRE_TOLERANCE or abs(stats.pitch_mean - np.pi / 2) > CENTRE_TOLERANCE:
            return (
                f"camera poses are not zero-centred (mean yaw {stats.yaw_mean:.3f}, mean pitch {stats.pitch_mean:.3f}; "
                f"expected about 0 and {np.pi / 2:.3f}): EpiGRAF assumes yaw 0 / pitch pi/2 is the frontal view "
                "and the object sits at the origin"
            )
        return None

    def warn_if_not_centred(self) -> None:
        problem = self.centring_problem()
        if problem:
            warnings.warn(problem, stacklevel=2)


class InfiniteOrder:
    """A deterministic endless stream of dataset indices: a fresh permutation per epoch.

    Position ``n`` of the stream depends only on (seed, n), so a run resumed at image ``n`` sees
    exactly the data it would have seen, and every rank can slice the same global batch.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True) -> None:
        if size <= 0:
            raise DatasetError("the dataset is empty")
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self._epoch = -1
        self._perm = np.arange(size)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._perm = (
                np.random.RandomState([self.seed, epoch]).permutation(self.size)
                if self.shuffle
                else np.arange(self.size)
            )
        return self._perm

    def take(self, start: int, count: int) -> np.ndarray:
        """Indices at stream positions [start, start + count)."""
        out = np.empty(count, dtype=np.int64)
        for k in range(count):
            pos = start + k
            out[k] = self._permutation(pos // self.size)[pos % self.size]
        return out

    def __iter__(self) -> Iterator[int]:
        pos = 0
        while True:
            yield int(self.take(pos, 1)[0])
            pos += 1


def dataset_info(path: str | os.PathLike[str]) -> dict[str, object]:
    """Counts, image size, labels and camera-pose statistics of a dataset (checks every image header).

    Poses are optional here (a dataset without them can still train with a camera distribution).
    """
    ds = ImageDataset(path, require_poses=False, cache=False)
    stats = ds.pose_stats()
    info: dict[str, object] = {
        "path": str(ds.path),
        "kind": ds._src.kind,
        "num_images": ds.num_raw,
        "resolution": ds.raw_size,
        "has_poses": ds.has_poses,
        "c_dim": ds.c_dim,
    }
    if ds.c_dim > 0:
        counts = ds.labels.sum(axis=0)
        info["class_counts"] = [int(v) for v in counts] if np.all(ds.labels.sum(axis=1) == 1) else None
    if stats is not None:
        info["poses"] = dataclasses.asdict(stats)
        info["pose_warning"] = ds.centring_problem()
    return info
