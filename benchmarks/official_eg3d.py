"""The official EG3D code as the other side of a benchmark, imported at run time from a checkout.

Nothing of NVlabs/eg3d is in this repository (NVIDIA's non-commercial licence): ``--official-src``
points at the ``eg3d/`` folder of a checkout (the one holding ``training/triplane.py`` and
``gen_samples.py``), which is put on ``sys.path`` here. It runs on the CPU through its own
pure-PyTorch reference ops (no CUDA plugin is built) and needs nothing beyond this project's
dependencies (it imports click, which typer brings).

Both sides run the same weights: the official ``TriPlaneGenerator`` is built at the FFHQ
configuration of EG3D's ``train.py --cfg=ffhq`` (random initialisation, seeded), and its state dict
loads strictly into our ``EG3DGenerator``, whose parameter names are the official ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from epigraf_tools.models.eg3d import EG3DConfig, EG3DGenerator


def import_official(src: str | Path) -> Path:
    """Put the official ``eg3d/`` folder on sys.path (once) and return it; a wrong folder is one clear error."""
    root = Path(src).expanduser().resolve()
    if (root / "eg3d" / "training" / "triplane.py").is_file():
        root = root / "eg3d"
    if not (root / "training" / "triplane.py").is_file() or not (root / "gen_samples.py").is_file():
        raise SystemExit(f"--official-src {src}: not an EG3D checkout (no training/triplane.py and gen_samples.py)")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return root


def official_ffhq_generator(src: str | Path, seed: int = 0) -> torch.nn.Module:
    """The official TriPlaneGenerator at the FFHQ configuration (the ffhq512-128 architecture), in eval mode."""
    import_official(src)
    from training.triplane import TriPlaneGenerator  # the official class, from the user's checkout

    cfg = EG3DConfig()  # our defaults are train.py --cfg=ffhq's (see models/eg3d/config.py)
    torch.manual_seed(seed)
    G = TriPlaneGenerator(
        z_dim=cfg.z_dim,
        c_dim=cfg.c_dim,
        w_dim=cfg.w_dim,
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
        mapping_kwargs=dict(cfg.mapping_kwargs),
        channel_base=cfg.channel_base,
        channel_max=cfg.channel_max,
        fused_modconv_default=cfg.fused_modconv_default,
        rendering_kwargs=dict(cfg.rendering_kwargs),
        num_fp16_res=cfg.num_fp16_res,
        sr_num_fp16_res=cfg.sr_num_fp16_res,
        sr_kwargs={
            "channel_base": cfg.channel_base,
            "channel_max": cfg.channel_max,
            "fused_modconv_default": "inference_only",
        },
        conv_clamp=cfg.conv_clamp,
    )
    G.neural_rendering_resolution = 128
    return G.eval().requires_grad_(False)


def ours_from_official(official: torch.nn.Module) -> EG3DGenerator:
    """Our EG3DGenerator with the official generator's weights (strict: every name must match)."""
    G = EG3DGenerator(EG3DConfig(neural_rendering_resolution=128)).eval()
    state = official.state_dict()
    state.setdefault("dataset_label_std", torch.zeros(G.c_dim))  # registered by the official training loop only
    G.load_state_dict(state, strict=True)
    return G.requires_grad_(False)


@torch.no_grad()
def official_shapes_volume(
    G: torch.nn.Module,
    z: torch.Tensor,
    c: torch.Tensor,
    resolution: int,
    psi: float = 0.7,
    cutoff: int = 14,
    max_batch: int = 1_000_000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """EG3D's ``gen_samples.py --shapes`` procedure: its own sample grid, ``G.sample`` in 1M-point chunks.

    As the official script does, each chunk maps z and synthesises the tri-planes again. Returns the
    raw sigma [N] in the grid's order and the sample points [N, 3] (the official ``create_samples``).
    """
    from gen_samples import create_samples  # the official grid builder, from the user's checkout

    samples, _origin, _size = create_samples(
        N=resolution, voxel_origin=[0, 0, 0], cube_length=G.rendering_kwargs["box_warp"]
    )
    samples = samples.to(z.device)
    sigmas = torch.zeros(samples.shape[0], samples.shape[1], 1)
    directions = torch.zeros_like(samples)
    directions[0, :, -1] = -1
    for head in range(0, samples.shape[1], max_batch):
        part = slice(head, head + max_batch)
        sigmas[:, part] = G.sample(
            samples[:, part],
            directions[:, part],
            z,
            c,
            truncation_psi=psi,
            truncation_cutoff=cutoff,
            noise_mode="const",
        )["sigma"]
    return sigmas.reshape(-1), samples[0]
