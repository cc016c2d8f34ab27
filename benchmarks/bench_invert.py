"""Inversion quality and speed on the embedded default model (or ``--model``, EG3D too): W vs W+ vs PTI.

For each seed, the target is what ``epigraf sample`` writes for it (the toolkit renderer with its
seeded ray noise, quantised to uint8) from a known camera (yaw 20, pitch 80 degrees). Each mode
inverts that picture and is scored against the true seed:

- target PSNR: the reconstruction against the target picture;
- novel views: renders 60 and 120 degrees of yaw away, result vs true seed (deterministic rays);
- volume IoU: occupied voxels (density above the mesh level) on a 64^3 grid, result vs true seed;
- drift (PTI only): PSNR of other seeds' renders by the tuned generator vs the original one;
- time per image (latent optimisation + tuning) on this machine's CPU.

With camera optimisation the search starts from the frontal camera (yaw 0, pitch 90 degrees).
``--model`` takes any model the commands take (an EG3D folder: the target and the scores are then
its super-resolved images, the volume IoU is at its level 10).

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_invert.py [--model M] [--seeds 3,7] [--steps 300]
       [--pti-steps 200] [--modes w,w+,pti] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from epigraf_tools.camera import Camera
from epigraf_tools.checkpoints.loading import load_generator
from epigraf_tools.eg3d_model import as_toolkit_model
from epigraf_tools.inversion import InversionOptions, invert
from epigraf_tools.inversion_quality import tuning_drift, view_psnr, volume_iou, yaw_offsets
from epigraf_tools.latents import ws_from_seeds
from epigraf_tools.sampling import generate_samples
from epigraf_tools.target_images import to_tensor

TARGET_CAMERA = (20.0, 80.0)  # yaw, pitch in degrees
NOVEL_YAWS = (60.0, 120.0)
DRIFT_SEEDS = (100, 101, 102, 103)


def target_picture(G, seed: int, camera: Camera) -> torch.Tensor:
    """The uint8 image ``epigraf sample --seeds SEED`` writes for this camera, as a [1, 3, R, R] target."""
    sample = next(generate_samples(G, [seed], [camera]))
    return to_tensor(sample.image)


def run_mode(G, seed: int, mode: str, optimize_camera: bool, args) -> dict:
    cam = Camera.from_degrees(*TARGET_CAMERA, radius=G.config.radius, fov=G.config.fov)
    target = target_picture(G, seed, cam)
    options = InversionOptions(
        space="w+" if mode == "w+" else "w",
        steps=args.steps,
        pti_steps=args.pti_steps if mode == "pti" else 0,
        optimize_camera=optimize_camera,
    )
    start = Camera.default(G.config) if optimize_camera else cam
    t0 = time.perf_counter()
    result = invert(G, target, start, options)
    seconds = time.perf_counter() - t0
    found = result.generator or G
    true_ws, _ = ws_from_seeds(G, [seed])
    novel = view_psnr(found, result.ws, G, true_ws, yaw_offsets(cam, NOVEL_YAWS))
    row = {
        "seed": seed,
        "mode": mode,
        "optimize_camera": optimize_camera,
        "target_psnr": result.psnr,
        **{f"novel_{int(y)}_psnr": p for y, p in zip(NOVEL_YAWS, novel, strict=True)},
        "volume_iou": volume_iou(found, result.ws, G, true_ws),
        "camera_found_deg": [result.camera.yaw_degrees, result.camera.pitch_degrees],
        "seconds": seconds,
    }
    if result.generator is not None:
        drift = tuning_drift(G, result.generator, DRIFT_SEEDS, Camera.default(G.config))
        row["drift_psnr_mean"], row["drift_psnr_min"] = statistics.mean(drift), min(drift)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name, folder or snapshot (default: the embedded one)")
    parser.add_argument("--seeds", default="3,7")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--pti-steps", type=int, default=200)
    parser.add_argument("--modes", default="w,w+,pti")
    parser.add_argument("--camera", default="given,optimised", help="given, optimised or both (comma-separated)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    G = as_toolkit_model(load_generator(args.model))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for camera in args.camera.split(","):
            for mode in args.modes.split(","):
                row = run_mode(G, seed, mode, camera == "optimised", args)
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    print(f"load after: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
