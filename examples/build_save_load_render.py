"""Build a generator from a config, save it, load it back and render an image (no checkpoint needed).

python examples/build_save_load_render.py --out out/example
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from epigraf_tools.models import Generator, GeneratorConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/example"))
    args = parser.parse_args()

    torch.manual_seed(0)
    config = GeneratorConfig(img_resolution=64, triplane_res=32, channel_base=2048, channel_max=64, num_ray_steps=24)
    G = Generator(config).eval()
    G.save_pretrained(args.out / "model")  # config.json + model.safetensors
    G = Generator.from_pretrained(args.out / "model")

    z = torch.from_numpy(np.random.RandomState(0).randn(1, G.z_dim)).float()  # seed 0, as the official scripts
    with torch.no_grad():
        ws = G.mapping(z, None, truncation_psi=0.7)
        out = G.render(ws, torch.tensor([[0.3, math.pi / 2, 0.0]]), generator=torch.Generator().manual_seed(0))
    image = (out["image"][0].clamp(-1, 1) * 127.5 + 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(image).save(args.out / "render.png")
    print(f"wrote {args.out / 'model'} and {args.out / 'render.png'} (an untrained model renders noise-like colour)")


if __name__ == "__main__":
    main()
