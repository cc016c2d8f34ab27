"""FID with the StyleGAN / EpiGRAF protocol.

Features come from NVIDIA's TorchScript Inception-v3 ``inception-2015-12-05.pt`` (the network that
StyleGAN2-ADA, the official EpiGRAF metrics and clean-fid all load): it takes uint8 images
[B, 3, H, W] of any size, resizes them itself and returns 2048-d pool features. FID is the Frechet
distance between Gaussian fits of real and generated features (scipy's sqrtm, as the official code).

- ``fid50k_full``: 50 000 generated images against the whole dataset (the paper's number);
- ``fid2k_full``: 2 000 generated images (the quick variant the official config tracks in training).

Generated images use random z, labels and (for 'custom' camera distributions) poses of random dataset
items, and the model's stochastic renderer, as in training. We never download anything: without the
weights file the functions raise ``InceptionNotFound`` naming the file, its source and where to put it.
(clean-fid and torch-fidelity, torchmetrics' FID backend, would load the same weights but both
require torchvision; this module needs only torch and scipy.)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from epigraf_tools.errors import EpigrafError

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INCEPTION_ENV = "EPIGRAF_INCEPTION"
METRICS = {"fid50k_full": 50000, "fid2k_full": 2000}


def default_inception_path() -> Path:
    """Where we look first: $EPIGRAF_INCEPTION, else ~/.cache/epigraf/inception-2015-12-05.pt."""
    env = os.environ.get(INCEPTION_ENV)
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "epigraf" / INCEPTION_FILE


def _candidates(path: str | os.PathLike[str] | None) -> list[Path]:
    if path is not None:
        return [Path(path)]
    return [default_inception_path(), Path("/tmp") / INCEPTION_FILE]  # the second is clean-fid's cache


class InceptionNotFound(EpigrafError):
    """The Inception weights are not on this machine (we never download them)."""


def find_inception(path: str | os.PathLike[str] | None = None) -> Path:
    """The weights file, or InceptionNotFound with the exact file to provide and where."""
    for p in _candidates(path):
        if p.is_file():
            return p
    target = Path(path) if path is not None else default_inception_path()
    raise InceptionNotFound(
        f"FID needs NVIDIA's Inception weights {INCEPTION_FILE} (TorchScript, about 95 MB; from {INCEPTION_URL}): "
        f"put the file at {target}"
        + ("" if path is not None else f" (or point ${INCEPTION_ENV} / inception=PATH at it)")
    )


class InceptionFeatures:
    """uint8 images [B, 3, H, W] -> 2048-d features [B, 2048] (float64 on the CPU)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, device: torch.device | str = "cpu") -> None:
        self.path = find_inception(path)
        self.device = torch.device(device)
        try:
            self.model = torch.jit.load(str(self.path), map_location=self.device).eval()
        except Exception as exc:  # noqa: BLE001 - a truncated download or a wrong file
            raise EpigrafError(f"cannot load {self.path} as the TorchScript Inception network: {exc}") from None

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"Inception features need uint8 [B, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        feats = self.model(images.to(self.device), return_features=True)
        return feats.to(torch.float64).cpu().numpy()


class FeatureStats:
    """Running mean and covariance of features."""

    def __init__(self) -> None:
        self.n = 0
        self.sum: np.ndarray | None = None
        self.outer: np.ndarray | None = None

    def update(self, feats: np.ndarray) -> None:
        if self.sum is None:
            d = feats.shape[1]
            self.sum = np.zeros(d)
            self.outer = np.zeros([d, d])
        self.n += feats.shape[0]
        self.sum += feats.sum(axis=0)
        self.outer += feats.T @ feats

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise EpigrafError("FID needs at least two images on each side")
        mu = self.sum / self.n
        cov = self.outer / self.n - np.outer(mu, mu)
        return mu, cov * self.n / (self.n - 1)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 sqrtm(cov1 cov2)) (real part, as the official code)."""
    import scipy.linalg

    # no ``disp`` argument: SciPy 1.17 deprecates it and 1.18 removes it (the default returns the root alone)
    covmean = scipy.linalg.sqrtm(cov1 @ cov2)
    return float(np.square(mu1 - mu2).sum() + np.trace(cov1 + cov2 - 2 * np.real(covmean)))


def _real_stats_cache(dataset, cache_dir: Path | None) -> Path | None:
    if cache_dir is None:
        return None
    p = Path(dataset.path)
    key = f"{p.resolve()}|{p.stat().st_mtime_ns}|{dataset.num_raw}|{dataset.resolution}|{INCEPTION_FILE}"
    return cache_dir / f"fid-real-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def real_statistics(
    dataset,
    features: InceptionFeatures,
    max_real: int | None = None,
    batch_size: int = 64,
    cache_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the real images' features (all of them unless ``max_real``)."""
    cache = _real_stats_cache(dataset, cache_dir) if max_real is None else None
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            return data["mu"], data["cov"]
    n = dataset.num_raw if max_real is None else min(max_real, dataset.num_raw)
    stats = FeatureStats()
    for start in range(0, n, batch_size):
        idx = list(range(start, min(start + batch_size, n)))
        images = torch.from_numpy(np.stack([dataset.load_image(i) for i in idx]))
        stats.update(features(images))
        if progress is not None:
            progress(min(start + batch_size, n), n)
    mu, cov = stats.mean_cov()
    if cache is not None:
        from epigraf_tools.atomic import atomic_path

        with atomic_path(cache) as tmp:
            np.savez(tmp, mu=mu, cov=cov)
    return mu, cov


@torch.no_grad()
def generated_statistics(
    G: torch.nn.Module,
    dataset,
    features: InceptionFeatures,
    num_gen: int,
    batch_size: int = 16,
    seed: int = 0,
    camera_sampler: Callable[[int, torch.Generator], torch.Tensor] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Feature statistics of ``num_gen`` images rendered at the model's resolution (noise 'random')."""
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    render_gen = torch.Generator(device=device).manual_seed(seed)
    rng = np.random.RandomState(seed)
    stats = FeatureStats()
    G.eval()
    for start in range(0, num_gen, batch_size):
        b = min(batch_size, num_gen - start)
        z = torch.randn([b, G.z_dim], generator=gen).to(device)
        idx = rng.randint(len(dataset), size=b)
        c = torch.from_numpy(np.stack([dataset.get_label(i) for i in idx])).to(device) if G.c_dim > 0 else None
        if camera_sampler is None:
            angles = torch.from_numpy(np.stack([dataset.get_camera_angles(i) for i in idx]))
        else:
            angles = camera_sampler(b, gen)
        angles = angles.to(device)
        ws = G.mapping(z, c, camera_angles=angles if G.config.camera_cond else None)
        img = G.render(ws, angles, noise_mode="random", generator=render_gen)["image"]
        img = (img.clamp(-1, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)
        stats.update(features(img))
        if progress is not None:
            progress(start + b, num_gen)
    return stats.mean_cov()


def compute_fid(
    G: torch.nn.Module,
    dataset,
    num_gen: int = 50000,
    max_real: int | None = None,
    inception: str | os.PathLike[str] | InceptionFeatures | None = None,
    batch_size: int = 16,
    seed: int = 0,
    cache_dir: Path | None = None,
    camera_sampler: Callable[[int, torch.Generator], torch.Tensor] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> float:
    """FID of ``G`` against ``dataset`` (an ``ImageDataset`` at G's resolution)."""
    device = next(G.parameters()).device
    feats = inception if isinstance(inception, InceptionFeatures) else InceptionFeatures(inception, device)

    def stage(name: str):
        return (lambda i, n: progress(name, i, n)) if progress is not None else None

    mu_r, cov_r = real_statistics(dataset, feats, max_real, cache_dir=cache_dir, progress=stage("real"))
    mu_g, cov_g = generated_statistics(
        G, dataset, feats, num_gen, batch_size, seed, camera_sampler, progress=stage("generated")
    )
    return frechet_distance(mu_r, cov_r, mu_g, cov_g)


@dataclass(frozen=True)
class FidResult:
    """One FID measurement and what it was measured on (``epigraf fid`` writes it as fid.json)."""

    metric: str  # fid50k_full, fid2k_full, or fid<N> when num_gen overrides the metric's count
    value: float
    model: str
    data: str
    num_gen: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def evaluate_fid(
    generator: torch.nn.Module | Callable[[torch.device], torch.nn.Module],
    data: str,
    *,
    metric: str = "fid50k_full",
    num_gen: int | None = None,
    max_real: int | None = None,
    inception: str | os.PathLike[str] | None = None,
    batch_size: int = 16,
    seed: int = 0,
    camera_dist: str = "custom",
    device: str = "auto",
    model: str | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> FidResult:
    """FID of a generator against the images in ``data``, checked first and recorded (``epigraf fid``).

    ``generator`` is a model or a function ``device -> model``: the second form loads it only after
    every cheap check (metric, counts, camera distribution, the Inception weights) has passed, so a bad
    argument costs no download. ``camera_dist='custom'`` draws the dataset's own poses (the paper's
    protocol); ``model`` names the model in the record; ``out`` also writes ``out/fid.json``.
    """
    from epigraf_tools.devices import resolve_device

    from .data import ImageDataset
    from .poses import CameraDistribution, sample_camera_angles

    if metric not in METRICS:
        raise EpigrafError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    n_gen = num_gen if num_gen is not None else METRICS[metric]
    if isinstance(n_gen, bool) or n_gen < 2:
        raise EpigrafError(f"num_gen must be >= 2, got {n_gen}")
    if isinstance(batch_size, bool) or batch_size < 1:
        raise EpigrafError(f"batch_size must be >= 1, got {batch_size}")
    try:
        dist = CameraDistribution(camera_dist)
    except ValueError as exc:
        raise EpigrafError(str(exc)) from None
    dev = resolve_device(device)
    features = InceptionFeatures(inception, dev)  # fails here, before any work, without the weights

    G = generator if isinstance(generator, torch.nn.Module) else generator(dev)
    dataset = ImageDataset(
        data, resolution=G.config.img_resolution, require_poses=dist.dist == "custom", use_labels=G.c_dim > 0
    )
    if G.c_dim > 0 and dataset.c_dim != G.c_dim:
        raise EpigrafError(f"the model expects {G.c_dim}-d labels but {data} has {dataset.c_dim}-d labels")
    sampler = None if dist.dist == "custom" else (lambda n, gen: sample_camera_angles(dist, n, gen))
    value = compute_fid(
        G,
        dataset,
        num_gen=n_gen,
        max_real=max_real,
        inception=features,
        batch_size=batch_size,
        seed=seed,
        camera_sampler=sampler,
        progress=progress,
    )
    name = metric if num_gen is None else f"fid{n_gen}"
    result = FidResult(name, value, str(model), str(data), n_gen)
    if out is not None:
        import json

        from epigraf_tools.atomic import write_text_atomic

        write_text_atomic(Path(out) / "fid.json", json.dumps(result.to_dict(), indent=2) + "\n")
    return result
