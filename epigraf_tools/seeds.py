"""Seeds and latents exactly as the official scripts draw them."""

from __future__ import annotations

import numpy as np
import torch

from .errors import EpigrafError

MAX_SEEDS = 100_000  # a day of rendering at the fastest; a larger count is a typo, not a plan


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]. Ranges are inclusive; order is kept, duplicates dropped.

    At most ``MAX_SEEDS`` seeds in all, counted before any range is expanded, so '0-99999999999'
    is refused at once instead of exhausting memory.
    """
    if text is None or not str(text).strip():
        raise EpigrafError("seeds is empty; give seeds like '0-3,7'")
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                lo_s, hi_s = part.split("-", 1) if not part.startswith("-") else (None, None)
                lo, hi = int(lo_s), int(hi_s)
                if hi < lo:
                    raise EpigrafError(f"bad seed range {part!r}: the end is smaller than the start")
                _check_count(len(seeds) + hi - lo + 1, text)
                seeds.extend(range(lo, hi + 1))
            else:
                _check_count(len(seeds) + 1, text)
                seeds.append(int(part))
        except (TypeError, ValueError):
            raise EpigrafError(
                f"bad seed {part!r} in seeds {text!r}; expected integers and ranges like '0-3,7'"
            ) from None
    for s in seeds:
        if not 0 <= s < 2**32:
            raise EpigrafError(f"seed {s} is out of range; seeds must lie in [0, 2**32)")
    return list(dict.fromkeys(seeds))


def _check_count(count: int, text: str) -> None:
    if count > MAX_SEEDS:
        raise EpigrafError(
            f"seeds {text!r} asks for {count:,} seeds or more; at most {MAX_SEEDS:,} are allowed per run"
        )


def z_from_seed(seed: int, z_dim: int = 512) -> torch.Tensor:
    """z [1, z_dim] = numpy RandomState(seed).randn(1, z_dim), as the official inference scripts do."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim)).float()


def z_from_seeds(seeds: list[int], z_dim: int = 512) -> torch.Tensor:
    """[len(seeds), z_dim]."""
    return torch.cat([z_from_seed(s, z_dim) for s in seeds], dim=0)
