"""Network and renderer definitions shared by training and the toolkit (no file formats, no CLI)."""

from .config import ConfigError, GeneratorConfig
from .generator import Generator
from .model_files import CONFIG_NAME, WEIGHTS_NAME, ModelFileError
from .renderer import RayDraws, RenderOptions

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "ConfigError",
    "Generator",
    "GeneratorConfig",
    "ModelFileError",
    "RayDraws",
    "RenderOptions",
]
