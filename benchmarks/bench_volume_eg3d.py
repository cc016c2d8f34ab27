"""512^3 EG3D density volume: the fast path (separable + fused softplus kernel) vs EG3D's own procedure.

The reference is the shape extraction of EG3D's ``gen_samples.py``: every voxel's world point through
the model's own decoder (``EG3DGenerator.sample_points``: grid_sample of the three planes, mean,
OSG decoder) in chunks of 1M points (``eg3d_volume.eg3d_density_reference``; the official script
also recomputes the tri-planes for every chunk, which this leaves out, so the ratio is a lower
bound). The model has EG3D's FFHQ field sizes: tri-planes [3, 32, 256, 256] (smooth random planes),
decoder FC 32-64-33 with random weights, box_warp 1, grid over the box [-0.5, 0.5]^3. Both paths
run in one process on the same planes, alternately; the script prints both times, the ratio, the
max |difference| and, for comparison, the EpiGRAF fast path on a grid of the same size
(``bench_volume.ffhq_size_model``).

    python benchmarks/bench_volume_eg3d.py [--resolution 512] [--threads N] [--repeats 1] [--skip-reference]
        [--product-ab] [--order eg3d|model]

``--official-src DIR`` (the ``eg3d/`` folder of an NVlabs/eg3d checkout, imported at run time, see
``official_eg3d.py``) measures against the official code itself instead: the official FFHQ-size
TriPlaneGenerator (random weights, seed 0) runs ``gen_samples.py --shapes``'s procedure (its grid,
``G.sample`` per 1M-point chunk, tri-planes re-synthesised per chunk) and our ``EG3DGenerator`` with
the same weights makes the volume from the same z and conditioning label as ``epigraf
export-volume`` does (mapping and tri-planes once, then the fast path). Both times include the
mapping and the tri-planes; our decoder is checked against the official ``sigma`` at the official
grid's points.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from epigraf_tools.eg3d_volume import eg3d_density, eg3d_density_model_order, eg3d_density_reference  # noqa: E402
from epigraf_tools.kernels import kernel_status, load_density_kernel  # noqa: E402
from epigraf_tools.models.eg3d import EG3DConfig, EG3DGenerator  # noqa: E402


def ffhq_size_eg3d(seed: int = 0) -> tuple[EG3DGenerator, torch.Tensor]:
    """A thin-backbone EG3D generator (the backbone is not used) with smooth random 256^2 x 32 planes."""
    torch.manual_seed(seed)
    G = EG3DGenerator(EG3DConfig(z_dim=16, w_dim=16, channel_base=256, channel_max=16)).eval()
    coarse = torch.randn(1, 96, 8, 8)
    planes = (
        F.interpolate(coarse, size=256, mode="bicubic", align_corners=True) * 2.0 + torch.randn(1, 96, 256, 256) * 0.05
    )
    return G, planes.reshape(1, 3, 32, 256, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-epigraf", action="store_true")
    parser.add_argument(
        "--product-ab",
        action="store_true",
        help="also time the kernel with its product form off (plain softplus table), alternating, and print the ratio",
    )
    parser.add_argument(
        "--order",
        choices=("eg3d", "model"),
        default="eg3d",
        help="the fast path's grid order: EG3D's axes (A + B terms) or the model world's MRC order, as "
        "export-volume fills it (B + C terms); the reference stays in EG3D's order",
    )
    parser.add_argument("--official-src", default=None, help="eg3d/ folder of an NVlabs/eg3d checkout")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.official_src:
        compare_with_official(args.official_src, args.resolution, args.repeats)
        return
    kernel = load_density_kernel()
    if kernel is None:
        print(f"note: the fused kernel is unavailable ({kernel_status()}); the fast path is the PyTorch one")
    path = getattr(kernel, "softplus_path", lambda: "exp-log1p")() if kernel is not None else "none"
    G, planes = ffhq_size_eg3d()

    def fast_volume(out: np.ndarray) -> None:
        if args.order == "model":  # the same cube, sectioned along the model world's z (MRC order [z, y, x])
            eg3d_density_model_order(G, planes, axes, out_zyx=out.transpose(2, 1, 0))
        else:
            eg3d_density(G, planes, axes, out=out)

    r = args.resolution
    half = float(G.rendering_kwargs["box_warp"]) / 2
    axes = [np.linspace(-half, half, r)] * 3
    out = np.empty((r, r, r), np.float32).transpose(2, 1, 0)
    ref_out = np.empty((r, r, r), np.float32).transpose(2, 1, 0) if not args.skip_reference else None
    times: dict[str, list[float]] = {"fast": [], "reference": []}
    cpu: list[float] = []  # process CPU time: steadier than wall time on a machine shared with other jobs
    product_form = bool(getattr(kernel, "product_form", False))
    ab = args.product_ab and product_form
    plain_out = np.empty((r, r, r), np.float32).transpose(2, 1, 0) if ab else None
    times["plain"] = []
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        fast_volume(out)
        times["fast"].append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        if ab:
            kernel.product_form = False  # the module attribute separable_filler reads
            try:
                t = time.perf_counter()
                fast_volume(plain_out)
                times["plain"].append(time.perf_counter() - t)
            finally:
                kernel.product_form = True
        if ref_out is not None:
            t = time.perf_counter()
            eg3d_density_reference(G, planes, axes, out=ref_out)
            times["reference"].append(time.perf_counter() - t)
    print(f"EG3D {r}^3 ({r**3 / 1e6:.1f} M voxels), planes 256^2 x 32, decoder 32-64-33, "
          f"threads {torch.get_num_threads()}, kernel: {kernel_status()}, softplus: {path}, "
          f"product form: {'yes' if product_form else 'no'}")  # fmt: skip
    fast = statistics.median(times["fast"])
    print(
        f"  fast      {fast:8.2f} s  {r**3 / fast / 1e6:7.1f} Mvox/s  runs {[round(t, 2) for t in times['fast']]}"
        f"  (CPU time, all threads: {[round(t, 2) for t in cpu]} s)"
    )
    if plain_out is not None:
        plain = statistics.median(times["plain"])
        print(
            f"  plain     {plain:8.2f} s  (product form off)  runs {[round(t, 2) for t in times['plain']]}"
            f"  ratio {plain / fast:.2f}x; max |difference| {float(np.abs(out - plain_out).max()):.2e}"
        )
    if ref_out is not None:
        ref = statistics.median(times["reference"])
        print(
            f"  reference {ref:8.2f} s  {r**3 / ref / 1e6:7.1f} Mvox/s  (EG3D gen_samples procedure, 1M-point chunks)"
        )
        # model order: V_model[x, y, z] is EG3D's value at (-z, y, x), so EG3D's [i, j, k] is [k, j, r - 1 - i]
        same_order = out[:, :, ::-1].transpose(2, 1, 0) if args.order == "model" else out
        diff = float(np.abs(same_order - ref_out).max())
        span = f"[{ref_out.min():.3g}, {ref_out.max():.3g}]"
        print(f"  ratio {ref / fast:.1f}x; max |difference| {diff:.2e} (values in {span})")
    if not args.skip_epigraf:
        from bench_volume import ffhq_size_model

        from epigraf_tools.volume import extract_density, make_volume_grid

        Ge, planes_e = ffhq_size_model()
        t, c = time.perf_counter(), time.process_time()
        extract_density(Ge, planes_e, grid=make_volume_grid(0.2, r), out=out)
        print(
            f"  EpiGRAF fast path, same grid size, FFHQ-size field: {time.perf_counter() - t:.2f} s "
            f"(CPU time {time.process_time() - c:.2f} s)"
        )


def compare_with_official(src: str, resolution: int, repeats: int) -> None:
    """Official gen_samples.py shape extraction vs ours, same weights, z and label, alternating runs."""
    from official_eg3d import official_ffhq_generator, official_shapes_volume, ours_from_official

    from epigraf_tools.eg3d_model import EG3DModel

    official = official_ffhq_generator(src)
    G = ours_from_official(official)
    z = torch.from_numpy(np.random.RandomState(0).randn(1, G.z_dim)).float()
    c = EG3DModel(G).conditioning_label()  # gen_samples.py's frontal conditioning camera
    r = resolution
    half = float(G.rendering_kwargs["box_warp"]) / 2
    axes = [np.linspace(-half, half, r)] * 3
    out = np.empty((r, r, r), np.float32).transpose(2, 1, 0)
    times: dict[str, list[float]] = {"official": [], "ours": []}
    for _ in range(repeats):
        t = time.perf_counter()
        sigma, points = official_shapes_volume(official, z, c, r)
        times["official"].append(time.perf_counter() - t)
        t = time.perf_counter()
        with torch.no_grad():
            planes = G.planes(G.mapping(z, c, truncation_psi=0.7, truncation_cutoff=14), noise_mode="const")
            eg3d_density(G, planes, axes, out=out)
        times["ours"].append(time.perf_counter() - t)
    pick = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:200_000]
    with torch.no_grad():
        ours_at_points = G.sample_points(planes, points[pick][None])["sigma"].reshape(-1)
    diff = float((ours_at_points - sigma[pick]).abs().max())
    official_s, ours_s = statistics.median(times["official"]), statistics.median(times["ours"])
    print(f"EG3D FFHQ-size generator (official TriPlaneGenerator, random weights, seed 0), {r}^3, "
          f"threads {torch.get_num_threads()}, kernel: {kernel_status()}")  # fmt: skip
    for label, name, median in (
        ("official gen_samples --shapes procedure", "official", official_s),
        ("ours (mapping + planes + fast path)    ", "ours", ours_s),
    ):
        print(f"  {label} {median:8.2f} s  runs {[round(t, 2) for t in times[name]]}")
    print(f"  ratio {official_s / ours_s:.1f}x; our decoder vs official sigma at 200k official grid points: "
          f"max |difference| {diff:.2e} (values in [{float(sigma.min()):.3g}, {float(sigma.max()):.3g}])")  # fmt: skip


if __name__ == "__main__":
    main()
