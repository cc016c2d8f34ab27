"""From seeds to ws: latents as the official scripts draw them, classes, and truncation.

* z = numpy RandomState(seed).randn(1, z_dim) (``seeds.z_from_seed``), so a seed means the same
  sample as in the paper's code.
* Class: an index, a name from ``config.class_names``, or, when omitted on a class-conditional
  model, the official choice ``RandomState(seed).choice(c_dim)``.
* Truncation: w <- centre + psi (w - centre) on the first ``cutoff`` ws (all when None). The centre is
  ``w_avg`` for unconditional models. For class-conditional models it is the class's own mean w, as
  the official scripts do, estimated from 256 latents drawn from ``torch.Generator().manual_seed(class)``
  (the official scripts draw them from the global RNG, so theirs change from run to run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import EpigrafError
from .models import Generator, GeneratorConfig
from .models.mapping import truncate_ws
from .seeds import MAX_SEEDS, z_from_seeds

PSI_RANGE = (0.0, 2.0)
CLASS_CENTRE_SAMPLES = 256


@dataclass(frozen=True)
class Truncation:
    """psi in [0, 2] (1 = off, 0 = every sample becomes the centre); cutoff: ws affected (None = all)."""

    psi: float = 1.0
    cutoff: int | None = None

    def validate(self, num_ws: int | None = None) -> Truncation:
        psi = self.psi
        if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not np.isfinite(psi):
            raise EpigrafError(f"truncation psi must be a number in [0, 2], got {psi!r}")
        if not PSI_RANGE[0] <= psi <= PSI_RANGE[1]:
            raise EpigrafError(f"truncation psi must lie in [0, 2] (1 = no truncation), got {psi:g}")
        if self.cutoff is not None:
            if isinstance(self.cutoff, bool) or not isinstance(self.cutoff, int) or self.cutoff < 1:
                raise EpigrafError(f"truncation cutoff must be a positive number of ws, got {self.cutoff!r}")
            if num_ws is not None and self.cutoff > num_ws:
                raise EpigrafError(f"truncation cutoff {self.cutoff} is larger than this model's {num_ws} ws")
        return self


def resolve_class(config: GeneratorConfig, value: int | str | None) -> int | None:
    """A class given as an index or a name -> index (None stays None: the seed picks the class).

    Unconditional models accept only None.
    """
    if value is None:
        return None
    names = list(config.class_names or [])
    if config.c_dim == 0:
        raise EpigrafError(f"class {value!r} given, but this model is unconditional (it has no classes)")
    if isinstance(value, str):
        text = value.strip()
        if text in names:
            return names.index(text)
        lowered = [n.lower() for n in names]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        try:
            value = int(text)
        except ValueError:
            known = f"; known names: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}" if names else ""
            raise EpigrafError(f"unknown class {text!r}: give an index in [0, {config.c_dim - 1}]{known}") from None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < config.c_dim:
        raise EpigrafError(f"class index {value!r} is out of range: this model has classes 0..{config.c_dim - 1}")
    return int(value)


@dataclass(frozen=True)
class SampleRequest:
    """Which samples to draw: seeds, truncation and class, checked in ONE place (``SampleRequest.check``).

    Every pipeline that turns seeds into outputs (sample, video, interpolate, volumes, meshes)
    checks its request here when it starts, so the rules and messages are written once; ``check``
    without a model does the checks that need none (the CLI runs it before loading anything).
    """

    seeds: tuple[int, ...]
    truncation: Truncation = Truncation()
    class_index: int | None = None

    @classmethod
    def check(
        cls,
        seeds: Sequence[int],
        truncation: Truncation = Truncation(),
        class_: int | str | None = None,
        model: Generator | GeneratorConfig | None = None,
    ) -> SampleRequest:
        """Validate (and, given the model, resolve the class name) or raise EpigrafError naming the input."""
        if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
            raise EpigrafError(f"seeds must be a list of integers, got {seeds!r} (parse text with parse_seeds)")
        if not seeds:
            raise EpigrafError("no seeds given: give at least one seed")
        if len(seeds) > MAX_SEEDS:
            raise EpigrafError(f"{len(seeds):,} seeds asked for; at most {MAX_SEEDS:,} are allowed per run")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= s < 2**32:
                raise EpigrafError(f"seed {s!r} is not an integer in [0, 2**32)")
        config = getattr(model, "config", model)  # a generator of either family, or a config
        truncation.validate(None if config is None else config.num_ws)
        if isinstance(class_, bool) or not (class_ is None or isinstance(class_, (int, str, np.integer))):
            raise EpigrafError(f"class must be an index or a name, got {class_!r}")
        index = None if config is None else resolve_class(config, class_)
        return cls(tuple(int(s) for s in seeds), truncation, index)


def class_name(config: GeneratorConfig, index: int | None) -> str | None:
    names = config.class_names or []
    return names[index] if index is not None and index < len(names) else None


def provenance(
    G: Generator,
    label: str | None,
    truncation: Truncation,
    seeds: int | Sequence[int],
    classes: int | None | Sequence[int | None],
) -> dict[str, Any]:
    """What every output's sidecar records about where its latents came from: the one definition.

    One seed (an int) gives ``seed``/``class_index``/``class_name``; a sequence of seeds (videos,
    interpolations) gives ``seeds``/``class_indices``/``class_names``. ``label`` names the model as
    the user gave it (a zoo name, a folder); None falls back to the config's name. Callers add their
    own keys (camera, grid, method, ...) to the returned dict.
    """
    head: dict[str, Any] = {"model": label or G.config.name}
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        index = classes if classes is None or isinstance(classes, (int, np.integer)) else list(classes)[0]
        head.update(seed=int(seeds), class_index=index, class_name=class_name(G.config, index))
    else:
        ks = [classes] * len(seeds) if classes is None or isinstance(classes, (int, np.integer)) else list(classes)
        head.update(seeds=list(seeds), class_indices=ks, class_names=[class_name(G.config, k) for k in ks])
    head.update(truncation_psi=truncation.psi, truncation_cutoff=truncation.cutoff)
    return head


def class_from_seed(seed: int, c_dim: int) -> int:
    """The official default class of a seed: RandomState(seed).choice(arange(c_dim), size=1)."""
    return int(np.random.RandomState(seed).choice(np.arange(c_dim), size=1)[0])


def seed_classes(config: GeneratorConfig, seeds: Sequence[int], class_index: int | None) -> list[int | None]:
    """Per seed: the given class, the seed's official class (conditional models), or None."""
    if config.c_dim == 0:
        return [None] * len(seeds)
    if class_index is not None:
        return [class_index] * len(seeds)
    return [class_from_seed(s, config.c_dim) for s in seeds]


def one_hot(classes: Sequence[int | None], c_dim: int, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """[B, c_dim] one-hot labels, or None for unconditional models."""
    if c_dim == 0:
        return None
    c = torch.zeros(len(classes), c_dim, device=device)
    for i, k in enumerate(classes):
        c[i, int(k)] = 1.0
    return c


@torch.no_grad()
def truncation_centres(G: Generator, classes: Sequence[int | None]) -> torch.Tensor:
    """[B, w_dim] truncation centre per sample: w_avg, or the class's mean w (see the module docstring)."""
    device = G.device
    if G.c_dim == 0:
        return G.mapping.w_avg.unsqueeze(0).expand(len(classes), -1)
    cache: dict[int, torch.Tensor] = {}
    for k in classes:
        if k not in cache:
            gen = torch.Generator().manual_seed(int(k))
            z = torch.randn(CLASS_CENTRE_SAMPLES, G.z_dim, generator=gen).to(device)
            c = one_hot([k] * CLASS_CENTRE_SAMPLES, G.c_dim, device)
            cache[k] = G.mapping(z, c)[:, 0].mean(dim=0)
    return torch.stack([cache[k] for k in classes])


def truncate(ws: torch.Tensor, centres: torch.Tensor, truncation: Truncation) -> torch.Tensor:
    """ws [B, num_ws, w_dim] -> centre + psi (w - centre) on ws[:, :cutoff]; centres [B, w_dim] or [w_dim].

    The lerp itself is ``models.mapping.truncate_ws`` (the mapping network's own); this unpacks a
    ``Truncation``.
    """
    return truncate_ws(ws, centres, truncation.psi, truncation.cutoff)


@torch.no_grad()
def map_latents(
    G: Generator,
    z: torch.Tensor,
    c: torch.Tensor | None,
    centres: torch.Tensor,
    truncation: Truncation = Truncation(),
) -> torch.Tensor:
    """z [B, z_dim] (+ labels c [B, c_dim]) -> truncated ws [B, num_ws, w_dim].

    Unconditional models go through ``G.mapping``'s own truncation (bit-identical to the official
    call); class-conditional ones are truncated here towards their per-sample ``centres`` [B, w_dim].
    """
    if G.c_dim == 0:
        return map_rows(G, z, None, truncation)
    return truncate(map_rows(G, z, c), centres, truncation)


@torch.no_grad()
def map_rows(
    G: Generator, z: torch.Tensor, c: torch.Tensor | None, truncation: Truncation = Truncation()
) -> torch.Tensor:
    """``G.mapping`` one row at a time: [B, z_dim] -> [B, num_ws, w_dim].

    A matrix product over 1 row and over 7 rows can differ in the last bits (different BLAS
    kernels), so mapping rows separately makes a seed's w independent of the batch it came in.
    """
    device = G.device
    z = z.to(device)
    c = None if c is None else c.to(device)
    rows = [
        G.mapping(
            z[i : i + 1],
            None if c is None else c[i : i + 1],
            truncation_psi=truncation.psi,
            truncation_cutoff=truncation.cutoff,
        )
        for i in range(z.shape[0])
    ]
    return torch.cat(rows)


def ws_from_seeds(
    G: Generator,
    seeds: Sequence[int],
    truncation: Truncation = Truncation(),
    class_index: int | None = None,
) -> tuple[torch.Tensor, list[int | None]]:
    """Seeds -> (ws [B, num_ws, w_dim], class per seed); z drawn exactly as the official scripts do."""
    request = SampleRequest.check(seeds, truncation, class_index, G)
    seeds, class_index = list(request.seeds), request.class_index
    classes = seed_classes(G.config, seeds, class_index)
    z = z_from_seeds(list(seeds), G.z_dim)
    c = one_hot(classes, G.c_dim)
    centres = truncation_centres(G, classes) if G.c_dim > 0 and truncation.psi != 1 else G.mapping.w_avg
    return map_latents(G, z, c, centres, truncation), classes
