"""The mapping network: z (+ class label, + optional camera angles) -> w, with truncation.

EpiGRAF uses two fully connected layers (lr multiplier 0.01) instead of StyleGAN2's eight. The same
class, with z_dim 0, is the discriminator's patch hyper-network and projection head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import FullyConnectedLayer, ScalarEncoder1d, normalize_2nd_moment


def normalize_angles(angles: torch.Tensor) -> torch.Tensor:
    """Map angles (radians) to sign(a) * ((|a| mod 2 pi) / 2 pi), as camera conditioning expects."""
    return angles.sign() * ((angles.abs() % (2 * math.pi)) / (2 * math.pi))


def truncate_ws(ws: torch.Tensor, centre: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    """The truncation trick, written once: centre + psi (w - centre) on ``ws[:, :cutoff]`` (all when None).

    ws [B, num_ws, w_dim]; centre [w_dim] (``w_avg``) or [B, w_dim] (a centre per sample, e.g. the
    class means the toolkit uses). psi == 1 returns ``ws`` itself. The lerp is elementwise, so a
    shared or per-sample centre gives the official call's bits for the same values.
    """
    if psi == 1:
        return ws
    centre = centre.reshape(-1, 1, ws.shape[-1]).to(ws)
    if cutoff is None:
        return centre.lerp(ws, psi)
    out = ws.clone()
    out[:, :cutoff] = centre.lerp(ws[:, :cutoff], psi)
    return out


class MappingNetwork(nn.Module):
    """z [B, z_dim], c [B, c_dim] -> w [B, w_dim] or [B, num_ws, w_dim].

    ``camera_cond`` appends the (normalised) yaw and pitch to the class label (generator pose
    conditioning, GPC); with ``camera_raw_scalars`` the raw values are used, otherwise Fourier
    features (the discriminator's default).
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 2,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.998,
        camera_cond: bool = False,
        camera_raw_scalars: bool = False,
        camera_cond_drop_p: float = 0.0,
        camera_cond_noise_std: float = 0.0,
        mean_camera_pose: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        self.camera_cond = camera_cond
        self.camera_cond_drop_p = camera_cond_drop_p
        self.camera_cond_noise_std = camera_cond_noise_std

        if camera_cond:
            if camera_raw_scalars:
                self.camera_scalar_enc = ScalarEncoder1d(2, x_multiplier=0, const_emb_dim=0, use_raw=True)
            else:
                self.camera_scalar_enc = ScalarEncoder1d(2, x_multiplier=64, const_emb_dim=0)
            c_dim = c_dim + self.camera_scalar_enc.out_dim
        else:
            self.camera_scalar_enc = None
        self.c_dim_total = c_dim

        embed_features = w_dim if embed_features is None else embed_features
        if c_dim == 0:
            embed_features = 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation=activation, lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))
        if mean_camera_pose is not None:
            self.register_buffer("mean_camera_pose", torch.as_tensor(mean_camera_pose, dtype=torch.float32))
        else:
            self.mean_camera_pose = None

    def encode_camera(self, camera_angles: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """[B, 3] (yaw, pitch, roll) -> conditioning features [B, E]; missing angles at eval use the
        mean training pose."""
        if camera_angles is None:
            if self.training or self.mean_camera_pose is None:
                raise ValueError("camera-conditioned mapping needs camera_angles [B, 3]")
            camera_angles = self.mean_camera_pose.unsqueeze(0).repeat(batch_size, 1)
        angles = camera_angles[:, [0, 1]]
        if self.training and self.camera_cond_noise_std > 0:
            angles = angles + self.camera_cond_noise_std * torch.randn_like(angles) * angles.std(dim=0)
        feats = self.camera_scalar_enc(normalize_angles(angles))
        return F.dropout(feats, p=self.camera_cond_drop_p, training=self.training)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        camera_angles: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Return w; broadcast to [B, num_ws, w_dim] when num_ws is set.

        Truncation lerps the first ``truncation_cutoff`` ws (all when None) towards the ``w_avg``
        buffer (``truncate_ws``; per-class centres are the toolkit's, see ``epigraf_tools.latents``).
        """
        batch = z.shape[0] if z is not None and z.ndim == 2 else (c.shape[0] if c is not None else 1)
        x = None
        if self.z_dim > 0:
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim_total > 0:
            cond = c.to(torch.float32) if c is not None and c.shape[1] > 0 else None
            if self.camera_scalar_enc is not None:
                cam = self.encode_camera(camera_angles, batch)
                cond = cam if cond is None else torch.cat([cond, cam], dim=1)
            y = normalize_2nd_moment(self.embed(cond))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas and self.w_avg_beta is not None and self.num_ws is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        return truncate_ws(x, self.w_avg, truncation_psi, truncation_cutoff)
