"""Show how a model with a background network splits each image into foreground and background.

One row per seed: the composite, the foreground layer alone (the tri-plane; mid-grey where it is
empty, as EpiGRAF renders an empty ray without white_back), the background network's layer alone,
and the foreground's alpha (white = opaque). It also prints the mean alpha in the image's corners and
in its centre, the numbers docs/training.md quotes. What `epigraf sample --layer all|fg|bg --alpha`
writes, as one picture.

python examples/background_layers.py --model runs/sky-bg/snapshot-000012000 --seeds 0-5 --out layers.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from epigraf_tools.camera import Camera
from epigraf_tools.checkpoints.loading import load_generator
from epigraf_tools.images import alpha_to_uint8, make_grid, save_png, to_uint8
from epigraf_tools.latents import Truncation, ws_from_seeds
from epigraf_tools.rendering import LAYERS, RenderSettings, render_views
from epigraf_tools.sampling import background_ws, planes_for
from epigraf_tools.seeds import parse_seeds


def layer_rows(G, seeds: list[int], camera: Camera, resolution: int | None, psi: float) -> list[np.ndarray]:
    """For each seed: [composite, fg, bg, alpha] as uint8 [H, W, 3] images (alpha grey)."""
    ws, _ = ws_from_seeds(G, seeds, Truncation(psi))
    planes = planes_for(G, ws)
    bg_ws = background_ws(G, ws)
    outs = {
        layer: render_views(G, planes, [camera], RenderSettings(resolution, layer=layer), seeds, bg_ws=bg_ws)
        for layer in LAYERS
    }
    rows = []
    for i in range(len(seeds)):
        alpha = alpha_to_uint8(outs["all"]["alpha"][i, 0, 0].cpu().numpy())
        rows += [to_uint8(outs[layer]["image"][i, 0]) for layer in LAYERS]
        rows.append(np.repeat(alpha[..., None], 3, axis=-1))
    return rows


def corner_and_centre_alpha(G, seeds: list[int], camera: Camera, resolution: int | None) -> tuple[float, float]:
    """Mean foreground alpha in the four corner eighths-by-eighths and in the central quarter of the image."""
    ws, _ = ws_from_seeds(G, seeds, Truncation(1.0))
    out = render_views(G, planes_for(G, ws), [camera], RenderSettings(resolution), seeds, bg_ws=background_ws(G, ws))
    alpha = out["alpha"][:, 0, 0]
    n = alpha.shape[-1]
    k = max(1, n // 8)
    corners = torch.cat([alpha[:, :k, :k], alpha[:, :k, -k:], alpha[:, -k:, :k], alpha[:, -k:, -k:]], dim=1)
    centre = alpha[:, n // 2 - n // 8 : n // 2 + n // 8, n // 2 - n // 8 : n // 2 + n // 8]
    return float(corners.mean()), float(centre.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model with bg_model 'sphere' (e.g. a training snapshot)")
    parser.add_argument("--seeds", default="0-5")
    parser.add_argument("--yaw", type=float, default=0.0, help="camera yaw in radians")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--truncation", type=float, default=0.7)
    parser.add_argument("--scale", type=int, default=2, help="nearest-neighbour upscaling of the picture")
    parser.add_argument("--out", type=Path, default=Path("out/background_layers.png"))
    args = parser.parse_args()

    G = load_generator(args.model)
    seeds = parse_seeds(args.seeds)
    base = Camera.default(G.config)
    camera = Camera(yaw=args.yaw, pitch=base.pitch, radius=base.radius, fov=base.fov)
    grid = make_grid(layer_rows(G, seeds, camera, args.resolution, args.truncation), columns=4, pad=1, fill=255)
    grid = grid.repeat(args.scale, axis=0).repeat(args.scale, axis=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_png(args.out, grid)
    corners, centre = corner_and_centre_alpha(G, list(range(64)), camera, args.resolution)
    print(f"wrote {args.out}: columns composite | foreground | background | alpha")
    print(f"mean foreground alpha over seeds 0-63 (psi 1): corners {corners:.3f}, centre {centre:.3f}")


if __name__ == "__main__":
    main()
