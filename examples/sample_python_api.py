"""Images, depth and normal maps for seeds through the Python API (what `epigraf sample` does).

python examples/sample_python_api.py                       # the default model
python examples/sample_python_api.py --model path/to/model_folder --resolution 128
"""

from __future__ import annotations

import argparse
from pathlib import Path

from epigraf_tools.camera import Camera
from epigraf_tools.checkpoints.loading import load_generator
from epigraf_tools.images import make_grid, normals_to_uint8, save_png
from epigraf_tools.latents import Truncation
from epigraf_tools.rendering import RenderSettings
from epigraf_tools.sampling import generate_samples, save_samples
from epigraf_tools.trajectories import points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="zoo name, model folder, .pkl or Hub id (default: embedded)")
    parser.add_argument("--out", type=Path, default=Path("out/example_samples"))
    parser.add_argument("--resolution", type=int, default=None)
    args = parser.parse_args()

    G = load_generator(args.model)
    settings = RenderSettings(resolution=args.resolution)
    psi = Truncation(psi=0.7)  # the official scripts' setting

    # 1. Files exactly as `epigraf sample --seeds 0-3 --truncation 0.7 --grid --depth --normals` writes them.
    files = save_samples(
        G, [0, 1, 2, 3], args.out, truncation=psi, settings=settings, grid=True, depth=True, normals=True
    )
    print(f"wrote {len(files)} files to {args.out}")

    # 2. In memory: one seed from the three official 'points' views, from a camera 20 degrees to the side.
    base = Camera.default(G.config)
    side = Camera.from_degrees(yaw=20, pitch=85, radius=base.radius, fov=base.fov)
    cams = points(base=base) + [side]
    samples = list(generate_samples(G, [42], cams, truncation=psi, settings=settings, normals=True))
    row = [s.image for s in samples] + [normals_to_uint8(s.normals) for s in samples]
    save_png(args.out / "seed42_views_and_normals.png", make_grid(row, columns=len(cams)))
    s = samples[-1]
    hit = s.alpha > 0.5
    depth = float(s.depth[hit].mean()) if hit.any() else float("nan")
    print(f"seed 42 from {side}: {hit.mean():.0%} of pixels hit the object, mean depth {depth:.3f}")
    print("EG3D label of that camera:", side.to_eg3d(resolution=s.image.shape[0]).round(4).tolist())


if __name__ == "__main__":
    main()
