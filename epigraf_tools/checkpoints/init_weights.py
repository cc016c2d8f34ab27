"""The networks a fine-tuning run starts from (``epigraf train --init MODEL_SPEC``): G and, when the
source has one, D.

Transfer learning on a small set works much better when D starts trained too (D already knows
what real images look like; a fresh D first has to catch up with a trained G). Where a D comes from:

- an official EpiGRAF pickle: its ``D`` (official names, which ours share);
- a converted folder (``epigraf convert --include-discriminator``): discriminator.safetensors +
  discriminator_config.json;
- a training snapshot of ours (RUN_DIR/snapshot-...): the ``D`` in its training_state.pt;
- a zoo name or Hub id: whatever its downloaded folder holds (released zoo models carry G only).

Without one, training starts D from scratch (and says so).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import EpigrafError
from ..models import Generator
from ..models.discriminator import Discriminator, DiscriminatorConfig
from .loading import classify_spec, load_generator, require_epigraf_generator, resolve_model_dir
from .official_pickle import DISCRIMINATOR_CONFIG_NAME, DISCRIMINATOR_WEIGHTS_NAME

# training/snapshots.py STATE_NAME: the toolkit may not import the training package (layering), so
# the name is repeated here and a test checks that both agree.
RUN_STATE_NAME = "training_state.pt"


@dataclass
class InitNetworks:
    """Pretrained networks to start training from; ``D`` None: the source has no discriminator."""

    G: Generator
    D: Discriminator | None
    d_source: str | None = None  # where D came from, for the run's log


def _discriminator_from(config: dict, state: dict[str, torch.Tensor], where: str) -> Discriminator:
    try:
        D = Discriminator(DiscriminatorConfig.from_dict(config))
        D.load_state_dict(state, strict=True)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise EpigrafError(f"the discriminator in {where} does not load: {str(exc).splitlines()[0]}") from None
    return D


def _folder_discriminator(folder: Path) -> tuple[Discriminator | None, str | None]:
    weights, config = folder / DISCRIMINATOR_WEIGHTS_NAME, folder / DISCRIMINATOR_CONFIG_NAME
    if weights.is_file() and config.is_file():
        from safetensors.torch import load_file

        return _discriminator_from(json.loads(config.read_text()), load_file(str(weights)), str(folder)), str(weights)
    state_path = folder / RUN_STATE_NAME
    if state_path.is_file():
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
            raise EpigrafError(f"cannot read {state_path}: {exc}") from None
        if isinstance(state, dict) and "D" in state and "D_config" in state:
            return _discriminator_from(json.loads(state["D_config"]), state["D"], str(state_path)), str(state_path)
    return None, None


def load_init_networks(
    spec: str | os.PathLike[str], device: str | torch.device = "cpu", *, progress: bool = True
) -> InitNetworks:
    """G (eval mode) and, where the source has one, D (see the module docstring) from ``spec``.

    Raises EpigrafError (one line) for a spec that names nothing loadable or an EG3D model (its
    training is not supported here).
    """
    parsed = classify_spec(spec)
    require_epigraf_generator(str(spec), "epigraf train")
    if parsed.kind == "pickle":
        from .official_pickle import read_official_snapshot
        from .transfer_progress import transfer_progress

        name = Path(parsed.value).name
        with transfer_progress(progress) as report:
            snap = read_official_snapshot(parsed.value, progress=lambda done, total: report(name, done, total))
        G = snap.generator(device)
        require_epigraf_generator(G, "epigraf train")
        D = snap.discriminator(device) if snap.d_state is not None else None
        return InitNetworks(G, D, parsed.value if D is not None else None)
    G = load_generator(spec, device, progress=progress)
    require_epigraf_generator(G, "epigraf train")
    folder = Path(resolve_model_dir(str(parsed) if parsed.kind == "hub" else parsed.value, progress=False))
    D, source = _folder_discriminator(folder)
    return InitNetworks(G, D.to(device) if D is not None else None, source)
