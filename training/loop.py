"""The training loop: ``train(TrainConfig)`` runs patch-wise EpiGRAF training, resumably.

Per step (``batch`` real images): phases Gall, Dmain and, every ``d_reg_interval`` steps, Dreg (R1
with gain = interval); each phase runs over the step's chunks of ``batch_gpu`` samples, averages
the gradients across ranks and takes one Adam step. Then the EMA generator is updated and the
schedules (nerf noise, patch-scale beta, GPC spoofing, blur) advance with the number of images seen.

Randomness. Every random draw is a function of (seed, step, phase, chunk): the data order of
``InfiniteOrder``, the latents, fake poses and labels of a step (drawn for the whole global batch),
and inside each chunk the patch parameters, ray jitter, nerf noise, StyleGAN noise and dropout
(the global torch generator is re-seeded per chunk). Hence a run resumed from a snapshot replays
exactly the draws the uninterrupted run would have made, and N ranks with ``batch / N`` samples
each compute the same update as one rank that processes all chunks in turn.

Gradient scaling (a deliberate difference from the official loop, which sums chunk gradients):
each chunk contributes ``mean loss / chunks per rank``, so the update is the batch mean whatever
the split into ranks and chunks; with one chunk per rank, as in the official defaults, the two agree.

Augmentation (``augment`` 'ada' or 'fixed'): D's inputs are augmented (training/augment.py) with
draws from their own per-(seed, step, phase, chunk) stream. With 'ada', the signs of the Dmain real
logits are summed, and every ``ada_interval`` steps they are all-reduced over ranks and p moves by
sign(mean - ada_target) * batch * ada_interval / (ada_kimg * 1000), clamped at 0. p and the pending
sums are part of the training state, so a resume continues with exactly the same p.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from epigraf_tools.devices import resolve_device
from epigraf_tools.errors import EpigrafError
from epigraf_tools.models import Generator, GeneratorConfig
from epigraf_tools.models.discriminator import Discriminator, DiscriminatorConfig

from . import distributed as du
from .augment import AdaController, AdaptiveAugment
from .auto_config import choose_batch_gpu, memory_budget, smaller_batch_gpu
from .config import GENERATOR_OPTIONS, RUN_CONFIG_NAME, ConfigError, TrainConfig
from .data import ImageDataset, InfiniteOrder
from .dataset_cameras import CAMERA_OPTIONS, POSE_OPTIONS, resolve_camera_options
from .loss import PHASES, EpiGRAFLoss, blur_sigma
from .oom import BufferRollback, StepRollback, free_memory, is_out_of_memory
from .poses import sample_camera_angles
from .preview import PreviewGrid
from .snapshots import (
    clean_partial_snapshots,
    load_resume_state,
    prune_snapshots,
    write_snapshot,
)

LOG_NAME = "log.jsonl"


def derive_seed(*keys: int) -> int:
    """A 32-bit seed from integer keys (independent streams for (seed, step, phase, chunk))."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


BACKGROUND_PREFIX = "synthesis.bg_model."


def adds_background(init: GeneratorConfig, cfg: TrainConfig) -> bool:
    """Whether a fine-tuning run gives a pretrained generator without one a fresh background network.

    ``--init MODEL --bg-model sphere`` keeps the model's foreground and adds the background network
    (its own ws come after the tri-plane's, so the mapping's weights still fit); every other
    architecture option stays the model's.
    """
    return init.bg_model is None and cfg.bg_model not in (None, "none", "null")


def load_pretrained_generator(G: Generator, init: Generator, log: Callable[[str], None]) -> None:
    """G's weights from ``init``; a background network that ``init`` lacks (``_added_background``) starts fresh.

    Anything else missing or left over means the architectures differ, which is a bug, not a choice.
    """
    missing, unexpected = G.load_state_dict(init.state_dict(), strict=False)
    others = [k for k in missing if not k.startswith(BACKGROUND_PREFIX)]
    if others or unexpected:
        raise ConfigError(f"the initial model's weights do not fit this run's generator: {(others + unexpected)[:3]}")
    if missing:
        log("the background network starts from scratch (the initial model has none)")


@dataclass
class TrainResult:
    run_dir: Path
    cur_nimg: int
    steps: int
    last_snapshot: Path | None
    last_record: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainState:
    cur_nimg: int = 0
    batch_idx: int = 0
    cur_tick: int = 0
    tick_start_nimg: int = 0


class Trainer:
    """Holds the networks, optimisers and data of one run; ``run()`` trains to ``config.kimg``."""

    def __init__(
        self,
        config: TrainConfig,
        resume: str | Path | None = None,
        on_step: Callable[[int, int], None] | None = None,
        on_tick: Callable[[dict[str, Any]], None] | None = None,
        log: Callable[[str], None] | None = None,
        init_generator: Generator | None = None,
        warn: Callable[[str], None] | None = None,
        init_discriminator: Discriminator | None = None,
    ) -> None:
        config.validate()
        self.cfg = cfg = config
        self.on_step = on_step
        self.on_tick = on_tick
        self.log = log or (lambda msg: None)
        self.warn = warn or self.log  # lines shown even with --quiet (a back-off, an older snapshot)
        device = resolve_device(cfg.device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.dist = du.setup(device.type)
        if device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank if self.dist.distributed else (device.index or 0))
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cudnn.benchmark = True
        self.device = device
        self.run_dir = Path(cfg.out)

        world = self.dist.world_size
        if cfg.batch % world:
            raise ConfigError(f"batch {cfg.batch} is not divisible by the number of processes ({world})")

        # Data, then the options it decides: cameras (dataset.json 'camera') and 'auto' widths.
        self.dataset = ImageDataset(
            cfg.data,
            resolution=cfg.resolution,
            xflip=cfg.mirror,
            use_labels=cfg.use_labels,
            require_poses=cfg.camera_dist == "custom",
        )
        self.resolution = res = self.dataset.resolution
        say = (warn or self.log) if self.dist.is_main else None
        self.cfg = cfg = resolve_for_dataset(cfg, self.dataset, init_generator, say)
        if cfg.patch_res > res:
            raise ConfigError(f"patch_res {cfg.patch_res} is larger than the training resolution {res}")
        self.order = InfiniteOrder(len(self.dataset), seed=cfg.seed)
        self.camera_dist = cfg.camera_distribution()
        if self.dataset.has_poses and cfg.camera_dist == "custom":
            mean_pose = [float(v) for v in self.dataset.camera_angles.mean(axis=0)]
            mean_pose[0] = 0.0 if cfg.mirror else mean_pose[0]  # mirrored data has zero mean yaw
        else:
            mean_pose = self.camera_dist.mean_pose

        # Networks (identical on every rank: seeded by the run seed only).
        snapshot, saved = None, None
        if resume is not None:  # an unreadable newest state falls back to an older snapshot, with a warning
            say = (warn or self.log) if self.dist.is_main else None
            snapshot, saved = load_resume_state(resume, self.run_dir, map_location=device, warn=say)
        torch.manual_seed(cfg.seed)
        g_config = cfg.generator_config(res, self.dataset.c_dim, mean_pose, self.dataset.class_names)
        if init_generator is not None:
            g_config = self._init_config(init_generator, res)
            generator_options = {option: getattr(g_config, name) for option, name in GENERATOR_OPTIONS.items()}
            self.cfg = cfg = cfg.replace(**generator_options)  # the run's config says what G really is
        elif saved is not None and "G_config" in saved:  # e.g. a fine-tuned run: G's own architecture
            g_config = GeneratorConfig.from_dict(json.loads(saved["G_config"]))
        if init_discriminator is not None and resume is None:
            init_discriminator = self._usable_init_discriminator(init_discriminator, config, res, say)
        else:
            init_discriminator = None
        if init_discriminator is not None:  # its architecture becomes the run's D options (saved, resumed alike)
            self.cfg = cfg = cfg.replace(**discriminator_options(init_discriminator.config))
        d_config = cfg.discriminator_config(res, self.dataset.c_dim)
        if init_discriminator is not None:  # every field (hyper_mod_dim, ...) as the weights need it
            d_config = dataclasses.replace(init_discriminator.config, num_fp16_res=d_config.num_fp16_res)

        # Work split: the global batch is cut into chunks of batch_gpu; rank r runs its share.
        self.per_process = per_process = cfg.batch // world
        self.batch_gpu = cfg.batch_gpu
        # Chosen by the run (now, or by the run this one resumes): an out-of-memory step may halve it.
        self.batch_gpu_auto = cfg.batch_gpu is None or cfg.batch_gpu_auto
        if self.batch_gpu is None:  # 'auto': the largest chunk whose step fits in memory
            budget = memory_budget(device)
            self.batch_gpu = choose_batch_gpu(g_config, d_config, per_process, cfg.mbstd_group_size, budget)
            if self.batch_gpu != per_process:
                self.cfg = cfg = cfg.replace(batch_gpu=self.batch_gpu, batch_gpu_auto=True)  # a resume splits alike
                self.log(f"batch_gpu {self.batch_gpu}: chunks of the batch that fit in {budget / 2**30:.1f} GiB")
        if per_process % self.batch_gpu:
            raise ConfigError(f"batch_gpu {self.batch_gpu} must divide the per-process batch {per_process}")
        self.rounds = per_process // self.batch_gpu
        self.num_chunks = cfg.batch // self.batch_gpu
        self.fitted_phases: set[str] = set()  # phases that completed with this batch_gpu (their memory fits)
        self._phase: str | None = None  # the phase running now, and whether an optimiser stepped in this step
        self._stepped = False

        self.G = Generator(g_config).train().requires_grad_(False)
        if init_generator is not None:
            load_pretrained_generator(self.G, init_generator, self.log)
        self.D = Discriminator(d_config).train().requires_grad_(False)
        if init_discriminator is not None:
            self.D.load_state_dict(init_discriminator.state_dict())
            self.log("D starts from the initial model's discriminator")
        self.G.to(device)
        self.D.to(device)
        self.G_ema = copy.deepcopy(self.G).eval()

        betas = tuple(cfg.betas)
        self.G_opt = torch.optim.Adam(self.G.parameters(), lr=cfg.g_lr, betas=betas, eps=1e-8)
        ratio = cfg.d_reg_interval / (cfg.d_reg_interval + 1) if cfg.d_reg_interval > 1 else 1.0
        self.D_opt = torch.optim.Adam(
            self.D.parameters(), lr=cfg.d_lr * ratio, betas=tuple(b**ratio for b in betas), eps=1e-8
        )
        self.augment = AdaptiveAugment(cfg.augment_p) if cfg.augment != "noaug" else None
        self.ada = (
            AdaController(self.augment, cfg.ada_target, cfg.ada_interval, cfg.ada_kimg)
            if self.augment is not None and cfg.augment == "ada"
            else None
        )
        self.loss = EpiGRAFLoss(
            self.G,
            self.D,
            cfg.patch_sampler(res),
            r1_gamma=cfg.r1_gamma(res),
            blur_init_sigma=cfg.blur_init_sigma,
            blur_fade_kimg=cfg.blur_fade_kimg,
            gpc_spoof_p_end=cfg.gpc_spoof_p,
            augment=self.augment,
        )
        self.inception = None
        if cfg.metrics and self.dist.is_main:
            from .metrics import InceptionFeatures

            self.inception = InceptionFeatures(cfg.inception, device)  # fails now, not hours later
        self.state = TrainState()
        self.resumed_from: Path | None = None
        if snapshot is not None:
            self._restore(snapshot, saved)
        self._progress_update()

    def _init_config(self, init: Generator, res: int):
        """The pretrained generator's architecture, rendering at this dataset's resolution."""
        import dataclasses

        if init.c_dim != self.dataset.c_dim:
            raise ConfigError(
                f"the initial model has {init.c_dim}-d labels but the dataset has {self.dataset.c_dim}-d labels"
            )
        cameras = {name: getattr(self.cfg, name) for name in CAMERA_OPTIONS}  # resolved: the dataset's wins
        return dataclasses.replace(init.config, img_resolution=res, **cameras, **self._added_background(init))

    def _added_background(self, init: Generator) -> dict[str, Any]:
        """The run's background options, for a pretrained generator that has none (``adds_background``)."""
        if not adds_background(init.config, self.cfg):
            return {}
        return {name: getattr(self.cfg, option) for option, name in GENERATOR_OPTIONS.items() if name.startswith("bg_")}

    def _usable_init_discriminator(
        self, D: Discriminator, given: TrainConfig, res: int, say: Callable[[str], None] | None
    ) -> Discriminator | None:
        """The initial model's D if it can judge this run's patches, else None (D starts fresh, said once)."""
        dc = D.config
        problem = None
        if dc.c_dim != self.dataset.c_dim:
            problem = f"it takes {dc.c_dim}-d labels, the dataset has {self.dataset.c_dim}-d"
        elif dc.nominal_resolution != res:
            problem = f"it was trained for {dc.nominal_resolution}^2 images, this run trains at {res}^2"
        elif given.patch_res is not None and given.patch_res != dc.img_resolution:
            problem = f"it sees {dc.img_resolution}^2 patches, patch_res is {given.patch_res}"
        if problem is None:
            return D
        if say is not None:
            say(f"warning: D starts from scratch: the initial model's discriminator does not fit ({problem})")
        return None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        s = self.state
        state = {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "G_opt": self.G_opt.state_dict(),
            "D_opt": self.D_opt.state_dict(),
            "cur_nimg": s.cur_nimg,
            "batch_idx": s.batch_idx,
            "cur_tick": s.cur_tick,
            "tick_start_nimg": s.tick_start_nimg,
            "data_position": s.batch_idx * self.cfg.batch,
            "world_size": self.dist.world_size,
            "config": json.dumps(self.cfg.to_dict()),
            "G_config": json.dumps(self.G.config.to_dict()),
            "D_config": json.dumps(self.D.config.to_dict()),
        }
        if self.augment is not None:
            state["augment_p"] = self.augment.p.detach().clone()
        if self.ada is not None:
            state["ada"] = self.ada.state_dict()
        return state

    def _restore(self, snapshot: Path, state: dict[str, Any]) -> None:
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            self.G_ema.load_state_dict(state["G_ema"])
        except RuntimeError as exc:
            raise EpigrafError(
                f"{snapshot} does not match this configuration's networks (change the options back): "
                f"{str(exc).splitlines()[0]}"
            ) from None
        self.G_opt.load_state_dict(state["G_opt"])
        self.D_opt.load_state_dict(state["D_opt"])
        self.state = TrainState(
            cur_nimg=int(state["cur_nimg"]),
            batch_idx=int(state["batch_idx"]),
            cur_tick=int(state["cur_tick"]),
            tick_start_nimg=int(state["tick_start_nimg"]),
        )
        self._restore_augment(state)
        self.resumed_from = snapshot
        self.log(f"Resumed from {snapshot} at {self.state.cur_nimg / 1000:.3f} kimg (step {self.state.batch_idx})")

    def _restore_augment(self, state: dict[str, Any]) -> None:
        """ADA's p and pending sign sums; 'fixed' keeps the configured p (the option may change on resume)."""
        stored = json.loads(state.get("config", "{}"))
        if "augment" not in stored and self.cfg.augment != "noaug":
            warnings.warn(
                "resuming a run written before discriminator augmentation existed (it trained with "
                f"augment='noaug') with augment={self.cfg.augment!r}; pass augment='noaug' to continue it "
                "unchanged (the CLI does this by itself)",
                stacklevel=3,
            )
        if self.ada is None:
            return
        p = state.get("augment_p")  # absent in states written without augmentation: start from 0
        self.augment.p.copy_(p if p is not None else torch.tensor(0.0))
        self.ada.load_state_dict(state.get("ada", {}))

    def _all_reduce_sum(self, values: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (on the training device: NCCL reduces CUDA tensors only)."""
        return du.all_reduce_sum(values.to(self.device), self.dist)

    def _progress_update(self) -> None:
        kimg = self.state.cur_nimg / 1000
        self.G.progressive_update(kimg)
        self.loss.progressive_update(kimg)

    # ------------------------------------------------------------------ one step
    def _step_inputs(self, batch_idx: int) -> dict[str, torch.Tensor]:
        """Latents, fake labels and poses for the whole global batch of this step (CPU)."""
        cfg = self.cfg
        n = len(PHASES) * cfg.batch
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, batch_idx, 1000))
        rng = np.random.RandomState(derive_seed(cfg.seed, batch_idx, 1001))
        z = torch.randn([n, self.G.z_dim], generator=gen)
        idx = rng.randint(len(self.dataset), size=n)
        c = torch.from_numpy(np.stack([self.dataset.get_label(i) for i in idx])).float()
        if self.camera_dist.dist == "custom":
            angles = torch.from_numpy(np.stack([self.dataset.get_camera_angles(i) for i in idx])).float()
        else:
            angles = sample_camera_angles(self.camera_dist, n, gen)
        cond = None
        if cfg.g_camera_cond:
            cond = angles.clone()
            spoof = torch.rand(n, generator=gen) < self.loss.gpc_spoof_p
            cond[spoof] = cond[spoof].roll(shifts=1, dims=0)
        return {"z": z, "c": c, "angles": angles, "cond": cond}

    def _real_chunk(self, batch_idx: int, chunk: int) -> dict[str, torch.Tensor]:
        start = batch_idx * self.cfg.batch + chunk * self.batch_gpu
        items = self.dataset.batch(self.order.take(start, self.batch_gpu))
        img = items["image"].to(self.device).to(torch.float32) / 127.5 - 1
        return {"img": img, "c": items["label"].to(self.device), "angles": items["camera_angles"].to(self.device)}

    def train_step(self) -> dict[str, list[torch.Tensor]]:
        """One optimisation step over the global batch; returns per-sample statistics of this rank.

        Out of memory with an automatically chosen ``batch_gpu``: the step is undone, batch_gpu
        halved (``_back_off``) and the step redone from its start. Every draw is a function of (seed,
        step, phase, chunk), so the redone step is exactly the step of a run started with the smaller
        chunks. Otherwise (a given batch_gpu, or 1 already) the run stops with a one-line EpigrafError.
        """
        while True:
            rollback = self._rollback_point()
            try:
                return self._train_step_once()
            except RuntimeError as exc:  # torch's out-of-memory errors are RuntimeErrors
                if not is_out_of_memory(exc):
                    raise
                failure = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            # Outside the handler: the exception, its traceback and the step's activations are released.
            self._back_off(failure, rollback)

    def _step_phases(self, batch_idx: int) -> list[str]:
        """The phases a step runs: Gall, Dmain, and Dreg every d_reg_interval steps (when R1 is on)."""
        interval = self.cfg.d_reg_interval
        skip_reg = self.loss.r1_gamma == 0 or batch_idx % interval != 0
        return [p for p in PHASES if not (p == "Dreg" and skip_reg)]

    def _rollback_point(self) -> StepRollback | BufferRollback | None:
        """What a back-off needs to undo this step: nothing when it cannot back off; a full copy while
        one of the step's phases has not yet completed with this batch_gpu (the first step, the first
        R1 step, the step after a back-off); else the buffers only (a phase that fitted before fails
        again only by bad luck, and is redone only if no optimiser had stepped)."""
        if not self._can_back_off():
            return None
        modules = {"G": self.G, "D": self.D}
        if set(self._step_phases(self.state.batch_idx)) <= self.fitted_phases:
            return BufferRollback(modules)
        extras = {}
        if self.ada is not None:
            extras["ada"] = (self.ada.state_dict, self.ada.load_state_dict)
        if self.augment is not None:
            extras["augment_p"] = (lambda: self.augment.p, self.augment.p.copy_)
        return StepRollback(modules, {"G_opt": self.G_opt, "D_opt": self.D_opt}, extras)

    def _can_back_off(self) -> bool:
        return self.batch_gpu_auto and self.batch_gpu > 1 and not self.dist.distributed

    def _back_off(self, failure: str, rollback: StepRollback | BufferRollback | None) -> None:
        """Undo the failed step, halve batch_gpu and record it, or raise a one-line EpigrafError."""
        where = f"step {self.state.batch_idx} ({self._phase}) with batch_gpu {self.batch_gpu}"
        free_memory(self.device, self.G_opt, self.D_opt)
        self.G.requires_grad_(False)
        self.D.requires_grad_(False)
        if not self.batch_gpu_auto:
            raise EpigrafError(
                f"out of memory in {where}, given explicitly: pass a smaller --batch-gpu, or none to let the "
                f"run choose (and halve it on this error) [{failure}]"
            )
        smaller = smaller_batch_gpu(self.batch_gpu, self.per_process, self.cfg.mbstd_group_size)
        if smaller is None:
            raise EpigrafError(
                f"out of memory in {where}, the smallest chunk: lower the resolution, triplane_res, the channel "
                f"widths or num_ray_steps [{failure}]"
            )
        if self.dist.distributed:  # the other ranks wait in an all-reduce: they cannot retry in step
            raise EpigrafError(
                f"out of memory in {where} under torchrun: restart with --batch-gpu {smaller} (processes do not "
                f"back off together) [{failure}]"
            )
        if rollback is None or (self._stepped and not rollback.full):
            raise EpigrafError(
                f"out of memory in {where} after an optimiser step of the same step: resume the run with "
                f"--batch-gpu {smaller} [{failure}]"
            )
        rollback.restore()
        old = self.batch_gpu
        self.batch_gpu = smaller
        self.rounds = self.per_process // smaller
        self.num_chunks = self.cfg.batch // smaller
        self.cfg = self.cfg.replace(batch_gpu=smaller, batch_gpu_auto=True)  # snapshots and config.json record it
        self.fitted_phases.clear()
        if self.dist.is_main and self.run_dir.is_dir():
            self.cfg.save(self.run_dir / RUN_CONFIG_NAME)
        self.warn(f"out of memory in step {self.state.batch_idx} ({self._phase}) with batch_gpu {old}: "
                 f"redoing the step with batch_gpu {smaller}")  # fmt: skip

    def _train_step_once(self) -> dict[str, list[torch.Tensor]]:
        """One attempt at a step (``train_step`` redoes it after an out-of-memory back-off)."""
        cfg, s, dev = self.cfg, self.state, self.device
        inputs = self._step_inputs(s.batch_idx)
        my_chunks = range(self.dist.rank * self.rounds, (self.dist.rank + 1) * self.rounds)
        reals = {k: self._real_chunk(s.batch_idx, k) for k in my_chunks}
        stats: dict[str, list[torch.Tensor]] = {}
        self._stepped = False
        phases = self._step_phases(s.batch_idx)
        for phase_idx, phase in enumerate(PHASES):
            interval = cfg.d_reg_interval if phase == "Dreg" else 1
            if phase not in phases:
                continue
            self._phase = phase
            module, opt = (self.G, self.G_opt) if phase == "Gall" else (self.D, self.D_opt)
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            for chunk in my_chunks:
                sl = slice(
                    phase_idx * cfg.batch + chunk * self.batch_gpu, phase_idx * cfg.batch + (chunk + 1) * self.batch_gpu
                )
                seed = derive_seed(cfg.seed, s.batch_idx, phase_idx, chunk)
                torch.manual_seed(seed)
                rng = np.random.RandomState(seed)
                gen = torch.Generator().manual_seed(seed)
                aug_gen = None
                if self.augment is not None:
                    aug_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, s.batch_idx, phase_idx, chunk, 2))
                real = reals[chunk]
                out = self.loss.accumulate_gradients(
                    phase=phase,
                    real_img=real["img"],
                    real_c=real["c"],
                    real_camera_angles=real["angles"],
                    gen_z=inputs["z"][sl].to(dev),
                    gen_c=inputs["c"][sl].to(dev),
                    gen_camera_angles=inputs["angles"][sl].to(dev),
                    gen_camera_angles_cond=inputs["cond"][sl].to(dev) if inputs["cond"] is not None else None,
                    gain=interval / self.rounds,
                    cur_nimg=s.cur_nimg,
                    rng=rng,
                    generator=gen,
                    aug_generator=aug_gen,
                )
                if phase == "Dmain" and self.augment is not None:
                    out["Aug/rt"] = out["Loss/scores/real"].sign()
                    if self.ada is not None:
                        self.ada.accumulate(out["Loss/scores/real"])
                for k, v in out.items():
                    stats.setdefault(k, []).append(v.float().cpu())
            module.requires_grad_(False)
            du.average_gradients(list(module.parameters()), self.dist)
            self._stepped = True  # from here a redo needs the full rollback
            opt.step()
            self.fitted_phases.add(phase)

        self._update_ema()
        s.cur_nimg += cfg.batch
        s.batch_idx += 1
        if self.ada is not None and s.batch_idx % cfg.ada_interval == 0:
            self.ada.update(cfg.batch, reduce=self._all_reduce_sum)
        self._progress_update()
        return stats

    @torch.no_grad()
    def _update_ema(self) -> None:
        cfg = self.cfg
        ema_nimg = self.cfg.resolved_ema_kimg() * 1000
        if cfg.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.state.cur_nimg * cfg.ema_rampup)
        beta = 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        cfg, s = self.cfg, self.state
        total_nimg = int(round(cfg.kimg * 1000))
        main = self.dist.is_main
        preview = PreviewGrid(self.dataset, self.G_ema, cfg, self.device) if main and cfg.grid_size > 0 else None
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            clean_partial_snapshots(self.run_dir)
            cfg.save(self.run_dir / RUN_CONFIG_NAME)
            self._trim_log(s.batch_idx)
            if preview is not None:
                preview.save_reals(self.run_dir / "samples" / "reals.png")
                preview.save_fakes(self.run_dir / "samples" / f"fakes-{s.cur_nimg:09d}.png")
        du.barrier(self.dist)

        last_snapshot = self.resumed_from
        record: dict[str, Any] = {}
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        tick_start_time = time.time()
        start_time = tick_start_time
        next_snapshot = _next_multiple(s.cur_nimg, cfg.snapshot_kimg)
        next_image = _next_multiple(s.cur_nimg, cfg.image_kimg)
        next_metric = _next_multiple(s.cur_nimg, cfg.metrics_kimg) if cfg.metrics else None
        if s.cur_nimg >= total_nimg:
            self.log(f"Nothing to do: the run is already at {s.cur_nimg / 1000:.3f} kimg (kimg = {cfg.kimg}).")
        while s.cur_nimg < total_nimg:
            stats = self.train_step()
            for k, vals in stats.items():
                v = torch.cat([x.reshape(-1) for x in vals])
                sums[k] = sums.get(k, 0.0) + float(v.sum())
                counts[k] = counts.get(k, 0) + v.numel()
            if self.on_step is not None:
                self.on_step(s.cur_nimg, total_nimg)
            done = s.cur_nimg >= total_nimg
            # As in StyleGAN2-ADA, tick 0 closes after the run's first step: the speed (sec/kimg) and
            # the losses show up in seconds, not after tick_kimg (a CPU needs minutes per kimg).
            tick_due = s.cur_tick == 0 or s.cur_nimg >= s.tick_start_nimg + cfg.tick_kimg * 1000
            if not (done or tick_due):
                continue
            now = time.time()
            record = self._tick_record(sums, counts, now - tick_start_time, now - start_time)
            sums, counts = {}, {}
            s.cur_tick += 1
            s.tick_start_nimg = s.cur_nimg
            tick_start_time = now
            snapshot_due = next_snapshot is not None and s.cur_nimg >= next_snapshot
            image_due = next_image is not None and s.cur_nimg >= next_image
            metric_due = next_metric is not None and (s.cur_nimg >= next_metric or done)
            if main and metric_due:
                record.update(self._evaluate_metrics())
            if main:
                self._append_log(record)
                if self.on_tick is not None:
                    self.on_tick(record)
                if preview is not None and (image_due or done):
                    preview.save_fakes(self.run_dir / "samples" / f"fakes-{s.cur_nimg:09d}.png")
                if snapshot_due or done:
                    last_snapshot = write_snapshot(self.run_dir, s.cur_nimg, self.G_ema, self.state_dict())
                    prune_snapshots(self.run_dir, cfg.keep_snapshots)
            if snapshot_due:
                next_snapshot = _next_multiple(s.cur_nimg, cfg.snapshot_kimg)
            if image_due:
                next_image = _next_multiple(s.cur_nimg, cfg.image_kimg)
            if metric_due:
                next_metric = _next_multiple(s.cur_nimg, cfg.metrics_kimg)
            du.barrier(self.dist)
        return TrainResult(self.run_dir, s.cur_nimg, s.batch_idx, last_snapshot, record)

    def _tick_record(self, sums: dict[str, float], counts: dict[str, int], tick_sec: float, total_sec: float):
        s, cfg = self.state, self.cfg
        keys = sorted(sums)
        if self.dist.distributed:
            t = torch.tensor([v for k in keys for v in (sums[k], counts[k])], dtype=torch.float64)
            vals = self._all_reduce_sum(t).tolist()
            sums = {k: vals[2 * i] for i, k in enumerate(keys)}
            counts = {k: int(vals[2 * i + 1]) for i, k in enumerate(keys)}
        tick_kimg = (s.cur_nimg - s.tick_start_nimg) / 1000
        record: dict[str, Any] = {
            "tick": s.cur_tick,
            "step": s.batch_idx,
            "kimg": s.cur_nimg / 1000,
            "time_s": round(total_sec, 3),
            "sec_per_tick": round(tick_sec, 3),
            "sec_per_kimg": round(tick_sec / max(tick_kimg, 1e-9), 3),
            "kimg_per_s": tick_kimg / max(tick_sec, 1e-9),
            "blur_sigma": blur_sigma(s.cur_nimg, cfg.blur_init_sigma, cfg.blur_fade_kimg),
            "patch_beta": self.loss.patch_sampler.beta,
            "nerf_noise_std": self.G.nerf_noise_std,
            "gpc_spoof_p": self.loss.gpc_spoof_p,
        }
        if self.augment is not None:
            record["Aug/p"] = float(self.augment.p)  # "Aug/rt" (mean sign of D(real)) comes with the stats
        for k in keys:
            record[k] = sums[k] / max(counts[k], 1)
        if self.device.type == "cuda":
            record["peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        return record

    def _evaluate_metrics(self) -> dict[str, float]:
        """FID of G_ema (rank 0); appended to RUN_DIR/metrics.jsonl and returned for the tick log."""
        from .metrics import METRICS, compute_fid

        sampler = None
        if self.camera_dist.dist != "custom":
            dist = self.camera_dist
            sampler = lambda n, gen: sample_camera_angles(dist, n, gen)  # noqa: E731
        out = {}
        for name in self.cfg.metrics:
            t0 = time.time()
            value = compute_fid(
                self.G_ema,
                self.dataset,
                num_gen=METRICS[name],
                inception=self.inception,
                cache_dir=self.run_dir / "fid-cache",
                camera_sampler=sampler,
            )
            out[f"Metrics/{name}"] = value
            entry = {"metric": name, "value": value, "kimg": self.state.cur_nimg / 1000, "step": self.state.batch_idx}
            entry["seconds"] = round(time.time() - t0, 1)
            with open(self.run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(entry) + "\n")
            self.log(f"{name} {value:.3f} at {entry['kimg']:.3f} kimg")
        return out

    # ------------------------------------------------------------------ log file
    def _append_log(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / LOG_NAME, "a") as fh:
            fh.write(json.dumps(_jsonable(record)) + "\n")
            fh.flush()

    def _trim_log(self, step: int) -> None:
        """On resume, drop log lines written after the snapshot we continue from."""
        for name in (LOG_NAME, "metrics.jsonl"):
            self._trim_jsonl(self.run_dir / name, step)

    @staticmethod
    def _trim_jsonl(path: Path, step: int) -> None:
        if not path.is_file():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        from epigraf_tools.atomic import write_text_atomic

        write_text_atomic(path, "".join(line + "\n" for line in keep))


def discriminator_options(d: DiscriminatorConfig) -> dict[str, Any]:
    """The training options that rebuild discriminator ``d`` (its architecture, not its precision)."""
    return {
        "patch_res": d.img_resolution,
        "d_channel_base": d.channel_base,
        "d_channel_max": d.channel_max,
        "mbstd_group_size": d.mbstd_group_size,
        "hyper_mod": d.hyper_mod,
        "d_camera_cond": d.camera_cond,
        "d_camera_cond_raw": d.camera_cond_raw,
        "d_camera_cond_drop_p": d.camera_cond_drop_p,
    }


def resolve_for_dataset(
    cfg: TrainConfig,
    dataset: ImageDataset,
    init_generator: Generator | None = None,
    warn: Callable[[str], None] | None = None,
) -> TrainConfig:
    """``cfg`` with what the dataset decides filled in: its cameras (explicit options win only with
    allow_camera_mismatch; the initial model's cameras, else the FFHQ ones, where neither says) and
    the 'auto' widths for its resolution; with ``init_generator``, the generator options are its
    architecture. Raises DatasetCameraError on a camera conflict."""
    fallback_config = init_generator.config if init_generator is not None else GeneratorConfig()
    if init_generator is not None:  # G's architecture is the initial model's (cameras: resolved below)
        keep_bg = adds_background(fallback_config, cfg)
        arch = {
            o: getattr(fallback_config, n)
            for o, n in GENERATOR_OPTIONS.items()
            if o not in CAMERA_OPTIONS and not (keep_bg and n.startswith("bg_"))
        }
        cfg = cfg.replace(**arch)
    fallback = {name: getattr(fallback_config, name) for name in CAMERA_OPTIONS}
    explicit = {name: getattr(cfg, name) for name in (*CAMERA_OPTIONS, *POSE_OPTIONS.values())}
    camera = resolve_camera_options(
        explicit, dataset.cameras, fallback, dataset.has_poses, cfg.allow_camera_mismatch, warn
    )
    return cfg.concrete(cfg.resolution or dataset.resolution, camera)


def _next_multiple(cur_nimg: int, every_kimg: float) -> int | None:
    if every_kimg <= 0:
        return None
    every = max(int(round(every_kimg * 1000)), 1)
    return (cur_nimg // every + 1) * every


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in record.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
        else:
            out[k] = v
    return out


def train(
    config: TrainConfig,
    resume: str | Path | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_tick: Callable[[dict[str, Any]], None] | None = None,
    log: Callable[[str], None] | None = None,
    init_generator: Generator | None = None,
    warn: Callable[[str], None] | None = None,
    init_discriminator: Discriminator | None = None,
) -> TrainResult:
    """Train EpiGRAF as configured; resume from a snapshot, a run folder or 'latest' (of config.out).

    ``init_generator`` starts G (and G_ema) from pretrained weights (fine-tuning; its architecture
    replaces the generator options; ignored when resuming); ``init_discriminator`` likewise D, when
    it fits the run (labels, resolution, patch size), else D starts fresh with a warning. ``warn``
    (default: ``log``) gets the line saying that an unreadable newest snapshot was skipped on resume.
    Returns where the run ended. Under torchrun every process calls this; only rank 0 writes.
    """
    if resume is not None:
        init_generator = init_discriminator = None
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        trainer = Trainer(
            config,
            resume=resume,
            on_step=on_step,
            on_tick=on_tick,
            log=log,
            init_generator=init_generator,
            warn=warn,
            init_discriminator=init_discriminator,
        )
    try:
        return trainer.run()
    finally:
        du.teardown(trainer.dist)
