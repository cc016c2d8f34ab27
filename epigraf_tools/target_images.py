"""Photos as inversion targets: any size and mode -> [1, 3, R, R] in [-1, 1] at the model's resolution.

* Size: the shorter side is resized to R (Lanczos) and the longer side centre-cropped to R, so the
  middle of the picture is kept without distortion. Crop beforehand if the subject is off-centre.
* Transparency: RGBA / LA / palette images with transparency are composited on the model's own
  background colour (white for ``white_back`` models, else black), as its renders would show it.
* Anything Pillow cannot decode is refused with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import EpigrafError

MAX_PIXELS = 64 * 2**20  # 64 megapixels: larger files are refused before decoding (decompression bombs)


class TargetImageError(EpigrafError):
    """An input image that cannot be read or used."""


def background_value(white_back: bool) -> int:
    return 255 if white_back else 0


def read_target(path: str | Path, resolution: int, white_back: bool) -> np.ndarray:
    """Read a picture file -> uint8 [R, R, 3], resized, centre-cropped and composited as described above."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise TargetImageError(f"image {path} does not exist")
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise TargetImageError(f"image {path.name} has {img.width}x{img.height} pixels: over 64 megapixels")
            img.load()
            rgb = _composite(img, background_value(white_back))
    except TargetImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise TargetImageError(f"cannot read image {path.name}: {exc}") from None
    return np.asarray(_fit(rgb, resolution), dtype=np.uint8)


def _composite(img, background: int):
    from PIL import Image

    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    base = Image.new("RGBA", rgba.size, (background, background, background, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")


def _fit(img, resolution: int):
    """Resize the shorter side to ``resolution``, then centre-crop the longer one."""
    from PIL import Image

    w, h = img.size
    scale = resolution / min(w, h)
    size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
    img = img.resize(size, Image.Resampling.LANCZOS)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return img.crop((left, top, left + resolution, top + resolution))


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """uint8 [R, R, 3] -> float [1, 3, R, R] in [-1, 1] (the generator's image range)."""
    return torch.from_numpy(rgb.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1).unsqueeze(0).contiguous()


def prepare_image(path: str | Path, resolution: int, white_back: bool) -> torch.Tensor:
    """A picture file -> the target tensor [1, 3, R, R] in [-1, 1] that ``inversion.invert`` takes."""
    return to_tensor(read_target(path, resolution, white_back))
