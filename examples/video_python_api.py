"""Multi-view videos through the Python API: an official trajectory, an orbit and a keyframed path.

python examples/video_python_api.py --model path/to/model_folder --resolution 128
"""

from __future__ import annotations

import argparse
from pathlib import Path

from epigraf_tools.camera import Camera
from epigraf_tools.checkpoints.loading import load_generator
from epigraf_tools.latents import Truncation
from epigraf_tools.rendering import RenderSettings
from epigraf_tools.trajectories import front_circle, load_keyframes, orbit
from epigraf_tools.video import VideoOptions, count_frames, render_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="zoo name, model folder, .pkl or Hub id (default: embedded)")
    parser.add_argument("--out", type=Path, default=Path("out/example_videos"))
    parser.add_argument("--resolution", type=int, default=None)
    args = parser.parse_args()

    G = load_generator(args.model)
    settings = RenderSettings(resolution=args.resolution)
    psi = Truncation(0.7)
    base = Camera.default(G.config)

    # The official zoom-and-fly loop for one seed, with a depth video beside it.
    files = render_video(G, [0], front_circle(64, base), args.out, depth=True, truncation=psi, settings=settings)
    print("front_circle:", [f.name for f in files], count_frames(files[0]), "frames")

    # A 2x2 grid of seeds turning a full circle, seen slightly from above (pitch 80 degrees from +y).
    above = Camera.from_degrees(yaw=0, pitch=80, radius=base.radius, fov=base.fov)
    files = render_video(G, [1, 2, 3, 4], orbit(90, above), args.out / "grid", grid=True, truncation=psi,
                         settings=settings, options=VideoOptions(fps=30, crf=20))  # fmt: skip
    print("orbit grid:", files[0])

    # A keyframed path given as a dict (the same structure as a .json/.yaml file for --trajectory).
    path = {
        "degrees": True,
        "interpolation": "smooth",
        "loop": True,
        "keyframes": [{"yaw": -25, "pitch": 90}, {"yaw": 25, "pitch": 80, "fov": base.fov * 1.2}],
    }
    cams, _ = load_keyframes(path, frames=60, base=base)
    files = render_video(G, [5], cams, args.out / "keyframes", truncation=psi, settings=settings)
    print("keyframes:", files[0])


if __name__ == "__main__":
    main()
