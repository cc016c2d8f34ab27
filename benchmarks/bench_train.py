"""Training throughput (kimg/s) on the CPU for the 'small' preset: patch-wise vs whole images.

Measures two ways in one run, on one synthetic dataset and the same networks:
  A. patch-wise training as EpiGRAF does it: 64^2 images, D sees 32^2 patches (rays for 32^2 pixels);
  B. the same model trained on whole 64^2 images (patch_res = resolution: 4x the rays per image).
Prints kimg/s of each (median over timed steps, after warm-up steps) and the ratio A / B.

    python benchmarks/bench_train.py [--steps 6] [--warmup 2] [--batch 16] [--threads N]

With ``--official-src PATH`` (a checkout of the official EpiGRAF code, imported at run time; see
benchmarks/official_side.py for what it needs) it instead times one G+D training step of the official
code against ours, alternating step by step in one process, on the architecture of the official
parity fixture ("mini": 128^2 images, 64^2 tri-planes x 32, G channels 4096/128, 24+24 ray steps,
64^2 patches, patch-aware D 2048/128 with hyper-modulation), the same weights on both sides.
The official training loop hard-codes CUDA, so the official networks and ``StyleGAN2Loss`` are built
directly and the phases run as its loop runs them: for each of Gall, Dmain and Dreg (R1 with gain 16,
as with ``D_reg_interval`` 16) zero_grad, ``accumulate_gradients``, one Adam step (the EMA update and
data loading are left out on both sides). While timed, each side makes its own random draws. Before
timing, both run each phase once on the same inputs with every random draw removed (fixed patches,
deterministic rays, no nerf noise, constant StyleGAN noise) and print their losses and the largest
gradient difference, which must agree to float32 rounding (on the CPU our generator renders through
the fast training field, models/fast_field.py, whose different summation order can also flip the
slope of a leaky ReLU whose input is within rounding of 0: expect ~1e-5 there, ~1e-7 with
``--grid-sample-field``, which makes our side render through the grid_sample reference field instead).

    python benchmarks/bench_train.py --official-src /tmp/epigraf-official --batch 8 --threads 1 --steps 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_dataset(folder: Path, n: int, size: int) -> Path:
    """Random-colour discs with frontal-ish poses (the content does not matter for speed)."""
    import json

    rng = np.random.RandomState(0)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    angles = {}
    for i in range(n):
        img = np.full((size, size, 3), 255, np.uint8)
        img[(xx - 0.5) ** 2 + (yy - 0.5) ** 2 < rng.uniform(0.05, 0.1)] = rng.randint(0, 255, 3)
        Image.fromarray(img).save(folder / f"{i:05d}.png")
        angles[f"{i:05d}.png"] = [float(rng.uniform(-0.5, 0.5)), float(np.pi / 2 + rng.uniform(-0.2, 0.2)), 0.0]
    (folder / "dataset.json").write_text(json.dumps({"camera_angles": angles}))
    return folder


def measure(cfg, steps: int, warmup: int) -> tuple[float, float]:
    from epigraf_tools.training.loop import Trainer

    trainer = Trainer(cfg)
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        trainer.train_step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    return cfg.batch / sec / 1000, sec


def rate(kimg_per_s: float) -> str:
    return f"{kimg_per_s:.4f} kimg/s, {kimg_per_s * 3600:.1f} kimg/h"


# The official parity fixture's architecture (shared/fixtures/official_mini), on both sides.
MINI_G = dict(img_resolution=128, triplane_res=64, channel_base=4096, channel_max=128, num_ray_steps=24,
              density_shift=-1.0, cube_scale=0.2, fov=12.0, ray_start=0.88, ray_end=1.12)  # fmt: skip
MINI_D = dict(img_resolution=64, num_additional_start_blocks=1, channel_base=2048, channel_max=128,
              mbstd_group_size=4, hyper_mod=True)  # fmt: skip
PATCH_RES = 64
R1_GAMMA, BLUR_SIGMA, BLUR_KIMG, D_REG_INTERVAL = 0.1, 10.0, 200.0, 16
PHASE_GAINS = {"Gall": 1, "Dmain": 1, "Dreg": D_REG_INTERVAL}
LOSS_KEYS = {
    "Gall": ("Loss/scores/fake", "Loss/G/loss"),
    "Dmain": ("Loss/scores/fake", "Loss/scores/real", "Loss/D/loss"),
    "Dreg": ("Loss/scores/real", "Loss/D/r1_penalty", "Loss/D/reg"),
}


class Side:
    """One implementation's networks, loss and Adam optimisers (the official settings), phase by phase."""

    def __init__(self, name: str, G: torch.nn.Module, D: torch.nn.Module, loss, official) -> None:
        self.name, self.G, self.D, self.loss, self.official = name, G, D, loss, official
        self.G_opt = torch.optim.Adam(G.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
        ratio = D_REG_INTERVAL / (D_REG_INTERVAL + 1)  # lazy regularisation, as both training loops
        self.D_opt = torch.optim.Adam(D.parameters(), lr=0.002 * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)

    def phase(self, phase: str, inputs: dict[str, torch.Tensor], seed: int, step: bool = True) -> dict[str, float]:
        """Run one phase (zero_grad, accumulate, optional Adam step); returns the mean of each reported loss."""
        module, opt = (self.G, self.G_opt) if phase == "Gall" else (self.D, self.D_opt)
        opt.zero_grad(set_to_none=True)
        module.requires_grad_(True)
        x = {k: v.clone() for k, v in inputs.items()}  # the official renderer clamps the pitch in place
        common = dict(real_img=x["real"], real_c=x["c"], real_camera_angles=x["real_angles"], gen_z=x["z"],
                      gen_c=x["c"], gen_camera_angles=x["angles"], gain=PHASE_GAINS[phase], cur_nimg=0)  # fmt: skip
        torch.manual_seed(seed)
        if self.official is not None:
            np.random.seed(seed)  # the official patch scales come from numpy's global generator
            stats = self.official.collect(
                lambda: self.loss.accumulate_gradients(phase, gen_camera_angles_cond=x["angles"], **common)
            )
        else:
            rng, gen = np.random.RandomState(seed), torch.Generator().manual_seed(seed)
            stats = self.loss.accumulate_gradients(phase, gen_camera_angles_cond=None, rng=rng, generator=gen, **common)
        module.requires_grad_(False)
        if step:
            opt.step()
        return {k: float(torch.as_tensor(v).float().mean()) for k, v in stats.items()}


class OfficialStats:
    """Collects what the official loss reports through ``training_stats.report`` (it returns nothing)."""

    def __init__(self, off) -> None:
        self.module = off.loss.training_stats

    def collect(self, fn) -> dict[str, torch.Tensor]:
        seen: dict[str, torch.Tensor] = {}
        report = self.module.report

        def capture(name, value):
            seen[name] = torch.as_tensor(value).detach()
            return report(name, value)

        self.module.report = capture
        try:
            fn()
        finally:
            self.module.report = report
        return seen


def build_sides(
    official_src: Path, g_kwargs: dict = MINI_G, d_kwargs: dict = MINI_D, patch_res: int = PATCH_RES
) -> tuple[object, Side, Side]:
    """(official modules, official side, our side) with the same initial weights (our random init, copied)."""
    from official_side import build_discriminator, build_generator, build_loss, import_official

    from epigraf_tools.models import Generator, GeneratorConfig
    from epigraf_tools.models.discriminator import Discriminator, DiscriminatorConfig
    from epigraf_tools.training.loss import EpiGRAFLoss
    from epigraf_tools.training.patches import PatchSampler

    off = import_official(official_src)
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(**g_kwargs)).train()
    D = Discriminator(DiscriminatorConfig(**d_kwargs)).train()
    G_off = build_generator(off, G, patch_res=patch_res).train()
    D_off = build_discriminator(off, D, image_res=G.config.img_resolution).train()
    for net in (G, D, G_off, D_off):
        net.requires_grad_(False)
    sampler = PatchSampler(resolution=patch_res, image_resolution=G.config.img_resolution, group_size=4)
    blur = dict(blur_init_sigma=BLUR_SIGMA, blur_fade_kimg=BLUR_KIMG)
    ours = EpiGRAFLoss(G, D, sampler, r1_gamma=R1_GAMMA, **blur)
    theirs = build_loss(off, G_off, D_off, r1_gamma=R1_GAMMA, **blur)
    G.progressive_update(0.0)
    G_off.progressive_update(0.0)
    return off, Side("official", G_off, D_off, theirs, OfficialStats(off)), Side("ours", G, D, ours, None)


def make_inputs(batch: int, seed: int, img_resolution: int = 128, z_dim: int = 512) -> dict[str, torch.Tensor]:
    """Random reals in [-1, 1], z, empty labels and near-frontal cameras (the content does not change the cost)."""
    g = torch.Generator().manual_seed(seed)

    def angles() -> torch.Tensor:
        yaw = torch.rand(batch, generator=g) - 0.5
        pitch = np.pi / 2 + (torch.rand(batch, generator=g) - 0.5) * 0.4
        return torch.stack([yaw, pitch, torch.zeros(batch)], dim=1)

    real = torch.rand(batch, 3, img_resolution, img_resolution, generator=g) * 2 - 1
    return dict(real=real, z=torch.randn(batch, z_dim, generator=g), c=torch.zeros(batch, 0), angles=angles(),
                real_angles=angles())  # fmt: skip


def fixed_patches(batch: int) -> dict[str, torch.Tensor]:
    """Patch parameters for the same-inputs check: two groups with different scales and offsets."""
    scales = torch.tensor([0.75] * (batch // 2) + [0.5] * (batch - batch // 2)).repeat(2, 1).T.contiguous()
    offsets = torch.tensor([[0.05, 0.2]] * (batch // 2) + [[0.3, 0.1]] * (batch - batch // 2))
    return {"scales": scales, "offsets": offsets}


def same_inputs_check(off, official: Side, ours: Side, inputs: dict[str, torch.Tensor]) -> dict[str, dict]:
    """Each phase once per side with no random draw left; returns per phase both sides' losses and the grad gap."""
    from official_side import deterministic_rays, forced_kwargs

    patch = fixed_patches(inputs["z"].shape[0])
    draw_patch = lambda *a, **k: {n: v.clone() for n, v in patch.items()}  # noqa: E731
    saved_sampler = off.loss.sample_patch_params
    saved_noise = official.G.synthesis.nerf_noise_std, ours.G.nerf_noise_std
    off.loss.sample_patch_params = draw_patch
    ours.loss.patch_sampler.sample = draw_patch
    official.G.synthesis.forward = forced_kwargs(official.G.synthesis.forward, noise_mode="const")
    ours.G.forward = forced_kwargs(ours.G.forward, noise_mode="const", deterministic=True)
    official.G.synthesis.nerf_noise_std = ours.G.nerf_noise_std = 0.0
    out: dict[str, dict] = {}
    try:
        for phase in PHASE_GAINS:
            with deterministic_rays(off):
                theirs = official.phase(phase, inputs, seed=0, step=False)
            mine = ours.phase(phase, inputs, seed=0, step=False)
            nets = (official.G, ours.G) if phase == "Gall" else (official.D, ours.D)
            g_off = {n: p.grad for n, p in nets[0].named_parameters() if p.grad is not None}
            g_ours = {n: p.grad for n, p in nets[1].named_parameters() if p.grad is not None}
            gap = max((g_off[n] - g_ours[n]).abs().max().item() for n in g_off)
            scale = max(g.abs().max().item() for g in g_off.values())
            keys = LOSS_KEYS[phase]
            out[phase] = dict(
                official={k: theirs[k] for k in keys},
                ours={k: mine[k] for k in keys},
                grads=(len(g_off), len(g_ours), set(g_off) == set(g_ours)),
                grad_gap=gap,
                grad_max=scale,
            )
    finally:
        off.loss.sample_patch_params = saved_sampler
        del official.G.synthesis.forward, ours.G.forward, ours.loss.patch_sampler.sample
        official.G.synthesis.nerf_noise_std, ours.G.nerf_noise_std = saved_noise
        for side in (official, ours):
            side.G_opt.zero_grad(set_to_none=True)
            side.D_opt.zero_grad(set_to_none=True)
    return out


def print_check(check: dict[str, dict]) -> None:
    print("same inputs, no random draws (fixed patches, deterministic rays, constant noise, nerf noise 0):")
    for phase, row in check.items():
        off_vals, our_vals = row["official"], row["ours"]
        cells = ", ".join(f"{k.split('/')[-1]} {off_vals[k]:.6f} / {our_vals[k]:.6f}" for k in off_vals)
        n_off, n_ours, same = row["grads"]
        print(f"  {phase:5s} official / ours: {cells}")
        print(f"        gradients of {n_off} / {n_ours} tensors{'' if same else ' (names differ!)'}: "
              f"max |difference| {row['grad_gap']:.2e} (largest gradient {row['grad_max']:.2e})")  # fmt: skip


def official_comparison(args: argparse.Namespace) -> None:
    off, official, ours = build_sides(args.official_src)
    ours.G.fast_cpu_field = not args.grid_sample_field
    inputs = make_inputs(args.batch, 1)
    field = "grid_sample reference field" if args.grid_sample_field else "fast training field"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, mini architecture, "
          f"ours with the {field}, official code from {off.root}")  # fmt: skip
    print_check(same_inputs_check(off, official, ours, inputs))
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    times = {c: {s.name: {p: [] for p in PHASE_GAINS} for s in (official, ours)} for c in clocks}
    for i in range(args.warmup + args.steps):
        for side in (official, ours):  # alternating, so the machine's load hits both alike
            for phase in PHASE_GAINS:
                start = {c: clock() for c, clock in clocks.items()}
                side.phase(phase, inputs, seed=100 + i)
                if i >= args.warmup:
                    for c, clock in clocks.items():
                        times[c][side.name][phase].append(clock() - start[c])
    print(f"timed: median of {args.steps} steps after {args.warmup} warm-up steps (s); "
          f"step = Gall + Dmain + Dreg / {D_REG_INTERVAL} (R1 runs every {D_REG_INTERVAL}th step)")  # fmt: skip
    for c in clocks:
        totals = {}
        for name, phases in times[c].items():
            med = {p: statistics.median(v) for p, v in phases.items()}
            totals[name] = med["Gall"] + med["Dmain"] + med["Dreg"] / D_REG_INTERVAL
            cells = "  ".join(f"{p} {m:6.2f}" for p, m in med.items())
            rate_text = f" = {args.batch / totals[name] * 3.6:.2f} kimg/h" if c == "wall" else ""
            print(f"  {c:4s} {name:8s} {cells}   step {totals[name]:6.2f} s{rate_text}")
        print(f"  {c:4s} speedup of ours vs official: {totals['official'] / totals['ours']:.2f}x per step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--official-src", type=Path, default=None, metavar="PATH",
                        help="an official EpiGRAF checkout: time one G+D step of it against ours")  # fmt: skip
    parser.add_argument("--grid-sample-field", action="store_true",
                        help="with --official-src: our side renders through the grid_sample field")  # fmt: skip
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 4 or args.batch % 4:
        parser.error("--steps must be >= 1, --warmup >= 0 and --batch a positive multiple of 4 (the mbstd group)")
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    if args.official_src is not None:
        official_comparison(args)
        return

    from epigraf_tools.training.config import TrainConfig, preset

    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp), 64, 64)
        base = {**preset("small"), "data": str(data), "out": str(Path(tmp) / "run"), "device": "cpu"}
        base.update(batch=args.batch, grid_size=0, d_reg_interval=16)
        patch = TrainConfig(**base)
        whole = TrainConfig(**{**base, "patch_res": 64})
        py = sys.version.split()[0]
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, python {py}")
        kimg_a, sec_a = measure(patch, args.steps, args.warmup)
        print(f"A patch-wise (64^2 images, 32^2 patches): {sec_a:.2f} s/step, {rate(kimg_a)}")
        kimg_b, sec_b = measure(whole, args.steps, args.warmup)
        print(f"B whole images (64^2):                   {sec_b:.2f} s/step, {rate(kimg_b)}")
        print(f"ratio A / B: {kimg_a / kimg_b:.2f}x")


if __name__ == "__main__":
    main()
