"""The mesh pipeline stage by stage on an FFHQ-size field, and the mesh report against trimesh's.

On the FFHQ-size field of ``bench_volume.ffhq_size_model`` (smooth random 512^2 planes, MLP 32-64-4) it
extracts one volume, then times each stage of ``build_mesh`` (marching cubes with closing and the
coincident-vertex separation, vertex colours, the report), the PLY write, and the report computed
by trimesh's own properties (``is_watertight``, ``is_winding_consistent``, ``euler_number``, ``area``,
``volume``) on the same mesh, printing the ratio and checking the two agree. ``--texture N`` also
times the UV unwrap and bake of a decimated copy (needs xatlas).

Usage: python benchmarks/bench_mesh.py [--resolution 512] [--texture 1024 --faces 50000]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_volume import ffhq_size_model  # noqa: E402

from epigraf_tools.isolevel import choose_level, stats_of  # noqa: E402
from epigraf_tools.mesh import decimate, export_mesh, marching_cubes, mesh_report, vertex_colors  # noqa: E402
from epigraf_tools.volume import extract_density, make_volume_grid  # noqa: E402


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def trimesh_report(mesh) -> dict:
    fresh = mesh.copy()  # no cached edge tables from earlier calls
    watertight = bool(fresh.is_watertight)
    return {
        "watertight": watertight,
        "winding_consistent": bool(fresh.is_winding_consistent),
        "euler_number": int(fresh.euler_number),
        "area": float(fresh.area),
        "volume": float(fresh.volume) if watertight else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--texture", type=int, default=None, help="also bake an N x N texture (xatlas)")
    parser.add_argument("--faces", type=int, default=50_000, help="decimate to this before texturing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")

    G, planes = ffhq_size_model()
    grid = make_volume_grid(G.config.cube_scale, args.resolution)
    t_vol, vol = timed(lambda: extract_density(G, planes, grid=grid, method="auto"))
    level, _ = choose_level(None, stats_of(vol))
    print(f"volume {args.resolution}^3: {t_vol:.2f} s (method auto); level {level:.4g} (isodata)")

    t_mc, mesh = timed(lambda: marching_cubes(vol, level, grid.voxel_size, grid.origin))
    print(f"  marching cubes + closing + separation {t_mc:7.2f} s  {len(mesh.vertices):,} vertices, "
          f"{len(mesh.faces):,} faces")  # fmt: skip
    t_col, colors = timed(lambda: vertex_colors(G, planes, mesh.vertices))
    mesh.visual.vertex_colors = colors
    print(f"  vertex colours                        {t_col:7.2f} s")
    t_ours, ours = timed(lambda: mesh_report(mesh))
    t_theirs, theirs = timed(lambda: trimesh_report(mesh))
    agree = all(ours[k] == theirs[k] for k in ("watertight", "winding_consistent", "euler_number"))
    agree &= abs(ours["area"] - theirs["area"]) <= 1e-9 * theirs["area"]
    print(f"  report (ours)                         {t_ours:7.2f} s  watertight {ours['watertight']}")
    print(f"  report (trimesh properties)           {t_theirs:7.2f} s  -> ours is {t_theirs / t_ours:.1f}x faster; "
          f"facts agree: {agree}")  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        t_ply, _ = timed(lambda: export_mesh(mesh, Path(d) / "m", ["ply"]))
    print(f"  PLY write                             {t_ply:7.2f} s")
    print(f"  total of our stages                   {t_mc + t_col + t_ours + t_ply:7.2f} s")
    if args.texture:
        from epigraf_tools.mesh_texture import bake_texture

        t_dec, small = timed(lambda: decimate(mesh, args.faces))
        t_tex, _ = timed(
            lambda: bake_texture(small.vertices, small.faces, args.texture, lambda p: vertex_colors(G, planes, p))
        )
        print(f"  decimate to {args.faces:,} faces {t_dec:.2f} s; unwrap + bake {args.texture}^2 texture {t_tex:.2f} s")
    print(f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
