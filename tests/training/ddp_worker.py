"""Run by the two-rank test through torchrun: train with the TrainConfig JSON given as argv[1]."""

from __future__ import annotations

import json
import sys

from epigraf_tools.training.config import TrainConfig
from epigraf_tools.training.loop import train

if __name__ == "__main__":
    cfg = TrainConfig.from_dict(json.loads(open(sys.argv[1]).read()))
    train(cfg)
