"""Preview grids written during training: the same latents and poses every time, so the PNGs of a
run (RUN_DIR/samples/fakes-<nimg>.png) show one set of faces or objects evolving.

Pixels, tiling and PNG writing are the toolkit's (``epigraf_tools.images``, a base module that
imports nothing from the toolkit but ``atomic``), so a preview is encoded like every sample.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from epigraf_tools.images import make_grid, save_png, to_uint8
from epigraf_tools.seeds import z_from_seeds

from .config import TrainConfig
from .data import ImageDataset

RENDER_BATCH = 4


def preview_grid(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one [rows * H, cols * W, 3] picture, cols = ceil(sqrt(N)) as previews always had."""
    return make_grid(list(images), columns=math.ceil(math.sqrt(len(images))))


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
        images = np.stack([self.dataset[int(i)]["image"] for i in self.indices])  # uint8 [N, 3, H, W]
        save_png(path, preview_grid(images.transpose(0, 2, 3, 1)))

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
        save_png(path, preview_grid(to_uint8(self.render())))
