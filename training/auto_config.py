"""Defaults that fit the data and the machine: network widths from the resolution, a batch chunk that fits.

Network widths ('auto', the None default of the TrainConfig options in AUTO_OPTIONS) follow the
training resolution R, in the spirit of StyleGAN2-ADA's ``--cfg auto``: at R >= 256 they are the
official EpiGRAF values (so the FFHQ-512 and 256^2 recipes are unchanged), below they shrink in
proportion to R, because a 32 px dataset does not need 512^2 tri-planes and 512-channel layers
(the FFHQ-size networks on a 32 px set were killed at 24 GB before their first tick):

=========================  ==========================  =============================
option                     R >= 256                     R < 256
=========================  ==========================  =============================
triplane_res               R (the official: 512, 256)   max(R, 32)
g_channel_base             32768                        32768 * R / 256
g_channel_max, d_...max    512                          max(64, 512 * R / 256)
d_channel_base             16384                        16384 * R / 256
patch_res                  64                           64 if R >= 128, else R / 2
=========================  ==========================  =============================

The per-process chunk ``batch_gpu`` ('auto' = None) is the largest divisor of the per-process batch
whose estimated step memory (``estimate_step_bytes``) fits the device's budget (``memory_budget``):
a fixed fraction of a GPU's total memory, and a fixed 3 GiB on the CPU, so that the choice is the
same on every run of a machine (resumption stays exact). A configuration that does not fit even
with chunks of one sample is refused before any work.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from epigraf_tools.errors import EpigrafError

if TYPE_CHECKING:
    from epigraf_tools.models import GeneratorConfig
    from epigraf_tools.models.discriminator import DiscriminatorConfig

AUTO_OPTIONS: tuple[str, ...] = (
    "triplane_res",
    "g_channel_base",
    "g_channel_max",
    "d_channel_base",
    "d_channel_max",
    "patch_res",
)
FULL_SIZE_RESOLUTION = 256  # at and above: the official widths
CPU_BUDGET_BYTES = 3 * 2**30  # a step plus the networks stay below this on the CPU (RSS target: 4 GB)
GPU_BUDGET_FRACTION = 0.7  # of the GPU's total memory (the rest: allocator slack, cuDNN workspaces)
# Bytes per counted activation float: float32 times 2, what autograd keeps beyond the counted layer
# outputs (pre-activations, masks, backward temporaries) plus a margin. Calibrated on CPU steps of
# the auto defaults (peak RSS from /usr/bin/time -v, docs/training.md "Defaults that fit"): 64^2
# data with chunks of 8 peaked at 1.73 GB where this estimates 2.2 GiB; 32^2 with chunks of 16 at
# 1.03 GB where it estimates 1.3 GiB.
ACTIVATION_BYTES = 4 * 2.0
BASE_BYTES = 600 * 2**20  # torch, the data cache and the allocator's own footprint on the CPU


def auto_value(name: str, resolution: int) -> int:
    """The 'auto' value of one of AUTO_OPTIONS for training at ``resolution`` (a power of two)."""
    r = resolution
    scale = min(r, FULL_SIZE_RESOLUTION) / FULL_SIZE_RESOLUTION
    if name == "triplane_res":
        return max(r, 32) if r < FULL_SIZE_RESOLUTION else r
    if name == "g_channel_base":
        return int(32768 * scale)
    if name in ("g_channel_max", "d_channel_max"):
        return max(64, int(512 * scale))
    if name == "d_channel_base":
        return int(16384 * scale)
    if name == "patch_res":
        return 64 if r >= 128 else max(r // 2, 4)
    raise KeyError(name)


def _parameter_count(module_cls: type, config: Any) -> int:
    """Parameters of a network built once on the CPU, with the caller's random state left untouched.

    Not on the meta device: its first use imports torch's reference ops, 6-12 s on a busy CPU, more
    than building the networks (a second for the FFHQ-size G)."""
    key = (module_cls, repr(config))  # configs hold lists: their text is the cache key
    if key not in _COUNTS:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            net = module_cls(config)
        _COUNTS[key] = sum(p.numel() for p in net.parameters())
    return _COUNTS[key]


_COUNTS: dict[tuple[type, str], int] = {}  # a few entries per process (one per configuration tried)


def _synthesis_floats(g: GeneratorConfig) -> float:
    """Activations per sample of the tri-plane backbone (all blocks up to triplane_res) and the planes."""
    total = 0.0
    res = 4
    while res <= g.triplane_res:
        total += min(g.channel_base // res, g.channel_max) * res * res * 2  # two conv layers per block
        res *= 2
    return total + 3 * g.feat_dim * g.triplane_res**2


def _render_floats(g: GeneratorConfig, patch_res: int) -> float:
    """Activations per sample of rendering one patch: coarse + fine points, plane features, MLP."""
    points = patch_res**2 * 2 * g.num_ray_steps
    per_point = 3 * g.feat_dim + g.mlp_hid_dim * g.mlp_n_layers + 16  # features, hidden, coordinates/weights
    return points * per_point


def _discriminator_floats(d: DiscriminatorConfig) -> float:
    total = 0.0
    res = d.img_resolution
    while res >= 4:
        total += min(d.channel_base // res, d.channel_max) * res * res * 3  # two convs and a skip per block
        res //= 2
    return total


def estimate_step_bytes(g: GeneratorConfig, d: DiscriminatorConfig, batch_gpu: int) -> int:
    """Peak memory of a training step with chunks of ``batch_gpu`` samples (an estimate, see above).

    Fixed part: G (parameter, gradient, two Adam moments), its EMA copy, and D likewise. Per sample:
    the larger of the G phase (G and D activations with their gradients) and the R1 phase (D's
    double backward, about three D passes on real patches).
    """
    fixed, per_sample = _step_bytes(g, d)
    return int(fixed + batch_gpu * per_sample)


def _step_bytes(g: GeneratorConfig, d: DiscriminatorConfig) -> tuple[float, float]:
    """(fixed bytes, bytes per sample) of ``estimate_step_bytes`` (the networks are built once)."""
    from epigraf_tools.models import Generator
    from epigraf_tools.models.discriminator import Discriminator

    fixed = (5 * _parameter_count(Generator, g) + 4 * _parameter_count(Discriminator, d)) * 4
    d_act = _discriminator_floats(d)
    g_phase = _synthesis_floats(g) + _render_floats(g, d.img_resolution) + d_act
    return BASE_BYTES + fixed, max(g_phase, 3 * d_act) * ACTIVATION_BYTES


def memory_budget(device: torch.device) -> int:
    """Bytes a training step may use on ``device`` (fixed per machine, so runs choose alike)."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * GPU_BUDGET_FRACTION)
    return CPU_BUDGET_BYTES


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def chunk_candidates(per_process_batch: int, group_size: int) -> list[int]:
    """The chunks a step may be cut into, largest first: divisors of the per-process batch that the
    minibatch-std groups divide, or that are smaller than a group and divide it."""
    return [
        b
        for b in range(per_process_batch, 0, -1)
        if per_process_batch % b == 0 and (b % group_size == 0 or group_size % b == 0)
    ]


def smaller_batch_gpu(batch_gpu: int, per_process_batch: int, group_size: int) -> int | None:
    """The chunk to retry with after running out of memory: the largest candidate at most half of
    ``batch_gpu`` (None when it is the smallest already)."""
    return next((b for b in chunk_candidates(per_process_batch, group_size) if b <= batch_gpu // 2), None)


def choose_batch_gpu(
    g: GeneratorConfig, d: DiscriminatorConfig, per_process_batch: int, group_size: int, budget: int
) -> int:
    """The largest chunk (a divisor of the per-process batch that the minibatch-std groups divide, or
    that is smaller than a group and divides it) whose estimated step fits ``budget``.

    Raises EpigrafError when even the smallest chunk does not fit: the run could not take one step.
    """
    candidates = chunk_candidates(per_process_batch, group_size)
    fixed, per_sample = _step_bytes(g, d)
    for b in candidates:
        if fixed + b * per_sample <= budget:
            return b
    smallest = candidates[-1]
    need = fixed + smallest * per_sample
    raise EpigrafError(
        f"this configuration needs about {_gib(need)} per step even with batch_gpu={smallest} but the "
        f"device allows {_gib(budget)}: lower the resolution, triplane_res, the channel widths or "
        "num_ray_steps (or pass --batch-gpu to try anyway)"
    )


def seconds_text(seconds: float) -> str:
    """A duration as 45s, 12m 05s or 3h 20m (the ETA in progress lines)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"
