"""epigraf-tools: load EpiGRAF checkpoints and make images, videos, volumes and meshes.

The public Python API. Names are imported lazily (on first use) so that ``import epigraf_tools`` and
the CLI start fast; every name below is also importable from its own module.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module (under epigraf_tools) that defines it
_EXPORTS: dict[str, str] = {
    "Generator": "models",
    "GeneratorConfig": "models",
    "EpigrafError": "errors",
    "load_generator": "checkpoints.loading",
    "download_model": "checkpoints.hub",
    "zoo_entries": "checkpoints.zoo",
    "read_official_snapshot": "checkpoints.official_pickle",
    "convert_official": "checkpoints.official_pickle",
    "convert_snapshot": "checkpoints.official_pickle",
    "load_init_networks": "checkpoints.init_weights",
    "describe_model": "checkpoints.zoo",
    "parse_seeds": "seeds",
    "z_from_seed": "seeds",
    "Truncation": "latents",
    "ws_from_seeds": "latents",
    "Camera": "camera",
    "get_trajectory": "trajectories",
    "RenderSettings": "rendering",
    "generate_samples": "sampling",
    "save_samples": "sampling",
    "render_video": "video",
    "render_interpolation": "interpolation",
    "extract_density": "volume",
    "make_volume_grid": "volume",
    "export_volume": "mrc",
    "read_mrc": "mrc",
    "VolumeReport": "mrc",
    "build_mesh": "mesh",
    "export_mesh": "mesh",
    "MeshReport": "mesh",
    "GridOptions": "geometry_export",
    "MeshOptions": "geometry_export",
    "ExportHooks": "geometry_export",
    "export_meshes": "geometry_export",
    "export_volumes": "geometry_export",
    "mesh_volume_file": "geometry_export",
    "fetch_model": "checkpoints.loading",
    "evaluate_fid": "training.metrics",
    "import_dataset": "dataset_import",
    "ImportOptions": "dataset_import",
    "EG3DModel": "eg3d_model",
    "as_toolkit_model": "eg3d_model",
    "ToolkitGenerator": "model_api",
    "IsoSurface": "geometry_render",
    "Lighting": "geometry_render",
    "render_isosurface": "geometry_render",
    "GeometryShading": "geometry_views",
    "save_geometry_samples": "geometry_views",
    "render_geometry_video": "geometry_views",
    "compare_geometry": "geometry_compare",
    "build_demo": "demo",
    "run_demo": "demo",
    "invert": "inversion",
    "InversionOptions": "inversion",
    "InversionResult": "inversion",
    "invert_images": "inversion_files",
    "prepare_image": "target_images",
    "load_latent": "latent_files",
    "save_latent": "latent_files",
    "pin_latent": "latent_files",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'epigraf_tools' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
