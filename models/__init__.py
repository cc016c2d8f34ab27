"""Network and renderer definitions shared by training and the toolkit (no file formats, no CLI)."""

from .generator import CONFIG_NAME, WEIGHTS_NAME, ConfigError, Generator, GeneratorConfig, ModelFileError
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
