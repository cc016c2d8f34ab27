"""Initial weights, and not drawing them when a weights file is about to replace them.

StyleGAN2's layers start from N(0, 1) weights (scaled at run time, equalised learning rate). Drawing
them costs time that a load throws away: ``torch.randn`` was half of an FFHQ-size generator's 0.3 s
load from a folder. Inside ``weights_from_file()`` the layers get uninitialised tensors instead, which
the load then replaces; outside it (training, tests) they draw exactly as before, in the same order
from the same generator, so seeded initialisation is unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

_SKIP = contextvars.ContextVar("epigraf_skip_initial_weights", default=False)


def normal_weights(*shape: int) -> torch.Tensor:
    """N(0, 1) values of ``shape``; uninitialised memory inside ``weights_from_file()``."""
    return torch.empty(*shape) if _SKIP.get() else torch.randn(*shape)


@contextlib.contextmanager
def weights_from_file() -> Iterator[None]:
    """Build models whose every ``normal_weights`` tensor a strict state-dict load will replace."""
    token = _SKIP.set(True)
    try:
        yield
    finally:
        _SKIP.reset(token)


__all__ = ["normal_weights", "weights_from_file"]
