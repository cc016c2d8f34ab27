"""Render 256x256 frames with 48 + 48 samples per ray: the toolkit's renderer vs a straightforward one.

Reference: ``Generator.render_planes`` with its defaults (the readable model path: grid_sample on
channel-first planes, plane average, the MLP module by module, 16384-ray chunks) under no_grad.
Ours: ``epigraf_tools.rendering.render_views`` (FastTriPlaneField: channels-last planes prepared once
per image, folded weights; 2048-ray chunks that stay in cache; inference_mode).
Both consume the same random draws, so the images must agree: we report the largest raw difference
and how many uint8 pixels differ after ``images.to_uint8``.

    python benchmarks/bench_render.py                    # FFHQ-size field: 512^2 x 32 tri-plane, MLP 32-64-4
    python benchmarks/bench_render.py --resolution 512 --only ours   # memory stays bounded (peak RSS printed)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from epigraf_tools.camera import Camera
from epigraf_tools.images import to_uint8
from epigraf_tools.models import Generator, GeneratorConfig
from epigraf_tools.rendering import RenderSettings, ray_draws, render_views


def build(seed: int) -> tuple[Generator, torch.Tensor]:
    """A random generator with the FFHQ-512 field and renderer sizes (thin backbone: it only makes planes)."""
    torch.manual_seed(seed)
    cfg = GeneratorConfig(triplane_res=512, feat_dim=32, mlp_hid_dim=64, channel_base=2048, channel_max=32)
    G = Generator(cfg).eval()
    with torch.no_grad():
        planes = G.planes(G.mapping(torch.randn(1, cfg.z_dim), None))
    return G, planes


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--chunk", type=int, default=None, help="our rays per chunk (default: the toolkit's)")
    parser.add_argument("--only", choices=("both", "ours", "reference"), default="both")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    G, planes = build(0)
    res = args.resolution
    cam = Camera(yaw=0.3, pitch=1.4, fov=G.config.fov, radius=G.config.radius)
    draws = ray_draws([7], res * res, G.config.num_ray_steps)
    settings = RenderSettings(resolution=res, chunk_rays=args.chunk)
    angles = torch.tensor([cam.angles])

    def reference() -> torch.Tensor:
        with torch.no_grad():
            return G.render_planes(planes, angles, resolution=res, draws=draws)["image"][0]

    def ours() -> torch.Tensor:
        return render_views(G, planes, [cam], settings, noise_keys=[7])["image"][0, 0]

    runs = {"reference": reference, "ours": ours}
    names = ["reference", "ours"] if args.only == "both" else [args.only]
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    images: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for name in names:  # interleaved, so load from other processes hits both alike
            t0, c0 = time.perf_counter(), time.process_time()
            images[name] = runs[name]()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    print(f"{res}x{res}, {G.config.num_ray_steps}+{G.config.num_ray_steps} samples, tri-plane 512^2 x 32, "
          f"threads {torch.get_num_threads()}, repeats {args.repeats}")  # fmt: skip
    for name in names:
        wall, proc = statistics.median(times[name]), statistics.median(cpu[name])
        runs_text = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:9s} wall median {wall:7.2f} s   cpu median {proc:7.2f} s   runs [{runs_text}]")
    if args.only == "both":
        wall = statistics.median(times["reference"]) / statistics.median(times["ours"])
        cpu_ratio = statistics.median(cpu["reference"]) / statistics.median(cpu["ours"])
        diff = (images["reference"] - images["ours"]).abs().max().item()
        pix = int((to_uint8(images["reference"]) != to_uint8(images["ours"])).sum())
        print(f"  speedup   wall {wall:.2f}x   cpu {cpu_ratio:.2f}x")
        print(f"  max |raw difference| {diff:.2e}; uint8 values that differ: {pix} of {3 * res * res}")
    print(f"  peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
