"""Render frames with 48 + 48 samples per ray: the toolkit's renderer vs the official code or a straightforward one.

Ours: ``epigraf_tools.rendering.render_views`` (FastTriPlaneField: channels-last planes prepared once
per image, folded weights, the compiled tri-plane gather when the kernel is built; 2048-ray chunks
that stay in cache; inference_mode).
Compared with, in the same process and alternating repeat by repeat:

- ``--official-src PATH``: the official EpiGRAF code (universome/epigraf, imported from PATH at run
  time, see benchmarks/official_side.py for what it needs), an official Generator built for the same
  architecture with our weights copied in: ``G.synthesis(ws, angles, noise_mode='const')`` as the
  official inference script calls it (its default 16384-ray chunks). Both sides then render from ws
  (tri-plane synthesis included) and consume the same uniforms: the official code draws them from the
  global torch generator after ``torch.manual_seed(key)``, ours from ``torch.Generator().manual_seed(key)``
  in the same order, so the images must agree.
- otherwise: ``Generator.render_planes`` with its defaults (the readable model path: grid_sample on
  channel-first planes, plane average, the MLP module by module, 16384-ray chunks) under no_grad,
  from the same tri-planes and draws.

We report medians, the ratio, the largest raw difference and how many uint8 values differ after
``images.to_uint8``.

    python benchmarks/bench_render.py                    # FFHQ-size field: 512^2 x 32 tri-plane, MLP 32-64-4
    python benchmarks/bench_render.py --official-src /tmp/epigraf-official --resolution 512 --threads 1
    python benchmarks/bench_render.py --resolution 512 --only ours   # memory stays bounded (peak RSS printed)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from epigraf_tools.camera import Camera
from epigraf_tools.images import to_uint8
from epigraf_tools.kernels import cached_kernel_module, kernel_status, load_density_kernel
from epigraf_tools.models import Generator, GeneratorConfig
from epigraf_tools.rendering import RenderSettings, ray_draws, render_views

NOISE_KEY = 7


def build_ws(seed: int) -> tuple[Generator, torch.Tensor]:
    """A random generator with the FFHQ-512 field and renderer sizes (thin backbone: it only makes planes); its ws."""
    torch.manual_seed(seed)
    cfg = GeneratorConfig(triplane_res=512, feat_dim=32, mlp_hid_dim=64, channel_base=2048, channel_max=32)
    G = Generator(cfg).eval()
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, cfg.z_dim), None)
    return G, ws


def build(seed: int) -> tuple[Generator, torch.Tensor]:
    """``build_ws``'s generator and the tri-planes of its ws."""
    G, ws = build_ws(seed)
    return G, G.planes(ws)


def timed_load() -> tuple[float, object]:
    t0 = time.perf_counter()
    module = load_density_kernel()
    return time.perf_counter() - t0, module


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_runs(G: Generator, ws: torch.Tensor, res: int, chunk: int | None, official_src: Path | None):
    """{name: () -> image [3, H, W]} for the baseline ('official' or 'reference') and 'ours' (first two),
    and with the official code also each side's tri-plane synthesis alone ('... planes')."""
    cam = Camera(yaw=0.3, pitch=1.4, fov=G.config.fov, radius=G.config.radius)
    angles = torch.tensor([cam.angles])
    settings = RenderSettings(resolution=res, chunk_rays=chunk)
    runs: dict[str, Callable[[], torch.Tensor]] = {}
    if official_src is not None:
        from official_side import build_generator, import_official

        G_off = build_generator(import_official(official_src), G).eval()
        G_off.synthesis.img_resolution = G_off.synthesis.test_resolution = res  # as the official inference does

        def official() -> torch.Tensor:
            torch.manual_seed(NOISE_KEY)
            with torch.no_grad():
                return G_off.synthesis(ws, camera_angles=angles.clone(), noise_mode="const")[0]

        def ours() -> torch.Tensor:
            planes = G.planes(ws)
            return render_views(G, planes, [cam], settings, noise_keys=[NOISE_KEY])["image"][0, 0]

        runs["official"] = official
        # The tri-plane synthesis alone on each side, so the renderer's share can be read off too.
        runs["official planes"] = lambda: G_off.synthesis.tri_plane_decoder(ws, noise_mode="const")
        runs["ours planes"] = lambda: G.planes(ws)
    else:
        planes = G.planes(ws)
        draws = ray_draws([NOISE_KEY], res * res, G.config.num_ray_steps)

        def reference() -> torch.Tensor:
            with torch.no_grad():
                return G.render_planes(planes, angles, resolution=res, draws=draws)["image"][0]

        def ours() -> torch.Tensor:
            return render_views(G, planes, [cam], settings, noise_keys=[NOISE_KEY])["image"][0, 0]

        runs["reference"] = reference
    runs["ours"] = ours
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--chunk", type=int, default=None, help="our rays per chunk (default: the toolkit's)")
    parser.add_argument("--only", choices=("both", "ours", "reference", "official"), default="both",
                        help="run one side only ('reference' and 'official' both mean the baseline)")  # fmt: skip
    parser.add_argument("--official-src", type=Path, default=None, metavar="PATH",
                        help="an official EpiGRAF checkout: the baseline instead of our reference")  # fmt: skip
    args = parser.parse_args()
    if args.resolution < 8 or args.repeats < 1:
        parser.error("--resolution must be >= 8 and --repeats >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)

    # Our CPU renderer gathers with the compiled kernel once it is built (rendering never builds it):
    # build or load it here, so the side measured is the one users get after their first export-volume.
    t, _ = timed_load()
    path = "compiled triplane_field" if cached_kernel_module() else f"embedding_bag + addmm ({kernel_status()})"
    print(f"ours: field {path} ({t:.1f} s to load/build the kernel; EPIGRAF_NO_KERNELS=1 turns it off)")
    G, ws = build_ws(0)
    res = args.resolution
    runs = make_runs(G, ws, res, args.chunk, args.official_src)
    base = next(iter(runs))
    names = list(runs) if args.only == "both" else ["ours" if args.only == "ours" else base]
    planes_timed = "official planes" in names
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    images: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for name in names:  # interleaved, so load from other processes hits both alike
            t0, c0 = time.perf_counter(), time.process_time()
            with torch.no_grad():
                images[name] = runs[name]()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    what = "from ws (tri-plane synthesis included)" if args.official_src else "from tri-planes"
    print(f"{res}x{res}, {G.config.num_ray_steps}+{G.config.num_ray_steps} samples, tri-plane 512^2 x 32, {what}, "
          f"threads {torch.get_num_threads()}, repeats {args.repeats}")  # fmt: skip
    for name in names:
        wall, proc = statistics.median(times[name]), statistics.median(cpu[name])
        runs_text = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"  {name:15s} wall median {wall:7.2f} s   cpu median {proc:7.2f} s   runs [{runs_text}]")
    if args.only == "both":
        wall = statistics.median(times[base]) / statistics.median(times["ours"])
        cpu_ratio = statistics.median(cpu[base]) / statistics.median(cpu["ours"])
        diff = (images[base] - images["ours"]).abs().max().item()
        pix = int((to_uint8(images[base]) != to_uint8(images["ours"])).sum())
        print(f"  speedup vs {base}: wall {wall:.2f}x   cpu {cpu_ratio:.2f}x")
        if planes_timed:  # the renderer alone: each side's median minus its own tri-plane synthesis
            off_r = statistics.median(times[base]) - statistics.median(times["official planes"])
            ours_r = statistics.median(times["ours"]) - statistics.median(times["ours planes"])
            print(f"  renderer alone (median minus its tri-plane synthesis): official {off_r:.2f} s, "
                  f"ours {ours_r:.2f} s, speedup {off_r / ours_r:.2f}x")  # fmt: skip
        print(f"  max |raw difference| {diff:.2e}; uint8 values that differ: {pix} of {3 * res * res}")
    print(f"  peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
