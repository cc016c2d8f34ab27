"""The fast inference fields and the separable volume on a CUDA device equal the CPU results.

Marked ``cuda``: skipped where torch sees no CUDA device; ``benchmarks/gpu_check.py`` runs them.
Tolerance 1e-4: GPU kernels sum in other orders (and may use TF32 in matmuls where enabled).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epigraf_tools.models.fast_field import FastTriPlaneField
from epigraf_tools.models.triplane import TriPlaneMLP

pytestmark = pytest.mark.cuda


def test_fast_field_on_cuda_equals_cpu():
    torch.manual_seed(0)
    mlp = TriPlaneMLP(feat_dim=8, hid_dim=16).eval()
    planes = torch.randn(1, 3, 8, 16, 16)
    points = (torch.rand(1, 300, 3) * 2 - 1) * 0.25
    cpu = FastTriPlaneField(planes, mlp, 0.2)(points)
    gpu = FastTriPlaneField(planes.cuda(), mlp.cuda(), 0.2)(points.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


def test_separable_volume_on_cuda_equals_cpu():
    from epigraf_tools.volume import extract_density

    from support import make_tiny_generator

    G = make_tiny_generator()
    planes = torch.randn(1, 3, G.config.feat_dim, 16, 16)
    cpu = extract_density(G, planes, resolution=9, method="separable")
    gpu = extract_density(G.cuda(), planes.cuda(), resolution=9, method="separable")
    np.testing.assert_allclose(gpu, cpu, atol=1e-4, rtol=1e-4)
