"""Blur schedule and kernel, R1 on a known case, and one G+D step with finite gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from epigraf_tools.models.discriminator import Discriminator, DiscriminatorConfig
from epigraf_tools.training.loss import EpiGRAFLoss, blur_images, blur_kernel, blur_sigma, r1_penalty
from epigraf_tools.training.patches import PatchSampler

from support import make_tiny_generator


def test_blur_schedule():
    assert blur_sigma(0, 10, 200) == 10
    assert blur_sigma(100_000, 10, 200) == pytest.approx(5)
    assert blur_sigma(200_000, 10, 200) == 0
    assert blur_sigma(1e9, 10, 200) == 0
    assert blur_sigma(0, 10, 0) == 0


def test_blur_kernel_is_base_two_gaussian():
    f = blur_kernel(10.0)
    assert f.numel() == 61  # floor(3 sigma) = 30 on each side
    t = torch.arange(-30, 31, dtype=torch.float32)
    ref = 2.0 ** (-((t / 10) ** 2))
    assert torch.allclose(f, ref / ref.sum())
    assert blur_kernel(0.3) is None  # floor(0.9) = 0: no blur


def test_blur_matches_2d_filter_and_keeps_constant_interior():
    img = torch.randn(2, 3, 16, 16)
    sigma = 1.5
    f = blur_kernel(sigma)
    k = torch.outer(f, f)[None, None].repeat(3, 1, 1, 1)
    ref = torch.nn.functional.conv2d(img, k, padding=f.numel() // 2, groups=3)
    assert torch.allclose(blur_images(img, sigma), ref, atol=1e-5)
    ones = blur_images(torch.ones(1, 1, 32, 32), 1.0)
    assert ones[0, 0, 16, 16] == pytest.approx(1.0, abs=1e-6)  # normalised taps
    assert torch.equal(blur_images(img, 0.0), img)


def test_r1_penalty_known_case():
    w = torch.randn(3, 4, 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (x * w).sum(dim=[1, 2, 3]) + 0.5 * (x**2).sum(dim=[1, 2, 3])
    penalty = r1_penalty(logits, x)  # gradient = w + x
    expected = (w + x).square().sum(dim=[1, 2, 3])
    assert torch.allclose(penalty, expected.detach(), atol=1e-5)
    penalty.sum().backward()  # differentiable (create_graph)
    assert torch.allclose(x.grad, 2 * (w + x).detach(), atol=1e-5)


def _setup(gamma=1.0):
    G = make_tiny_generator(0, img_resolution=32).train().requires_grad_(False)
    torch.manual_seed(1)
    D = (
        Discriminator(
            DiscriminatorConfig(
                img_resolution=16, num_additional_start_blocks=1, channel_base=256, channel_max=32, hyper_mod_dim=32
            )
        )
        .train()
        .requires_grad_(False)
    )
    sampler = PatchSampler(resolution=16, image_resolution=32)
    return G, D, EpiGRAFLoss(G, D, sampler, r1_gamma=gamma, blur_init_sigma=2.0, blur_fade_kimg=1.0)


def _inputs(G, b=4):
    torch.manual_seed(2)
    return dict(
        real_img=torch.rand(b, 3, 32, 32) * 2 - 1,
        real_c=torch.zeros(b, 0),
        real_camera_angles=torch.tensor([[0.1, 1.5, 0.0]] * b),
        gen_z=torch.randn(b, G.z_dim),
        gen_c=torch.zeros(b, 0),
        gen_camera_angles=torch.tensor([[-0.1, 1.6, 0.0]] * b),
        gen_camera_angles_cond=None,
        cur_nimg=0,
    )


def test_one_generator_and_discriminator_step_has_finite_gradients():
    G, D, loss = _setup()
    inputs = _inputs(G)
    G.progressive_update(0)
    G.requires_grad_(True)
    stats = loss.accumulate_gradients(
        "Gall", **inputs, gain=1.0, rng=np.random.RandomState(0), generator=torch.Generator().manual_seed(0)
    )
    G.requires_grad_(False)
    assert torch.isfinite(stats["Loss/G/loss"]).all()
    grads = {n: p.grad for n, p in G.named_parameters()}
    trained = [n for n in grads if not n.startswith("mapping.embed")]
    assert all(grads[n] is not None and torch.isfinite(grads[n]).all() for n in trained)
    assert any(grads[n].abs().sum() > 0 for n in trained if "tri_plane_mlp" in n)
    assert all(p.grad is None for p in D.parameters())  # D is frozen in the G phase

    D.requires_grad_(True)
    for phase in ("Dmain", "Dreg"):
        stats = loss.accumulate_gradients(
            phase, **inputs, gain=1.0, rng=np.random.RandomState(0), generator=torch.Generator().manual_seed(0)
        )
        assert all(torch.isfinite(v).all() for v in stats.values()), phase
    D.requires_grad_(False)
    assert "Loss/D/loss" in stats or "Loss/D/r1_penalty" in stats
    for name, p in D.named_parameters():
        if ".fromrgb." in name and not name.startswith(f"b{D.block_resolutions[0]}."):
            continue  # only the first block reads RGB
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_dreg_reports_r1_of_the_unblurred_real_patch():
    G, D, loss = _setup(gamma=2.0)
    inputs = _inputs(G)
    D.requires_grad_(True)
    stats = loss.accumulate_gradients(
        "Dreg", **inputs, gain=1.0, rng=np.random.RandomState(5), generator=torch.Generator().manual_seed(5)
    )
    assert torch.allclose(stats["Loss/D/reg"], stats["Loss/D/r1_penalty"] * 1.0)  # gamma / 2
    real, patch = loss._real_patches(inputs["real_img"], np.random.RandomState(5), torch.Generator().manual_seed(5))
    real.requires_grad_(True)
    logits = loss.run_D(real, inputs["real_c"], blur_sigma(0, 2.0, 1.0), patch, inputs["real_camera_angles"])
    assert torch.allclose(r1_penalty(logits, real), stats["Loss/D/r1_penalty"], rtol=1e-4)


def test_gpc_spoof_schedule():
    G, D, loss = _setup()
    assert loss.gpc_spoof_p == 1.0
    loss.progressive_update(500)
    assert loss.gpc_spoof_p == pytest.approx(0.75)
    loss.progressive_update(5000)
    assert loss.gpc_spoof_p == pytest.approx(0.5)
    assert math.isclose(loss.patch_sampler.beta, 0.001 + 0.799 * 0.5)
