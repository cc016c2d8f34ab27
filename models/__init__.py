"""Network and renderer definitions shared by training and the toolkit (no file formats, no CLI)."""

from .generator import CONFIG_NAME, WEIGHTS_NAME, Generator, GeneratorConfig
from .renderer import RayDraws, RenderOptions

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "Generator", "GeneratorConfig", "RayDraws", "RenderOptions"]
