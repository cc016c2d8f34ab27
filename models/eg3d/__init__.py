"""The EG3D model family (NVlabs/eg3d conventions), re-implemented; see generator.py for the names."""

from .cameras import fov_to_intrinsics, look_at_pose, make_label, pose_label, split_label
from .config import EG3DConfig
from .discriminator import DualDiscriminator
from .generator import MODEL_FAMILY, EG3DGenerator, OSGDecoder, read_eg3d_config
from .renderer import EG3DDraws
from .superresolution import Superresolution

__all__ = [
    "DualDiscriminator",
    "EG3DConfig",
    "EG3DDraws",
    "EG3DGenerator",
    "MODEL_FAMILY",
    "OSGDecoder",
    "Superresolution",
    "fov_to_intrinsics",
    "look_at_pose",
    "make_label",
    "read_eg3d_config",
    "pose_label",
    "split_label",
]
