"""Small on-disk datasets and a tiny training configuration for the training tests (import as
``training_support``: pytest puts this folder on sys.path)."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np

from epigraf_tools.training.config import TrainConfig


def make_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Coloured discs on a gradient background, uint8 [size, size, 3]."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    out = []
    for _ in range(n):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        color = rng.uniform(0, 255, 3)
        img = np.stack([xx * 255, yy * 255, np.full_like(xx, 128)], axis=-1)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = color
        out.append(img.astype(np.uint8))
    return out


def png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def write_dataset(
    path: Path,
    n: int = 8,
    size: int = 32,
    poses: bool = True,
    labels: int = 0,
    drop_pose: int | None = None,
    sizes: dict[int, int] | None = None,
) -> Path:
    """A zip (path ends in .zip) or folder in the official layout."""
    images = make_images(n, size)
    names = [f"00000/img{i:08d}.png" for i in range(n)]
    meta: dict = {}
    if poses:
        angles = {
            name: [0.3 * math.sin(i), math.pi / 2 + 0.1 * math.cos(i), 0.0]
            for i, name in enumerate(names)
            if i != drop_pose
        }
        meta["camera_angles"] = angles
    if labels:
        meta["labels"] = {name: i % labels for i, name in enumerate(names)}
    files = {}
    for i, (name, img) in enumerate(zip(names, images, strict=True)):
        if sizes and i in sizes:
            from PIL import Image

            img = np.asarray(Image.fromarray(img).resize((sizes[i], sizes[i])))
        files[name] = png_bytes(img)
    files["dataset.json"] = json.dumps(meta).encode()
    if str(path).endswith(".zip"):
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        for name, data in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)
    return path


def tiny_train_config(data: Path, out: Path, **overrides) -> TrainConfig:
    """A configuration that trains a step in well under a second on 2 CPU cores."""
    base = dict(
        data=str(data),
        out=str(out),
        resolution=32,
        patch_res=16,
        batch=4,
        kimg=0.008,
        tick_kimg=0.004,
        snapshot_kimg=0.008,
        image_kimg=0,
        grid_size=0,
        z_dim=32,
        w_dim=32,
        triplane_res=16,
        feat_dim=8,
        g_channel_base=256,
        g_channel_max=32,
        mlp_hid_dim=16,
        num_ray_steps=6,
        d_channel_base=256,
        d_channel_max=32,
        gamma=1.0,
        d_reg_interval=2,
        blur_fade_kimg=0.1,
        blur_init_sigma=2.0,
        device="cpu",
    )
    base.update(overrides)
    return TrainConfig(**base)
