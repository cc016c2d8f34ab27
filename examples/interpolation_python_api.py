"""Latent interpolation through the Python API: a looped z-slerp video and a w-lerp strip.

python examples/interpolation_python_api.py --model path/to/model_folder --resolution 128
"""

from __future__ import annotations

import argparse
from pathlib import Path

from epigraf_tools.camera import Camera
from epigraf_tools.checkpoints.loading import load_generator
from epigraf_tools.interpolation import num_frames, render_interpolation
from epigraf_tools.latents import Truncation
from epigraf_tools.rendering import RenderSettings
from epigraf_tools.trajectories import yaw_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="zoo name, model folder, .pkl or Hub id (default: embedded)")
    parser.add_argument("--out", type=Path, default=Path("out/example_interpolations"))
    parser.add_argument("--resolution", type=int, default=None)
    args = parser.parse_args()

    G = load_generator(args.model)
    settings = RenderSettings(resolution=args.resolution)
    psi = Truncation(0.7)

    # Seeds 0 -> 5 -> 9 -> back to 0 in z, 24 frames per transition, while the camera sweeps sideways.
    seeds, frames = [0, 5, 9], 24
    cams = yaw_sweep(num_frames(len(seeds), frames, loop=True), Camera.default(G.config), amplitude=0.35)
    files = render_interpolation(G, seeds, args.out, frames=frames, space="z", loop=True, cameras=cams,
                                 truncation=psi, settings=settings, trajectory="yaw_sweep")  # fmt: skip
    print("video:", files[0])

    # A strip: one row per transition, t = 0 .. 1 in 7 steps; the first and last columns are the seeds.
    files = render_interpolation(G, [1, 2, 3], args.out, frames=6, space="w", output="strip", truncation=psi,
                                 settings=settings)  # fmt: skip
    print("strip:", files[0])


if __name__ == "__main__":
    main()
