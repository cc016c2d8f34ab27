"""Two or more builds of the density kernel on the same EG3D slab calls, in one process, alternating.

A change to ``softplus_product_slab`` is worth keeping only if it is faster on the calls a real
volume makes, and a shared machine's speed drifts by 20-30% between runs minutes apart, so the
builds are timed side by side: the script builds each source given (``epigraf_tools/kernels/
density_slab.cpp`` or an edited copy; each gets its own cached build, keyed by its contents),
records the slab calls of one EG3D volume (``bench_volume_eg3d.ffhq_size_eg3d``'s planes, or an
FFHQ-size model folder's seed 0 with ``--model``), replays them through every build in turn, and
prints each build's median, the ratio to the first, and the largest difference from the first's
output.

    python benchmarks/bench_kernel_ab.py SOURCE [SOURCE ...] [--order model|eg3d] [--resolution 512]
        [--threads N] [--repeats 5] [--model DIR] [--avx2]

``--avx2`` builds every source with ``-O3 -mavx2 -mfma -fopenmp`` instead of ``-march=native``
(the AVX2 product form on an AVX-512 machine; set ``EPIGRAF_KERNEL_CACHE`` to keep those builds
apart from the native ones).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import epigraf_tools.kernels as kernels  # noqa: E402
from epigraf_tools.eg3d_volume import eg3d_density, eg3d_density_model_order  # noqa: E402

AVX2_FLAGS = ("-O3", "-mavx2", "-mfma", "-fopenmp")


def fail(message: str) -> None:
    """One line on stderr and exit 2 (bad input), as the toolkit's commands do."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load_build(source: Path):
    """The density kernel module built from ``source`` (a cached build when one exists)."""
    kernels.DENSITY_SOURCE = source
    kernels._cache.clear()  # the loader caches by kernel name; each source is its own build
    module = kernels.load_density_kernel()
    if module is None:
        fail(f"{source} did not build: {kernels.kernel_status()}")
    return module


def eg3d_planes(model: str | None):
    """(EG3DGenerator, planes [1, 3, 32, 256, 256]): the benchmark's smooth random planes, or a model's seed 0."""
    if model is None:
        from bench_volume_eg3d import ffhq_size_eg3d

        return ffhq_size_eg3d()
    from epigraf_tools.checkpoints.loading import load_generator
    from epigraf_tools.eg3d_model import as_toolkit_model
    from epigraf_tools.geometry_export import seed_planes
    from epigraf_tools.latents import Truncation

    wrapped = as_toolkit_model(load_generator(model), model)
    planes, _ = seed_planes(wrapped, 0, Truncation(0.7), None)
    return wrapped.eg3d, planes


def record_calls(module, G, planes, resolution: int, order: str) -> tuple[list[tuple], list[torch.Tensor]]:
    """The arguments of every softplus_product_slab call one volume makes (copies, so replays are
    independent), and what each call wrote (replays of the same build must write it again)."""
    calls: list[tuple] = []
    results: list[torch.Tensor] = []
    original = module.softplus_product_slab

    def capture(*args):
        calls.append(tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args))
        original(*args)
        results.append(args[-1].clone())

    module.softplus_product_slab = capture
    try:
        axes = [np.linspace(-0.5, 0.5, resolution)] * 3
        out = np.empty((resolution,) * 3, np.float32).transpose(2, 1, 0)
        if order == "model":
            eg3d_density_model_order(G, planes, axes, out_zyx=out.transpose(2, 1, 0), method="kernel")
        else:
            eg3d_density(G, planes, axes, out=out, method="kernel")
    finally:
        module.softplus_product_slab = original
    if not calls:
        fail("the volume made no product-form calls (a build without the product form?)")
    return calls, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=Path, help="density_slab.cpp files; the first is the baseline")
    parser.add_argument("--order", choices=("model", "eg3d"), default="model")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default=None, help="an EG3D model folder (seed 0, truncation 0.7)")
    parser.add_argument("--avx2", action="store_true", help="build with -mavx2 -mfma instead of -march=native")
    args = parser.parse_args()
    for source in args.sources:
        if not source.is_file():
            parser.error(f"no such kernel source: {source}")
    if args.resolution < 2 or args.repeats < 1:
        parser.error("--resolution must be at least 2 and --repeats at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.avx2:
        kernels._FLAG_SETS = (AVX2_FLAGS,)
    builds = [load_build(source.resolve()) for source in args.sources]
    G, planes = eg3d_planes(args.model)
    kernels.DENSITY_SOURCE = args.sources[0].resolve()
    kernels._cache.clear()
    recorder = kernels.load_density_kernel()  # the first build again, now the one the volume code loads
    calls, recorded = record_calls(recorder, G, planes, args.resolution, args.order)
    outputs = [[torch.empty_like(call[-1]) for call in calls] for _ in builds]
    times: list[list[float]] = [[] for _ in builds]
    for _ in range(args.repeats):
        for i, build in enumerate(builds):
            start = time.perf_counter()
            for call, out in zip(calls, outputs[i], strict=True):
                build.softplus_product_slab(*call[:-1], out)
            times[i].append(time.perf_counter() - start)
    print(
        f"{len(calls)} softplus_product_slab calls of one {args.resolution}^3 EG3D volume ({args.order} order), "
        f"threads {torch.get_num_threads()}, {'AVX2 builds' if args.avx2 else 'native builds'}"
    )
    replay = max(float((a - b).abs().max()) for a, b in zip(outputs[0], recorded, strict=True))
    print(f"  replay of the first build against the volume's own slabs: max |difference| {replay:.2e}")
    base = statistics.median(times[0])
    for i, source in enumerate(args.sources):
        median = statistics.median(times[i])
        diff = max(float((a - b).abs().max()) for a, b in zip(outputs[i], outputs[0], strict=True))
        runs = [round(t, 3) for t in times[i]]
        print(f"  {str(source):60s} median {median:.3f} s  ({median / base:.2f}x the first)  runs {runs}  "
              f"max |difference| from the first {diff:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
