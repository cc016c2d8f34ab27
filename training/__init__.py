"""Patch-wise EpiGRAF training: ``train(TrainConfig(...))`` and its building blocks."""

from .config import PRESETS, TrainConfig, load_config_file, preset
from .loop import Trainer, TrainResult, train

__all__ = ["PRESETS", "TrainConfig", "TrainResult", "Trainer", "load_config_file", "preset", "train"]
