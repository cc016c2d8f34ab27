"""Train a small EpiGRAF on a dataset this script makes itself, then render the result.

    python examples/train_small.py                       # ~2 minutes on 2 CPU cores
    python examples/train_small.py --kimg 50 --out runs/shapes --resolution 64   # a longer run

Steps: (1) render a procedural multi-view dataset of coloured shapes with exact cameras
(``epigraf_tools.training.synthetic``), (2) train with ``epigraf_tools.training.train`` using the
'small' preset and the dataset's camera settings, (3) load the last snapshot as an ordinary model
folder and render a few views. Everything lands in --out (dataset, run folder, renders).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from epigraf_tools.models import Generator
from epigraf_tools.training.config import TrainConfig, preset
from epigraf_tools.training.loop import train
from epigraf_tools.training.synthetic import SynthConfig, make_synthetic_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/example_small", help="output folder")
    parser.add_argument("--images", type=int, default=100, help="dataset size")
    parser.add_argument("--resolution", type=int, default=32, help="image resolution (power of two)")
    parser.add_argument("--kimg", type=float, default=0.2, help="training length in thousands of images")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. The dataset: one shape per image, views all around, white background.
    synth = SynthConfig(num_images=args.images, resolution=args.resolution, seed=0)
    data = out / "shapes.zip"
    if not data.exists():
        print(f"Rendering {args.images} images into {data} ...")
        make_synthetic_dataset(data, synth)

    # 2. Train: the 'small' preset, patches of half the image size, the dataset's cameras.
    cfg = TrainConfig(
        **{
            **preset("small"),
            "data": str(data),
            "out": str(out / "run"),
            "resolution": args.resolution,
            "patch_res": args.resolution // 2,
            "batch": 8,
            "kimg": args.kimg,
            "tick_kimg": 0.04,
            "snapshot_kimg": 0.1,
            "image_kimg": 0.1,
            "grid_size": 9,
            "use_labels": False,
            "fov": synth.fov,
            "ray_start": synth.ray_start,
            "ray_end": synth.ray_end,
            "cube_scale": synth.cube_scale,
            "white_back": True,
            "blur_fade_kimg": 0.2,
            "device": args.device,
        }
    )

    def on_tick(rec: dict) -> None:
        print(
            f"kimg {rec['kimg']:7.3f}  G {rec.get('Loss/G/loss', float('nan')):.3f}  "
            f"D {rec.get('Loss/D/loss', float('nan')):.3f}  sec/kimg {rec['sec_per_kimg']:.0f}"
        )

    # Continue an earlier run in the same folder if there is one.
    resume = "latest" if any((out / "run").glob("snapshot-*")) else None
    result = train(cfg, resume=resume, on_tick=on_tick, log=print)
    print(f"Trained to {result.cur_nimg / 1000:.3f} kimg; snapshot: {result.last_snapshot}")

    # 3. The snapshot is an ordinary model folder: load and render four views of one latent.
    G = Generator.from_pretrained(result.last_snapshot)
    z = torch.from_numpy(np.random.RandomState(0).randn(1, G.z_dim)).float()
    with torch.no_grad():
        ws = G.mapping(z, None)
        views = []
        for yaw in (-1.2, -0.4, 0.4, 1.2):
            angles = torch.tensor([[yaw, np.pi / 2 - 0.2, 0.0]])
            img = G.render(ws, angles, generator=torch.Generator().manual_seed(0))["image"][0]
            views.append(((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())
    Image.fromarray(np.concatenate(views, axis=1)).save(out / "views.png")
    print(f"Wrote {out / 'views.png'} and preview grids in {out / 'run' / 'samples'}")


if __name__ == "__main__":
    main()
