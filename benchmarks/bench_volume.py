"""Density volumes and meshes: the official-style point-by-point procedure vs the separable paths.

On an FFHQ-size tri-plane ([3, 32, 512, 512], MLP 32-64-4, random weights; the content does not
change the cost) it times, in one run and on the same planes:

- naive: every voxel's world point through the field in 32^3-point chunks, as the official
  ``extract_geometry.py`` does (``extract_density(method='naive')``, which keeps only one chunk of
  coordinates in memory instead of the whole grid: the per-point work is the official one);
- separable: per-plane 2-D sampling + first layer, per-voxel add/activate/last layer in PyTorch tiles;
- kernel: the same with the per-voxel step in the fused C++ CPU kernel;

and prints each time, the ratio to naive, the max |difference| to naive, and each path's max error
against a float64 evaluation of the field at 200k random voxels (the float32 paths differ from one
another by about the sum of their own rounding errors). ``--rss`` also measures
the peak resident memory of a full ``export_volume`` into an MRC file in a fresh process, and
``--mesh`` times the mesh pipeline on the largest volume (planes made smooth so surfaces are
object-like rather than noise).

With ``--official-src PATH`` (a checkout of the official EpiGRAF code, imported at run time; see
benchmarks/official_side.py for what it needs) the baseline is the official code itself instead of
our naive path: as ``scripts/extract_geometry.py`` does, the whole coordinate tensor [1, R^3, 3] is
built and passed to the official ``SynthesisNetwork.compute_densities(ws, coords, noise_mode='const')``
(32^3-point chunks through the official ``tri_plane_renderer`` and MLP), on an official generator
with our MLP weights whose tri-plane decoder is replaced by a module returning the same planes. The
coordinates are our regular grid in the official flat order (the official ``create_voxel_coords``
differs from a regular grid by its float division, see the parity fixture's README), so the volumes
are compared value by value; ratios are then to the official time.

``--command-model MODEL`` times the whole ``epigraf export-volume`` command instead (fresh processes), each
repeat after one official extraction when ``--official-src`` is given: the ratio then sets our whole command
(start-up to exit) against the official extraction alone.

Usage: python benchmarks/bench_volume.py [--resolutions 256,512] [--threads N] [--rss] [--mesh]
       python benchmarks/bench_volume.py --official-src /tmp/epigraf-official --resolution 256 --threads 1
       python benchmarks/bench_volume.py --official-src /tmp/epigraf-official --resolution 512 --command-model M
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from epigraf_tools.kernels import kernel_status, load_density_kernel
from epigraf_tools.models import Generator, GeneratorConfig
from epigraf_tools.volume import extract_density, make_volume_grid


def ffhq_size_model(seed: int = 0) -> tuple[Generator, torch.Tensor]:
    """A generator with the FFHQ field (32 features, MLP 32-64-4) and smooth random 512^2 planes."""
    torch.manual_seed(seed)
    cfg = GeneratorConfig(img_resolution=32, triplane_res=16, channel_base=256, channel_max=32, feat_dim=32,
                          mlp_hid_dim=64, cube_scale=0.2)  # fmt: skip
    G = Generator(cfg).eval()
    coarse = torch.randn(1, 3 * 32, 8, 8)
    fine = torch.randn(1, 3 * 32, 512, 512) * 0.05
    planes = (F.interpolate(coarse, size=512, mode="bicubic", align_corners=True) * 2.0 + fine).reshape(
        1, 3, 32, 512, 512
    )
    with torch.no_grad():  # a density head that makes blobs: positive inside, negative outside
        G.synthesis.tri_plane_mlp.model[-1].bias[-1] = -1.0
    return G, planes


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def timed_cpu(fn, cpu: dict, name: str):
    """``timed``, also storing the process CPU time (user + sys) in ``cpu[name]``: on a loaded machine it
    is the fairer measure of the work done."""
    start = time.process_time()
    t, out = timed(fn)
    cpu[name] = time.process_time() - start
    return t, out


class FixedPlanes(torch.nn.Module):
    """Stands in for the official tri-plane decoder: returns the given planes [1, 3 * C, R, R] for any ws."""

    def __init__(self, planes: torch.Tensor, num_ws: int) -> None:
        super().__init__()
        self.planes = planes.reshape(1, -1, *planes.shape[-2:])
        self.num_ws = num_ws

    def forward(self, ws: torch.Tensor, **_: object) -> torch.Tensor:
        return self.planes.expand(ws.shape[0], -1, -1, -1)


def official_volume_fn(official_src: Path, G, planes):
    """(grid -> volume [Rx, Ry, Rz] float32) through the official ``compute_densities`` on our planes."""
    from official_side import build_generator, import_official

    G_off = build_generator(import_official(official_src), G).eval()
    G_off.synthesis.tri_plane_decoder = FixedPlanes(planes, G_off.synthesis.tri_plane_decoder.num_ws)
    ws = torch.zeros(1, G_off.num_ws, G.config.w_dim)

    def run(grid) -> np.ndarray:
        axes = [torch.from_numpy(grid.axis(a)).float() for a in range(3)]
        coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(1, -1, 3)  # official flat order
        sigma = G_off.synthesis.compute_densities(ws, coords, noise_mode="const")
        return sigma.reshape(grid.resolution).numpy()

    return run


def bench_density(G, planes, resolution: int, skip_naive: bool, official=None) -> dict:
    grid = make_volume_grid(0.2, resolution)
    rows, cpu = {}, {}
    ref = None
    if official is not None:  # the official procedure takes the naive path's place as the baseline
        t, ref = timed_cpu(lambda: official(grid), cpu, "official")
        rows["official"] = t
    elif not skip_naive:
        t, ref = timed_cpu(lambda: extract_density(G, planes, grid=grid, method="naive"), cpu, "naive")
        rows["naive"] = t
    t, sep = timed_cpu(lambda: extract_density(G, planes, grid=grid, method="separable"), cpu, "separable")
    rows["separable"] = t
    diffs = {"separable": float(np.abs(sep - ref).max()) if ref is not None else None}
    if load_density_kernel() is not None:
        t, fused = timed_cpu(lambda: extract_density(G, planes, grid=grid, method="kernel"), cpu, "kernel")
        rows["kernel"] = t
        diffs["kernel"] = float(np.abs(fused - (ref if ref is not None else sep)).max())
        if ref is None:
            diffs["kernel_vs"] = "separable"
    base = ref if ref is not None else sep
    checked = {"naive(point-wise)": None, **({"official": ref} if official is not None else {}), "separable": sep}
    truth_err = error_vs_float64(G, planes, grid, {**checked, **({"kernel": fused} if "kernel" in rows else {})})
    print(f"\n{resolution}^3 ({grid.num_voxels / 1e6:.1f} M voxels), value range [{base.min():.3g}, {base.max():.3g}]")
    base_name = next(iter(rows)) if official is not None or not skip_naive else None
    for name, t in rows.items():
        ratio = f"{rows[base_name] / t:6.1f}x" if base_name else "   n/a"
        cpu_ratio = f" (cpu {cpu[name]:.2f} s, {cpu[base_name] / cpu[name]:.1f}x)" if base_name else ""
        diff = "" if name == base_name else f"  max|diff| {diffs.get(name)}"
        speed = f"{grid.num_voxels / t / 1e6:7.1f} Mvox/s"
        print(f"  {name:10s} {t:8.2f} s  {speed}  {ratio} vs {base_name}{cpu_ratio}{diff}")
    print("  max|error| vs a float64 evaluation at 200k random voxels: "
          + ", ".join(f"{k} {v:.2e}" for k, v in truth_err.items()))  # fmt: skip
    return {"resolution": resolution, "times": rows, "cpu_times": cpu, "max_abs_diff": diffs,
            "error_vs_float64": truth_err, "volume": base}  # fmt: skip


def error_vs_float64(G, planes, grid, volumes: dict, samples: int = 200_000) -> dict:
    """Max |value - float64 truth| at random voxels; None in ``volumes`` = the float32 point-wise field."""
    gen = np.random.default_rng(0)
    idx = [gen.integers(0, r, samples) for r in grid.resolution]
    pts = np.stack([grid.axis(a)[idx[a]] for a in range(3)], axis=-1)
    G64 = copy.deepcopy(G).double()
    truth = G64.synthesis.field(planes.double(), torch.from_numpy(pts)[None])[0, :, -1].numpy()
    out = {}
    for name, vol in volumes.items():
        if vol is None:
            vals = G.synthesis.field(planes, torch.from_numpy(pts).float()[None])[0, :, -1].numpy()
        else:
            vals = vol[idx[0], idx[1], idx[2]]
        out[name] = float(np.abs(vals - truth).max())
    return out


def bench_rss(resolution: int) -> None:
    """Peak RSS of export_volume to an MRC in a fresh process (so nothing else inflates it)."""
    code = f"""
import tempfile, time, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from bench_volume import ffhq_size_model
from epigraf_tools.mrc import export_volume
from epigraf_tools.volume import make_volume_grid

def hwm_kb():  # this process's peak resident set (VmHWM starts afresh at exec, unlike ru_maxrss)
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])

G, planes = ffhq_size_model()
base = hwm_kb()
with tempfile.TemporaryDirectory(dir={str(Path.cwd())!r}) as d:
    t = time.perf_counter()
    export_volume(G, planes, d + '/v.mrc', make_volume_grid(0.2, {resolution}))
    t = time.perf_counter() - t
    peak = hwm_kb()
print(base, peak, t)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    base_kb, peak_kb, seconds = int(out[0]), int(out[1]), float(out[2])
    vol_mb = resolution**3 * 4 / 2**20
    print(f"\nexport_volume {resolution}^3 to MRC (fresh process): {seconds:.2f} s; peak RSS {peak_kb / 1024:.0f} MB "
          f"(model and planes alone {base_kb / 1024:.0f} MB; the volume is {vol_mb:.0f} MB; "
          f"peak - volume = {(peak_kb / 1024 - vol_mb):.0f} MB)")  # fmt: skip


def bench_mesh(G, planes, volume: np.ndarray, resolution: int) -> None:
    from epigraf_tools.isolevel import stats_of, suggest_level
    from epigraf_tools.mesh import (
        decimate,
        export_mesh,
        largest_component,
        marching_cubes,
        smooth_taubin,
        vertex_colors,
    )

    grid = make_volume_grid(0.2, resolution)
    t_level, level = timed(lambda: suggest_level(stats_of(volume).samples))
    t_mc, mesh = timed(lambda: marching_cubes(volume, level, grid.voxel_size, grid.origin))
    print(f"\nmesh pipeline on {resolution}^3 (level {level:.3g}, isodata; {t_level:.2f} s for stats + level)")
    print(f"  marching cubes     {t_mc:7.2f} s  {len(mesh.vertices):,} vertices, {len(mesh.faces):,} faces, "
          f"watertight {mesh.is_watertight}")  # fmt: skip
    t, big = timed(lambda: largest_component(mesh))
    print(f"  largest component  {t:7.2f} s  {len(big.faces):,} faces")
    t, smooth = timed(lambda: smooth_taubin(big, 10))
    print(f"  Taubin x10         {t:7.2f} s")
    t, small = timed(lambda: decimate(smooth, 200_000))
    print(f"  decimate to 200k   {t:7.2f} s  {len(small.faces):,} faces, watertight {small.is_watertight}")
    t, colors = timed(lambda: vertex_colors(G, planes, small.vertices))
    small.visual.vertex_colors = colors
    print(f"  vertex colours     {t:7.2f} s  ({len(small.vertices):,} field queries)")
    with tempfile.TemporaryDirectory() as d:
        t, _ = timed(lambda: export_mesh(small, Path(d) / "m", ["ply", "glb"]))
    print(f"  export ply+glb     {t:7.2f} s")


def bench_command(model: str, resolution: int, repeats: int, official=None) -> None:
    """The whole ``epigraf export-volume`` command (a fresh process: start-up, imports, model load, synthesis,
    volume, statistics, MRC and sidecars) on ``model``, alternating repeat by repeat with the baseline: the
    official procedure in this process when given (its extraction alone, on this script's planes: no
    start-up, load or synthesis counted on that side), else nothing."""
    script = Path(sys.executable).with_name("epigraf")
    command = [str(script) if script.is_file() else "epigraf", "export-volume", "--model", model, "--seeds", "0",
               "--resolution", str(resolution)]  # fmt: skip
    grid = make_volume_grid(0.2, resolution)
    ours, theirs = [], []
    print(f"\nwhole `epigraf export-volume` {resolution}^3 on {model}"
          + (", alternating with the official procedure in-process" if official else ""))  # fmt: skip
    with tempfile.TemporaryDirectory(dir=str(Path.cwd())) as d:
        for n in range(repeats):
            if official is not None:
                with torch.no_grad():
                    theirs.append(timed(lambda: official(grid))[0])
            start = time.perf_counter()
            subprocess.run([*command, "--out", d], check=True, capture_output=True)
            ours.append(time.perf_counter() - start)
            line = f"  repeat {n + 1}: command {ours[-1]:.2f} s"
            if theirs:
                line += f", official {theirs[-1]:.1f} s, ratio {theirs[-1] / ours[-1]:.1f}x"
            print(line, flush=True)
    summary = f"  command median {float(np.median(ours)):.2f} s (min {min(ours):.2f})"
    if theirs:
        summary += f"; official median {float(np.median(theirs)):.1f} s: {np.median(theirs) / np.median(ours):.1f}x"
    print(summary)


FLOOR_FLOP_PER_VOXEL = 350  # issue 19: ~47 GFLOP for 512^3 once the first layer is separable (H = 64)


def kernel_throughput(G, planes, resolution: int, thread_counts: list[int], repeats: int = 3) -> None:
    """The fused kernel's volume time per thread count (best of ``repeats``, in-process, output preallocated),
    as GFLOP/s on the issue's 350 FLOP/voxel basis, beside torch.mm's fp32 peak on the same threads."""
    if load_density_kernel() is None:
        print(f"kernel throughput: kernel unavailable ({kernel_status()})")
        return
    grid = make_volume_grid(0.2, resolution)
    out = np.zeros(grid.shape_zyx, np.float32).transpose(2, 1, 0)  # pages touched once, outside the timing
    before = torch.get_num_threads()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    print(f"\nkernel throughput at {resolution}^3 (floor {FLOOR_FLOP_PER_VOXEL * grid.num_voxels / 1e9:.0f} GFLOP):")
    try:
        for n in thread_counts:
            torch.set_num_threads(n)
            t = min(timed(lambda: extract_density(G, planes, grid=grid, method="kernel", out=out))[0]
                    for _ in range(repeats))  # fmt: skip
            torch.mm(a, b)
            mm = min(timed(lambda: torch.mm(a, b))[0] for _ in range(repeats))
            gflop = FLOOR_FLOP_PER_VOXEL * grid.num_voxels / t / 1e9
            print(f"  {n} thread(s): {t:6.2f} s = {gflop:6.1f} GFLOP/s;  torch.mm fp32 2048^3: "
                  f"{2 * 2048**3 / mm / 1e9:6.1f} GFLOP/s")  # fmt: skip
    finally:
        torch.set_num_threads(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", default="256,512")
    parser.add_argument("--resolution", type=int, default=None, help="one grid size (overrides --resolutions)")
    parser.add_argument("--official-src", type=Path, default=None, metavar="PATH",
                        help="an official EpiGRAF checkout: the baseline instead of our naive path")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-naive-above", type=int, default=4096, help="skip the naive path above this size")
    parser.add_argument("--rss", action="store_true", help="peak RSS of a 512^3 export_volume (fresh process)")
    parser.add_argument("--mesh", action="store_true", help="time the mesh pipeline on the largest volume")
    parser.add_argument("--json", type=Path, default=None, help="also write the timings here")
    parser.add_argument("--command-model", default=None, metavar="MODEL",
                        help="only the whole export-volume command on this model (folder, file or zoo name), "
                             "alternating with the official procedure when --official-src is given")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="repeats of --command-model")
    parser.add_argument("--throughput", type=str, default=None, metavar="THREADS",
                        help="only the kernel's 512^3 time and GFLOP/s for these thread counts, e.g. 1,2")  # fmt: skip
    args = parser.parse_args()
    resolutions = [args.resolution] if args.resolution else [int(r) for r in args.resolutions.split(",")]
    if min(resolutions) < 2:
        parser.error("grid sizes must be >= 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    t, _ = timed(load_density_kernel)
    print(f"fused kernel: {kernel_status()} ({t:.1f} s to load/build)")
    G, planes = ffhq_size_model()
    official = official_volume_fn(args.official_src, G, planes) if args.official_src else None
    if args.command_model:
        bench_command(args.command_model, resolutions[-1], args.repeats, official)
        return
    if args.throughput:
        kernel_throughput(G, planes, 512, [int(n) for n in args.throughput.split(",")])
        return
    results = []
    with torch.no_grad():
        for res in resolutions:
            results.append(bench_density(G, planes, res, skip_naive=res > args.skip_naive_above, official=official))
    if args.mesh:
        bench_mesh(G, planes, results[-1]["volume"], results[-1]["resolution"])
    if args.rss:
        bench_rss(512)
    print(f"\nprocess peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"load average now {os.getloadavg()[0]:.1f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "volume"} for r in results], indent=2))


if __name__ == "__main__":
    main()
