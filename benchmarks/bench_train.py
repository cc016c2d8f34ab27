"""Training throughput (kimg/s) on the CPU for the 'small' preset: patch-wise vs whole images.

Measures two ways in one run, on one synthetic dataset and the same networks:
  A. patch-wise training as EpiGRAF does it: 64^2 images, D sees 32^2 patches (rays for 32^2 pixels);
  B. the same model trained on whole 64^2 images (patch_res = resolution: 4x the rays per image).
Prints kimg/s of each (median over timed steps, after warm-up steps) and the ratio A / B.

    python benchmarks/bench_train.py [--steps 6] [--warmup 2] [--batch 16] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_dataset(folder: Path, n: int, size: int) -> Path:
    """Random-colour discs with frontal-ish poses (the content does not matter for speed)."""
    import json

    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    angles = {}
    for i in range(n):
        img = np.full((size, size, 3), 255, np.uint8)
        img[(xx - 0.5) ** 2 + (yy - 0.5) ** 2 < rng.uniform(0.05, 0.1)] = rng.randint(0, 255, 3)
        Image.fromarray(img).save(folder / f"{i:05d}.png")
        angles[f"{i:05d}.png"] = [float(rng.uniform(-0.5, 0.5)), float(np.pi / 2 + rng.uniform(-0.2, 0.2)), 0.0]
    (folder / "dataset.json").write_text(json.dumps({"camera_angles": angles}))
    return folder


def measure(cfg, steps: int, warmup: int) -> tuple[float, float]:
    from epigraf_tools.training.loop import Trainer

    trainer = Trainer(cfg)
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        trainer.train_step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    return cfg.batch / sec / 1000, sec


def rate(kimg_per_s: float) -> str:
    return f"{kimg_per_s:.4f} kimg/s, {kimg_per_s * 3600:.1f} kimg/h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")

    from epigraf_tools.training.config import TrainConfig, preset

    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp), 64, 64)
        base = {**preset("small"), "data": str(data), "out": str(Path(tmp) / "run"), "device": "cpu"}
        base.update(batch=args.batch, grid_size=0, d_reg_interval=16)
        patch = TrainConfig(**base)
        whole = TrainConfig(**{**base, "patch_res": 64})
        py = sys.version.split()[0]
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, python {py}")
        kimg_a, sec_a = measure(patch, args.steps, args.warmup)
        print(f"A patch-wise (64^2 images, 32^2 patches): {sec_a:.2f} s/step, {rate(kimg_a)}")
        kimg_b, sec_b = measure(whole, args.steps, args.warmup)
        print(f"B whole images (64^2):                   {sec_b:.2f} s/step, {rate(kimg_b)}")
        print(f"ratio A / B: {kimg_a / kimg_b:.2f}x")


if __name__ == "__main__":
    main()
