"""models/mapping.py: angle normalisation, shapes, z normalisation, truncation, the w_avg EMA, camera conditioning."""

from __future__ import annotations

import math

import pytest
import torch

from epigraf_tools.models.mapping import MappingNetwork, normalize_angles


def test_normalize_angles_known_values():
    angles = torch.tensor([0.0, math.pi, -math.pi / 2, 2 * math.pi + math.pi / 2, -3 * math.pi])
    torch.testing.assert_close(normalize_angles(angles), torch.tensor([0.0, 0.5, -0.25, 0.25, -0.5]))


def _net(**kwargs) -> MappingNetwork:
    torch.manual_seed(0)
    net = MappingNetwork(**{"z_dim": 8, "c_dim": 0, "w_dim": 6, "num_ws": 4, **kwargs}).eval()
    with torch.no_grad():
        net.w_avg.normal_()
    return net


def test_shapes_with_and_without_num_ws():
    z = torch.randn(3, 8)
    assert _net()(z, None).shape == (3, 4, 6)
    assert MappingNetwork(z_dim=8, c_dim=0, w_dim=6, num_ws=None)(z, None).shape == (3, 6)
    assert _net(c_dim=2)(z, torch.eye(2)[[0, 1, 1]]).shape == (3, 4, 6)


def test_every_w_of_a_sample_is_the_same_before_truncation():
    ws = _net()(torch.randn(2, 8), None)
    torch.testing.assert_close(ws, ws[:, :1].expand_as(ws))


def test_z_is_normalised_so_its_scale_does_not_matter():
    net, z = _net(), torch.randn(2, 8)
    torch.testing.assert_close(net(z, None), net(5 * z, None), atol=1e-5, rtol=1e-5)


def test_truncation_lerps_towards_w_avg():
    net, z = _net(), torch.randn(2, 8)
    w = net(z, None)
    torch.testing.assert_close(net(z, None, truncation_psi=0.0), net.w_avg.expand_as(w))
    torch.testing.assert_close(net(z, None, truncation_psi=0.5), (w + net.w_avg) / 2, atol=1e-6, rtol=1e-6)
    cut = net(z, None, truncation_psi=0.0, truncation_cutoff=1)
    torch.testing.assert_close(cut[:, 0], net.w_avg.expand(2, 6))
    torch.testing.assert_close(cut[:, 1:], w[:, 1:])


def test_update_emas_moves_w_avg_towards_the_batch_mean():
    net, z = _net(w_avg_beta=0.9), torch.randn(16, 8)
    before = net.w_avg.clone()
    mean = net(z, None)[:, 0].mean(dim=0)
    net(z, None, update_emas=True)
    torch.testing.assert_close(net.w_avg, mean + 0.9 * (before - mean), atol=1e-6, rtol=1e-6)
    after = net.w_avg.clone()
    net(z, None)
    torch.testing.assert_close(net.w_avg, after)  # no update unless asked


def test_camera_conditioning_needs_angles_in_training_and_uses_the_mean_pose_at_eval():
    pose = torch.tensor([0.3, 1.2, 0.0])
    net = _net(camera_cond=True, mean_camera_pose=pose)
    z = torch.randn(2, 8)
    torch.testing.assert_close(net(z, None), net(z, None, camera_angles=pose.expand(2, 3)))
    assert not torch.allclose(net(z, None), net(z, None, camera_angles=torch.tensor([[2.0, 0.5, 0.0]] * 2)))
    net.train()
    with pytest.raises(ValueError, match="camera_angles"):
        net(z, None)
