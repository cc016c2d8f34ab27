"""Model cards (README.md with Hugging Face front matter) for generator folders.

A card tells a user where the weights came from, under which licence, and the numbers needed to
use them well: image and tri-plane resolution, classes, camera (fov, radius, near/far), the
tri-plane box in world units and a starting iso level for meshes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..models import GeneratorConfig
from ..models.eg3d import EG3DConfig

MODEL_CARD_NAME = "README.md"
# The official threshold of scripts/extract_geometry.py: sigma = 25 (raw 25 for models without a density shift).
OFFICIAL_ISO_LEVEL = 25.0


@dataclass(frozen=True)
class Licence:
    """A licence as the Hub's front matter spells it, plus one sentence for people."""

    hub_id: str
    name: str | None
    link: str | None
    note: str


OFFICIAL_LICENCE = Licence(
    hub_id="other",
    name="nvidia-source-code-license-nc",
    link="https://github.com/NVlabs/stylegan3/blob/main/LICENSE.txt",
    note=(
        "Weights of the official EpiGRAF release (Skorokhodov et al., NeurIPS 2022). The EpiGRAF code base "
        "builds on StyleGAN3 and its authors state it is likely restricted by the NVIDIA Source Code "
        "License-NC: non-commercial (research and evaluation) use only. Converting the format does not "
        "change the licence."
    ),
)
EG3D_LICENCE = Licence(
    hub_id="other",
    name="nvidia-source-code-license-nc",
    link="https://github.com/NVlabs/eg3d/blob/main/LICENSE.txt",
    note=(
        "Weights of the official EG3D release (Chan et al., CVPR 2022), published by NVIDIA under the NVIDIA "
        "Source Code License-NC: non-commercial (research and evaluation) use only. Converting the format does "
        "not change the licence."
    ),
)
# The marching-cubes level the EG3D repository recommends for its shape extraction (sigma = 10).
EG3D_ISO_LEVEL = 10.0
UNKNOWN_LICENCE = Licence("unknown", None, None, "The licence of these weights was not recorded.")


def render_model_card(
    config: GeneratorConfig,
    *,
    title: str | None = None,
    source: dict[str, Any] | None = None,
    licence: Licence = UNKNOWN_LICENCE,
    num_params: int | None = None,
    repo_id: str | None = None,
) -> str:
    """The README.md text for a generator folder (YAML front matter + markdown)."""
    c = config
    front = _front_matter(licence, ("epigraf", "3d-aware-gan", "nerf", "tri-plane", "gan"))
    title = title or f"EpiGRAF generator: {c.name}"
    classes = "unconditional" if c.c_dim == 0 else f"{c.c_dim} classes"
    if c.class_names:
        classes += ": " + ", ".join(c.class_names[:12]) + (" ..." if len(c.class_names) > 12 else "")
    box = c.cube_scale
    background_net = f", {c.bg_model} network" if c.bg_model else ""
    lines = [*front, "", f"# {title}", ""]
    lines += _source_and_licence(source, licence)
    lines += [
        "## Model",
        "",
        "| setting | value |",
        "|---|---|",
        f"| image resolution | {c.img_resolution} x {c.img_resolution} |",
        f"| tri-plane | 3 x {c.feat_dim} x {c.triplane_res} x {c.triplane_res} |",
        f"| latent z / w | {c.z_dim} / {c.w_dim} ({c.num_ws} ws) |",
        f"| classes | {classes} |",
        f"| camera-conditioned mapping | {'yes' if c.camera_cond else 'no'} |",
        f"| ray steps | {c.num_ray_steps} coarse + {c.num_ray_steps} importance |",
        f"| density | {c.clamp_mode}(raw + {c.density_shift:g}) |",
        f"| background | {'white' if c.white_back else 'black'}{background_net} |",
    ]
    if num_params is not None:
        lines.append(f"| parameters | {num_params / 1e6:.2f} M |")
    lines += [
        "",
        "## Camera and box",
        "",
        f"- Cameras orbit the origin at radius {c.radius:g} (yaw, pitch in radians; pitch pi/2 is the frontal view, "
        f"mean training pose {[round(v, 4) for v in c.mean_camera_pose]}), field of view {c.fov:g} degrees, "
        f"rays sampled from {c.ray_start:g} to {c.ray_end:g}.",
        f"- The tri-plane covers the cube [-{box:g}, {box:g}]^3 in world units (side {2 * box:g}); points outside "
        "have no features, so volumes and meshes should use this box.",
        f"- Suggested iso level for meshes: raw density {OFFICIAL_ISO_LEVEL - c.density_shift:g}, i.e. sigma = "
        f"{OFFICIAL_ISO_LEVEL:g} after {c.clamp_mode}(raw + {c.density_shift:g}) (the official extract_geometry.py "
        "threshold); lower it for thin structures.",
        "",
        "## Usage",
        "",
        "```python",
        "from epigraf_tools import load_generator",
        f"G = load_generator({(repo_id or 'path/to/this/folder')!r})",
        "```",
        "",
        "```bash",
        f"epigraf sample --model {repo_id or 'path/to/this/folder'} --seeds 0-3 --truncation 0.7 --out samples/",
        "```",
        "",
    ]
    return "\n".join(lines)


def _front_matter(licence: Licence, tags: tuple[str, ...]) -> list[str]:
    front = ["---", f"license: {licence.hub_id}"]
    if licence.name:
        front.append(f"license_name: {licence.name}")
    if licence.link:
        front.append(f"license_link: {licence.link}")
    front += [
        "library_name: epigraf-tools",
        "pipeline_tag: unconditional-image-generation",
        "tags:",
        *(f"- {t}" for t in tags),
        "---",
    ]
    return front


def _source_and_licence(source: dict[str, Any] | None, licence: Licence) -> list[str]:
    lines = ["## Source", ""]
    if source:
        for key, value in source.items():
            if value is not None:
                lines.append(f"- {key}: `{value}`" if key in ("sha256", "file") else f"- {key}: {value}")
    else:
        lines.append("- not recorded")
    return [*lines, "", "## Licence", "", licence.note, ""]


def render_eg3d_model_card(
    config: EG3DConfig,
    *,
    title: str | None = None,
    source: dict[str, Any] | None = None,
    licence: Licence = EG3D_LICENCE,
    num_params: int | None = None,
    repo_id: str | None = None,
) -> str:
    """The README.md text for an EG3D generator folder: the numbers its conventions need, and what works today."""
    c, rk = config, config.rendering_kwargs
    front = _front_matter(licence, ("eg3d", "3d-aware-gan", "nerf", "tri-plane", "gan"))
    sr = str(rk.get("superresolution_module", "?")).rsplit(".", 1)[-1]
    if rk["ray_start"] == "auto":
        ray_range = "from each ray's entry into the box to its exit (ray_start and ray_end 'auto')"
    else:
        ray_range = f"from {rk['ray_start']} to {rk['ray_end']}"
    lines = [*front, "", f"# {title or 'EG3D generator'}", "", *_source_and_licence(source, licence)]
    lines += [
        "## Model",
        "",
        "| setting | value |",
        "|---|---|",
        f"| image resolution | {c.img_resolution} x {c.img_resolution} (neural render {c.neural_rendering_resolution}, "
        f"{sr}) |",
        "| tri-plane | 3 x 32 x 256 x 256 |",
        f"| latent z / w | {c.z_dim} / {c.w_dim} |",
        "| conditioning | 25-number camera label (cam2world 16 + intrinsics 9) |",
        f"| ray steps | {rk['depth_resolution']} coarse + {rk['depth_resolution_importance']} importance, "
        f"{ray_range} |",
    ]
    if num_params is not None:
        lines.append(f"| parameters | {num_params / 1e6:.2f} M |")
    box = float(rk["box_warp"]) / 2
    lines += [
        "",
        "## Camera and box",
        "",
        f"- The tri-plane covers the cube [-{box:g}, {box:g}]^3 in world units (box_warp {rk['box_warp']}); "
        f"the average camera orbits pivot {rk.get('avg_camera_pivot')} at radius {rk.get('avg_camera_radius')}.",
        f"- Suggested iso level for meshes: {EG3D_ISO_LEVEL:g} (the level the EG3D repository recommends).",
        "",
        "## Usage",
        "",
        "```python",
        "from epigraf_tools import load_generator",
        f"G = load_generator({(repo_id or 'path/to/this/folder')!r})  # an EG3DGenerator",
        "```",
        "",
        "Converting and loading work today; the rendering commands (sample, video, export-volume, ...) do not "
        "support EG3D models yet.",
        "",
    ]
    return "\n".join(lines)


def write_model_card(folder: str | os.PathLike[str], config: GeneratorConfig | EG3DConfig, **kwargs: Any) -> Path:
    """Write README.md into ``folder`` atomically; keyword arguments as :func:`render_model_card`.

    An :class:`EG3DConfig` gets the EG3D card (:func:`render_eg3d_model_card`).
    """
    path = Path(folder) / MODEL_CARD_NAME
    render = render_eg3d_model_card if isinstance(config, EG3DConfig) else render_model_card
    write_text_atomic(path, render(config, **kwargs))
    return path
