"""Preview grids written during training: the same latents and poses every time, so the PNGs of a
run (RUN_DIR/samples/fakes-<nimg>.png) show one set of faces or objects evolving."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from epigraf_tools.atomic import atomic_path
from epigraf_tools.seeds import z_from_seeds

from .config import TrainConfig
from .data import ImageDataset

RENDER_BATCH = 4


def image_grid(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 3, H, W] -> [rows * H, cols * W, 3] with cols = ceil(sqrt(N))."""
    n, c, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros([rows * h, cols * w, c], dtype=np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[r * h : (r + 1) * h, k * w : (k + 1) * w] = images[i].transpose(1, 2, 0)
    return grid


def save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] float [N, 3, H, W] -> uint8 (rounded)."""
    return (images.clamp(-1, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()


class PreviewGrid:
    """Fixed seeds (``grid_seed`` ...), fixed dataset items for labels and poses."""

    def __init__(self, dataset: ImageDataset, G_ema: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> None:
        self.dataset = dataset
        self.G_ema = G_ema
        self.device = device
        n = cfg.grid_size
        rng = np.random.RandomState(123)
        self.indices = rng.choice(len(dataset), size=n, replace=len(dataset) < n)
        self.z = z_from_seeds(list(range(cfg.grid_seed, cfg.grid_seed + n)), G_ema.z_dim)
        self.c = torch.from_numpy(np.stack([dataset.get_label(i) for i in self.indices])).float()
        if cfg.camera_dist == "custom" and dataset.has_poses:
            self.angles = torch.from_numpy(np.stack([dataset.get_camera_angles(i) for i in self.indices])).float()
        else:
            self.angles = torch.tensor([cfg.camera_distribution().mean_pose] * n, dtype=torch.float32)

    def save_reals(self, path: Path) -> None:
        images = np.stack([self.dataset[int(i)]["image"] for i in self.indices])
        save_png(image_grid(images), path)

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        G = self.G_ema
        out = []
        gen = torch.Generator(device=self.device).manual_seed(0)
        for i in range(0, len(self.z), RENDER_BATCH):
            z = self.z[i : i + RENDER_BATCH].to(self.device)
            c = self.c[i : i + RENDER_BATCH].to(self.device) if G.c_dim > 0 else None
            angles = self.angles[i : i + RENDER_BATCH].to(self.device)
            ws = G.mapping(z, c, camera_angles=angles if G.config.camera_cond else None)
            out.append(G.render(ws, angles, noise_mode="const", generator=gen)["image"].cpu())
        return torch.cat(out)

    def save_fakes(self, path: Path) -> None:
        save_png(image_grid(to_uint8(self.render())), path)
