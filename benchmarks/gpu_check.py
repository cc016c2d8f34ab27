"""One-table GPU check: the suite's CUDA-marked tests, then render 512^2, volume 512^3, mesh 512^3, a training step.

Needs a CUDA device; without one it says so on stderr and exits with status 2 before any work
(tests/toolkit/test_gpu_check.py checks that). Everything uses random FFHQ-size weights (the
content does not change the cost): a 512^2 x 32 tri-plane field with the FFHQ renderer's 48 + 48
samples per ray, the separable volume path on the device, the CPU mesh pipeline on that volume,
and one step of the 'small' training preset on the device. Each timing is the median of
``--repeats`` runs after one warm-up (CUDA synchronised around each run).

    python benchmarks/gpu_check.py [--repeats 3] [--skip-tests] [--skip-mesh]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NO_CUDA = "gpu_check: no CUDA device is visible to torch (torch.cuda.is_available() is False); run it on a CUDA machine"


def cuda_device() -> torch.device | None:
    """The first CUDA device, or None when torch sees none (or was built without CUDA)."""
    try:
        return torch.device("cuda", 0) if torch.cuda.is_available() and torch.cuda.device_count() > 0 else None
    except Exception:  # noqa: BLE001 - a broken driver means the same as no device here
        return None


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up, CUDA work included."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_cuda_tests() -> str:
    """Run ``pytest -m cuda`` in a fresh process; the summary line (or the failure)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda", str(REPO / "tests")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else proc.stderr.strip()[-200:]
    return ("ok: " if proc.returncode in (0, 5) else f"FAILED (exit {proc.returncode}): ") + summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-tests", action="store_true", help="do not run the CUDA-marked tests")
    parser.add_argument("--skip-mesh", action="store_true")
    args = parser.parse_args(argv)
    device = cuda_device()
    if device is None:
        print(NO_CUDA, file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    warnings.simplefilter("ignore")
    from bench_render import build

    from epigraf_tools.camera import Camera
    from epigraf_tools.rendering import RenderSettings, render_views
    from epigraf_tools.volume import extract_density, make_volume_grid

    rows: list[tuple[str, str]] = [("device", torch.cuda.get_device_name(device)), ("torch", torch.__version__)]
    if not args.skip_tests:
        rows.append(("pytest -m cuda", run_cuda_tests()))

    G, planes = build(0)
    G, planes = G.to(device), planes.to(device)
    cam = Camera(yaw=0.3, pitch=1.4, fov=G.config.fov, radius=G.config.radius)
    settings = RenderSettings(resolution=512)
    t = timed(lambda: render_views(G, planes, [cam], settings, noise_keys=[7]), args.repeats)
    rows.append(("render 512^2, 48+48 samples", f"{t:.3f} s"))

    grid = make_volume_grid(G.config.cube_scale, 512)
    volume = {}

    def vol() -> None:
        volume["v"] = extract_density(G, planes, grid=grid, method="separable")

    t = timed(vol, args.repeats)
    rows.append(("volume 512^3 (separable, on the device; incl. copy to host)", f"{t:.3f} s"))

    if not args.skip_mesh:
        from epigraf_tools.mesh import build_mesh

        v = volume["v"]
        level = float(v.mean())
        start = time.perf_counter()
        mesh = build_mesh(v, grid.voxel_size, grid.origin, level=level)
        rows.append(("mesh 512^3 (CPU pipeline, level = volume mean)", f"{time.perf_counter() - start:.3f} s, "
                     f"{len(mesh.faces)} faces"))  # fmt: skip

    from bench_train import write_dataset

    from epigraf_tools.training.config import TrainConfig, preset
    from epigraf_tools.training.loop import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp), 64, 64)
        cfg = TrainConfig(**{**preset("small"), "data": str(data), "out": str(Path(tmp) / "run"), "device": "cuda",
                             "batch": 16, "grid_size": 0, "d_reg_interval": 16})  # fmt: skip
        trainer = Trainer(cfg)
        t = timed(trainer.train_step, args.repeats)
        rows.append(("training step, 'small' preset, batch 16", f"{t:.3f} s"))

    width = max(len(name) for name, _ in rows)
    print(f"| {'check':{width}s} | result |\n|{'-' * (width + 2)}|--------|")
    for name, value in rows:
        print(f"| {name:{width}s} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
