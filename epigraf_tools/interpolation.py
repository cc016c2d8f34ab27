"""Latent interpolation between keyframe seeds: the ``epigraf interpolate`` command as a Python API.

* ``space='z'``: spherical interpolation (slerp) of the seeds' z, then the mapping network.
* ``space='w'``: each keyframe is mapped once, untruncated, and the ws are interpolated linearly.
* Truncation is applied last, to each frame's w, towards a centre interpolated with the same weight
  (``w_avg`` for unconditional models; the classes' mean ws otherwise). Because truncation is a lerp
  towards that centre, in w space truncating before or after interpolating gives the same frames;
  in z space it has to come after the mapping network, which is where we apply it.
* Class-conditional models interpolate the one-hot labels too.
* Frame i of a transition from seed a to seed b sits at t = i / frames. Keyframes are rendered
  exactly as ``epigraf sample`` renders those seeds (same ws, same ray noise): every frame uses the
  ray noise of its nearer keyframe seed.
* A keyframe may also be a latent file's latent (``StoredLatent``, from ``epigraf invert``): a w or
  w+ that has no z, so only ``space='w'`` takes one. Its untruncated ws are the stored ones and its
  ray noise is seed ``LATENT_NOISE_SEED`` (0), so the keyframe is what ``epigraf sample --latent``
  renders (its default seed is 0 too).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .atomic import write_text_atomic
from .camera import Camera
from .eg3d_model import as_toolkit_model
from .errors import EpigrafError
from .images import make_grid, save_png, to_uint8
from .latent_files import LatentFileError, StoredLatent
from .latents import (
    SampleRequest,
    Truncation,
    map_latents,
    map_rows,
    one_hot,
    provenance,
    seed_classes,
    truncate,
    truncation_centres,
)
from .models import Generator
from .rendering import RenderSettings, check_cameras, render_views
from .sampling import IMAGE_ENCODING, Progress, background_ws, check_batch_size, family_provenance, planes_for
from .seeds import z_from_seeds
from .video import Mp4Writer, VideoOptions

SPACES = ("z", "w")
OUTPUTS = ("mp4", "strip")
LATENT_NOISE_SEED = 0  # the ray noise of a latent keyframe: what `epigraf sample --latent` uses by default
Keyframe = int | StoredLatent  # a seed, or a latent read by latent_files.load_latent


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between rows of a and b [N, D]; exact at t = 0 and t = 1.

    The direction moves along the great circle at constant angular speed and the length is
    interpolated linearly (the mapping network normalises z, so only the direction matters there).
    """
    if t == 0:
        return a.clone()
    if t == 1:
        return b.clone()
    a64, b64 = a.double(), b.double()
    na, nb = a64.norm(dim=-1, keepdim=True), b64.norm(dim=-1, keepdim=True)
    ua, ub = a64 / na.clamp_min(1e-12), b64 / nb.clamp_min(1e-12)
    omega = torch.arccos((ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    arc = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so.clamp_min(1e-12)
    direction = torch.where(so < 1e-6, torch.nn.functional.normalize(ua + (ub - ua) * t, dim=-1), arc)
    return (direction * (na + (nb - na) * t)).to(a.dtype)


@dataclass(frozen=True)
class Step:
    """One frame of an interpolation: between keyframes ``a`` and ``b`` (indices into the seeds) at ``t``."""

    a: int
    b: int
    t: float


def interpolation_steps(num_keys: int, frames: int, loop: bool = False, strip: bool = False) -> list[Step]:
    """The frame schedule.

    Video (``strip`` False): each transition has ``frames`` frames at t = i / frames; without ``loop``
    a final frame shows the last keyframe; with it the path returns to the first keyframe and stops
    one frame short of it, so the video repeats seamlessly. Strip: one row per transition with
    ``frames + 1`` frames from t = 0 to t = 1.
    """
    if num_keys < 2:
        raise EpigrafError(f"interpolation needs at least two keyframe seeds, got {num_keys}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise EpigrafError(f"frames (frames per transition) must be a positive integer, got {frames!r}")
    pairs = [(k, k + 1) for k in range(num_keys - 1)] + ([(num_keys - 1, 0)] if loop else [])
    if strip:
        return [Step(a, b, i / frames) for a, b in pairs for i in range(frames + 1)]
    steps = [Step(a, b, i / frames) for a, b in pairs for i in range(frames)]
    if not loop:
        steps.append(Step(num_keys - 2, num_keys - 1, 1.0))
    return steps


class KeyframeLatents:
    """The keyframes' z, labels, untruncated ws and truncation centres, ready to interpolate.

    ``keyframes``: seeds, or latents from files (``space='w'`` only; unconditional models only).
    """

    def __init__(
        self, G: Generator, keyframes: Sequence[Keyframe], class_index: int | None, truncation: Truncation
    ) -> None:
        self.G = G
        self.keyframes = list(keyframes)
        stored = [k for k in self.keyframes if isinstance(k, StoredLatent)]
        for latent in stored:
            latent.check_model(G)
        if stored and G.c_dim > 0:
            raise LatentFileError("latent files are supported for unconditional models only (this one has classes)")
        self.seeds: list[int | None] = [None if isinstance(k, StoredLatent) else int(k) for k in self.keyframes]
        self.noise_seeds = [LATENT_NOISE_SEED if s is None else s for s in self.seeds]
        self.truncation = truncation
        self.classes = seed_classes(G.config, self.noise_seeds, class_index)
        device = G.device
        # Only seeds have a z; a z schedule is refused for latents (check_keyframe_space), so None is never read.
        self.z = None if stored else z_from_seeds(self.noise_seeds, G.z_dim).to(device)
        self.c = one_hot(self.classes, G.c_dim, device)
        rows = []
        for key in self.keyframes:  # untruncated [1, num_ws, w_dim] each
            if isinstance(key, StoredLatent):
                rows.append(torch.from_numpy(key.ws).to(device, torch.float32).unsqueeze(0))
            else:
                rows.append(map_rows(G, z_from_seeds([int(key)], G.z_dim).to(device), self._label(len(rows))))
        self.ws = torch.cat(rows)  # untruncated [K, num_ws, w_dim]
        need_centres = G.c_dim > 0 and truncation.psi != 1
        n = len(self.keyframes)
        self.centres = truncation_centres(G, self.classes) if need_centres else G.mapping.w_avg.expand(n, -1)

    def _label(self, k: int) -> torch.Tensor | None:
        return None if self.c is None else self.c[k : k + 1]

    @property
    def names(self) -> list[str]:
        """How file names name the keyframes: the seed, or the latent file's stem."""
        return [_keyframe_name(k) for k in self.keyframes]

    @property
    def ids(self) -> list[int | str]:
        """How the sidecar's schedule names the keyframes: the seed (an int), or the latent file's stem."""
        return [n if s is None else s for s, n in zip(self.seeds, self.names, strict=True)]

    def ws_for(self, steps: Sequence[Step], space: str) -> torch.Tensor:
        """Truncated ws [len(steps), num_ws, w_dim] along the schedule."""
        out = []
        for s in steps:
            centre = torch.lerp(self.centres[s.a], self.centres[s.b], s.t)
            c = None if self.c is None else torch.lerp(self.c[s.a : s.a + 1], self.c[s.b : s.b + 1], s.t)
            if space == "z":
                z = slerp(self.z[s.a : s.a + 1], self.z[s.b : s.b + 1], s.t)
                ws = map_latents(self.G, z, c, centre.unsqueeze(0), self.truncation)
            else:
                ws = truncate(torch.lerp(self.ws[s.a : s.a + 1], self.ws[s.b : s.b + 1], s.t), centre, self.truncation)
            out.append(ws)
        return torch.cat(out)


def check_space(space: str) -> str:
    if space not in SPACES:
        raise EpigrafError(f"space must be 'z' (slerp) or 'w' (lerp), got {space!r}")
    return space


def check_keyframe_space(keyframes: Sequence[Keyframe], space: str) -> str:
    """A latent file holds a w (or w+), not a z: slerping z needs every keyframe to be a seed."""
    check_space(space)
    latent = next((k for k in keyframes if isinstance(k, StoredLatent)), None)
    if latent is not None and space == "z":
        name = latent.path.name if latent.path is not None else "a latent keyframe"
        raise EpigrafError(f"space 'z' slerps the seeds' z, but {name} is a {latent.space} latent with no z: use w")
    return space


def _keyframe_name(key: Keyframe) -> str:
    if isinstance(key, StoredLatent):
        return key.path.stem if key.path is not None else "latent"
    return str(int(key))


def _check_keyframes(keyframes: Sequence[Keyframe]) -> list[int]:
    """The seeds among the keyframes (validated as seeds are); latents are checked against the model later."""
    if isinstance(keyframes, (str, bytes)) or not isinstance(keyframes, Sequence):
        raise EpigrafError(f"keyframes must be a list of seeds or latents, got {keyframes!r}")
    return [k for k in keyframes if not isinstance(k, StoredLatent)]  # type: ignore[misc]


def output_stem(keyframes: Sequence[int | str], space: str) -> str:
    """interp_z_0-5-9 (seeds; a latent keyframe by its file's stem: interp_w_photo-5), or
    interp_z_0-to-99_12keys for long lists."""
    if len(keyframes) <= 8:
        return f"interp_{space}_{'-'.join(str(s) for s in keyframes)}"
    return f"interp_{space}_{keyframes[0]}-to-{keyframes[-1]}_{len(keyframes)}keys"


def render_interpolation(
    G: Generator,
    seeds: Sequence[Keyframe],
    out_dir: str | Path,
    frames: int = 30,
    space: str = "z",
    loop: bool = False,
    cameras: Sequence[Camera] | None = None,
    output: str = "mp4",
    truncation: Truncation = Truncation(),
    class_index: int | None = None,
    settings: RenderSettings | None = None,
    options: VideoOptions = VideoOptions(),
    batch_size: int = 8,
    trajectory: str | None = None,
    model: str | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Render an interpolation through ``seeds`` as an mp4 or an image strip (one row per transition).

    ``seeds``: the keyframes in order, each a seed or a ``StoredLatent`` (``latent_files.load_latent``;
    then ``space`` must be 'w'). Latents are checked against the model (shape, no classes) first.

    ``cameras``: one camera for every frame (default: the frontal camera), or a trajectory with as
    many cameras as frames (``num_frames`` tells how many). Returns the written files (media + JSON).
    """
    G = as_toolkit_model(G)
    settings = (settings or RenderSettings()).validate().check_model(G)
    seed_part = _check_keyframes(seeds)
    # The truncation and class checks come with the seed checks; latents alone still need them.
    class_index = SampleRequest.check(seed_part or [LATENT_NOISE_SEED], truncation, class_index, G).class_index
    keyframes = list(seeds)
    check_keyframe_space(keyframes, space)
    check_batch_size(batch_size)
    if output not in OUTPUTS:
        raise EpigrafError(f"output must be 'mp4' or 'strip', got {output!r}")
    if output == "mp4":
        options = options.validate()
    steps = interpolation_steps(len(keyframes), frames, loop, strip=output == "strip")
    cams = list(cameras) if cameras else [Camera.default(G.config)]
    check_cameras(G, cams)  # before any work or output
    if len(cams) not in (1, len(steps)):
        raise EpigrafError(f"need 1 camera or one per frame ({len(steps)}), got {len(cams)}")
    if len(cams) == 1:
        cams = cams * len(steps)
    keys = KeyframeLatents(G, keyframes, class_index, truncation)
    noise = [keys.noise_seeds[s.a] if s.t < 0.5 else keys.noise_seeds[s.b] for s in steps]

    def frame_batches():
        for start in range(0, len(steps), batch_size):
            part = steps[start : start + batch_size]
            ws = keys.ws_for(part, space)
            planes = planes_for(G, ws, settings.noise_mode)
            views = [[c] for c in cams[start : start + len(part)]]
            out = render_views(G, planes, views, settings, noise[start : start + len(part)], background_ws(G, ws))
            yield to_uint8(out["image"][:, 0])
            if progress is not None:
                progress(start + len(part), len(steps))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = output_stem(keys.names, space)
    meta = interpolation_metadata(
        G, keys, steps, cams, space, loop, frames, output, settings, options, trajectory, model
    )
    comment = json.dumps({k: v for k, v in meta.items() if k not in ("cameras", "schedule")}, sort_keys=True)
    if output == "mp4":
        path = out / f"{stem}.mp4"
        with Mp4Writer(path, options, comment) as writer:
            for batch in frame_batches():
                for frame in batch:
                    writer.write(frame)
    else:
        path = out / f"{stem}.png"
        tiles = [frame for batch in frame_batches() for frame in batch]
        save_png(path, make_grid(tiles, columns=frames + 1), {k: v for k, v in meta.items() if k != "cameras"})
    return [path, write_text_atomic(out / f"{stem}.json", json.dumps(meta, indent=2) + "\n")]


def interpolation_metadata(
    G: Generator,
    keys: KeyframeLatents,
    steps: Sequence[Step],
    cameras: Sequence[Camera],
    space: str,
    loop: bool,
    frames: int,
    output: str,
    settings: RenderSettings,
    options: VideoOptions,
    trajectory: str | None,
    model: str | None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        **provenance(G, model, keys.truncation, list(keys.seeds), list(keys.classes)),
        "space": space,
        "interpolation": "slerp of z" if space == "z" else "lerp of w",
        "truncation_applied": "to every frame's w, towards the centre interpolated with the same weight",
        "frames_per_transition": frames,
        "total_frames": len(steps),
        "loop": loop,
        "output": output,
        "trajectory": trajectory,
        "resolution": settings.resolved_resolution(G),
        "deterministic": settings.deterministic,
        "noise_mode": settings.noise_mode,
        "layer": settings.layer,
        "ray_noise": "none" if settings.deterministic else "seed of the nearer keyframe (a latent keyframe's: 0)",
        "image_encoding": IMAGE_ENCODING,
        "keyframes": [_keyframe_record(k) for k in keys.keyframes],
        "schedule": [[keys.ids[s.a], keys.ids[s.b], round(s.t, 6)] for s in steps],
        "cameras": [c.to_dict() for c in cameras],
        **family_provenance(G, settings),
    }
    if output == "mp4":
        meta.update(fps=options.fps, crf=options.crf, codec="h264 (libx264), yuv420p")
    else:
        meta["layout"] = f"rows: transitions, columns: t = 0 .. 1 in {frames + 1} steps"
    return meta


def _keyframe_record(key: Keyframe) -> dict[str, Any]:
    if not isinstance(key, StoredLatent):
        return {"seed": int(key)}
    return {
        "latent": key.path.name if key.path is not None else None,
        "space": key.space,
        "tuned_model": key.tuned_model,
        "made_for": key.metadata.get("model"),
    }


def num_frames(num_keys: int, frames: int, loop: bool = False, output: str = "mp4") -> int:
    """How many frames (and cameras) an interpolation has: use it to size a trajectory."""
    return len(interpolation_steps(num_keys, frames, loop, strip=output == "strip"))
