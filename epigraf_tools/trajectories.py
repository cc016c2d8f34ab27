"""Camera paths for videos and batch renders: the official ones, an orbit, a sweep, and keyframe files.

Every function returns a list of ``Camera`` (one per frame). ``base`` supplies what the path does not
change (radius, fov, look-at) and the centre of the motion (its yaw and pitch); by default it is the
frontal camera with the model's radius and fov, as the official scripts use.

Official definitions (universome/epigraf, ``inference_utils.generate_camera_angles`` and
``configs/camera/*.yaml``), with t = linspace(0, 1, frames) so the first and last frames coincide:

=============  ====================================================================  =======
name           yaw, pitch (radians), fov (degrees)                                   frames
=============  ====================================================================  =======
front_circle   yaw 0.3 sin(2 pi t), pitch pi/2 + 0.2 cos(2 pi t), fov + 1.0 sin(2 pi t)  64
wiggle         yaw linspace(-1.57, 1.57), pitch pi/2 + 0.5 cos(2 pi t)                16
line           yaw linspace(-1.57, 1.57), pitch 0.835                                 16
points         yaw 0, -0.3, 0.3 at pitch 1.57                                          3
=============  ====================================================================  =======

Ours: ``orbit`` (a full 360-degree turn, last frame one step short of the first so it loops) and
``yaw_sweep`` (yaw = amplitude sin(2 pi k / frames), also loops). ``keyframes`` reads a JSON or YAML
file; see ``load_keyframes``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Camera, CameraError
from .errors import EpigrafError
from .models import GeneratorConfig

Trajectory = list[Camera]

DEFAULT_FRAMES = {"front_circle": 64, "wiggle": 16, "line": 16, "points": 3, "orbit": 120, "yaw_sweep": 60}


def _base(base: Camera | None) -> Camera:
    return base if base is not None else Camera()


def _check_frames(frames: int, minimum: int = 1, name: str = "frames") -> int:
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < minimum:
        raise EpigrafError(f"{name} must be an integer >= {minimum}, got {frames!r}")
    return int(frames)


def _unit(frames: int) -> np.ndarray:
    """linspace(0, 1, frames) with both ends; a single frame sits at t = 0."""
    return np.linspace(0.0, 1.0, frames)


def _cameras(base: Camera, yaws: Sequence[float], pitches: Sequence[float], fovs: Sequence[float] | None = None):
    fovs = [base.fov] * len(yaws) if fovs is None else fovs
    return [
        base.replace(yaw=float(y), pitch=float(p), fov=float(f)) for y, p, f in zip(yaws, pitches, fovs, strict=True)
    ]


def front_circle(
    frames: int = 64,
    base: Camera | None = None,
    yaw_diff: float = 0.3,
    pitch_diff: float = 0.2,
    fov_diff: float = 1.0,
) -> Trajectory:
    """The official zoom-and-fly loop: a small ellipse around the base view while the fov breathes."""
    base = _base(base)
    t = _unit(_check_frames(frames))
    s, c = np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)
    return _cameras(base, base.yaw + yaw_diff * s, base.pitch + pitch_diff * c, base.fov + fov_diff * s)


def wiggle(
    frames: int = 16, base: Camera | None = None, yaw_range: float = 1.57, pitch_diff: float = 0.5
) -> Trajectory:
    """Official: yaw from -1.57 to 1.57 while pitch bobs once around the base pitch."""
    base = _base(base)
    n = _check_frames(frames)
    yaws = base.yaw + np.linspace(-yaw_range, yaw_range, n)
    pitches = base.pitch + pitch_diff * np.cos(2 * np.pi * _unit(n))
    return _cameras(base, yaws, pitches)


def line(frames: int = 16, base: Camera | None = None, yaw_range: float = 1.57, pitch: float = 0.835) -> Trajectory:
    """Official: yaw from -1.57 to 1.57 at a fixed, raised pitch of 0.835 rad (about 48 degrees from +y)."""
    base = _base(base)
    n = _check_frames(frames)
    return _cameras(base, base.yaw + np.linspace(-yaw_range, yaw_range, n), [pitch] * n)


def points(
    frames: int | None = None,
    base: Camera | None = None,
    yaws: Sequence[float] = (0.0, -0.3, 0.3),
    pitch: float = 1.57,
) -> Trajectory:
    """Official: three fixed views. With ``frames`` each view is held for frames // len(yaws) frames."""
    base = _base(base)
    hold = 1 if frames is None else _check_frames(frames, len(yaws)) // len(yaws)
    return [base.replace(yaw=base.yaw + float(y), pitch=pitch) for y in yaws for _ in range(hold)]


def orbit(frames: int = 120, base: Camera | None = None, turns: float = 1.0) -> Trajectory:
    """A full turn (360 degrees per turn) around the vertical axis at the base pitch, seamless when looped."""
    base = _base(base)
    n = _check_frames(frames)
    yaws = base.yaw + 2 * np.pi * turns * np.arange(n) / n
    yaws = np.where(yaws > 2 * np.pi, np.mod(yaws, 2 * np.pi), yaws)  # same views, yaw kept in range
    return _cameras(base, yaws, [base.pitch] * n)


def yaw_sweep(frames: int = 60, base: Camera | None = None, amplitude: float = 0.5) -> Trajectory:
    """Side to side and back: yaw = amplitude sin(2 pi k / frames) at the base pitch (loops)."""
    base = _base(base)
    n = _check_frames(frames)
    return _cameras(base, base.yaw + amplitude * np.sin(2 * np.pi * np.arange(n) / n), [base.pitch] * n)


TRAJECTORIES: dict[str, Callable[..., Trajectory]] = {
    "front_circle": front_circle,
    "wiggle": wiggle,
    "line": line,
    "points": points,
    "orbit": orbit,
    "yaw_sweep": yaw_sweep,
}


# ---------------------------------------------------------------------------------------------
# Keyframe files
# ---------------------------------------------------------------------------------------------

_KEY_FIELDS = ("yaw", "pitch", "radius", "fov", "look_at")


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise EpigrafError(f"cannot read trajectory file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - any parser error is a bad input file
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise EpigrafError(f"trajectory file {path} is not valid {path.suffix.lstrip('.').upper()}: {first}") from None
    if isinstance(data, list):
        data = {"keyframes": data}
    if not isinstance(data, dict):
        raise EpigrafError(f"trajectory file {path} must hold a mapping with a 'keyframes' list")
    return data


def load_keyframes(
    source: str | Path | dict[str, Any], frames: int | None = None, base: Camera | None = None
) -> tuple[Trajectory, dict[str, Any]]:
    """Cameras interpolated between keyframes from a JSON/YAML file (or an already parsed dict).

    Format (YAML shown; JSON alike)::

        frames: 90          # total frames (``frames=`` overrides)
        fps: 30             # optional, a default for videos
        degrees: true       # yaw and pitch in degrees (default false: radians); fov is always degrees
        loop: false         # true: also interpolate from the last keyframe back to the first
        interpolation: smooth   # linear | smooth (ease in and out at every keyframe)
        keyframes:
          - {yaw: -30, pitch: 90}
          - {yaw: 30, pitch: 80, fov: 14, radius: 1.1, look_at: [0, 0.02, 0]}
          - {yaw: 0, at: 0.8}     # optional 'at' in [0, 1]: where on the timeline (default: evenly spaced)

    A keyframe omits what stays the same: missing values carry over from the previous keyframe
    (the first one from ``base``). The first and last keyframes sit at 0 and 1 (the start of the
    timeline and its end, or with ``loop`` the frame before the return to the first keyframe).
    Returns (cameras, options) with options holding 'fps' if given.
    """
    path = Path(source) if not isinstance(source, dict) else None
    data = _read_mapping(path) if path is not None else dict(source)
    where = f"trajectory file {path}" if path is not None else "keyframe trajectory"
    unknown = sorted(set(data) - {"frames", "fps", "degrees", "loop", "interpolation", "keyframes"})
    if unknown:
        raise EpigrafError(f"{where}: unknown keys {', '.join(unknown)}")
    keys = data.get("keyframes")
    if not isinstance(keys, list) or not keys:
        raise EpigrafError(f"{where} needs a non-empty 'keyframes' list")
    degrees = bool(data.get("degrees", False))
    loop = bool(data.get("loop", False))
    mode = data.get("interpolation", "linear")
    if mode not in ("linear", "smooth"):
        raise EpigrafError(f"{where}: interpolation must be 'linear' or 'smooth', got {mode!r}")
    n = frames if frames is not None else data.get("frames", 60)
    n = _check_frames(n, name="frames")
    fps = data.get("fps")
    if fps is not None and (not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 240):
        raise EpigrafError(f"{where}: fps must be a number in (0, 240], got {fps!r}")

    current = _base(base)
    cams: list[Camera] = []
    ats: list[float | None] = []
    for i, key in enumerate(keys):
        if not isinstance(key, dict):
            raise EpigrafError(f"{where}: keyframe {i} must be a mapping like {{yaw: 0, pitch: 90}}")
        bad = sorted(set(key) - set(_KEY_FIELDS) - {"at"})
        if bad:
            raise EpigrafError(f"{where}: keyframe {i} has unknown keys {', '.join(bad)}")
        changes = {k: key[k] for k in _KEY_FIELDS if k in key}
        try:
            for angle in ("yaw", "pitch"):
                if angle in changes and degrees:
                    changes[angle] = math.radians(float(changes[angle]))
            if "look_at" in changes:
                changes["look_at"] = tuple(changes["look_at"])
            current = current.replace(**changes)
        except (CameraError, TypeError, ValueError) as exc:
            raise EpigrafError(f"{where}: keyframe {i}: {exc}") from None
        cams.append(current)
        ats.append(key.get("at"))
    return _interpolate_keyframes(cams, ats, n, loop, mode, where), ({"fps": fps} if fps is not None else {})


def _interpolate_keyframes(
    cams: list[Camera], ats: list[float | None], frames: int, loop: bool, mode: str, where: str
) -> Trajectory:
    if len(cams) == 1:
        return [cams[0]] * frames
    if loop:
        cams = cams + [cams[0]]
        ats = ats + [None]
    segments = len(cams) - 1
    times = [float(a) if a is not None else i / segments for i, a in enumerate(ats)]
    times[0], times[-1] = 0.0, 1.0
    if any(b <= a for a, b in zip(times, times[1:], strict=False)):
        raise EpigrafError(f"{where}: keyframe 'at' values must increase strictly within [0, 1]")
    # Looped paths stop one step short of the start so the video repeats without a doubled frame.
    ts = np.arange(frames) / frames if loop else np.linspace(0.0, 1.0, frames)
    values = np.array([[c.yaw, c.pitch, c.radius, c.fov, *c.look_at] for c in cams])
    out: list[Camera] = []
    for t in ts:
        seg = min(int(np.searchsorted(times, t, side="right")) - 1, segments - 1)
        u = (t - times[seg]) / (times[seg + 1] - times[seg])
        if mode == "smooth":
            u = u * u * (3 - 2 * u)
        v = values[seg] * (1 - u) + values[seg + 1] * u
        out.append(Camera(yaw=v[0], pitch=v[1], radius=v[2], fov=v[3], look_at=tuple(v[4:7])))
    return out


def get_trajectory(
    name: str | Path,
    frames: int | None = None,
    base: Camera | None = None,
    config: GeneratorConfig | None = None,
) -> tuple[Trajectory, dict[str, Any]]:
    """A named trajectory or a keyframe file (.json/.yaml/.yml). Returns (cameras, options).

    ``frames`` None takes each trajectory's official default. ``base`` defaults to the frontal camera
    with the model's radius and fov (``config``).
    """
    base = base if base is not None else Camera.default(config)
    key = str(name)
    if key in TRAJECTORIES:
        if frames is None:
            return TRAJECTORIES[key](base=base), {}
        return TRAJECTORIES[key](frames=frames, base=base), {}
    path = Path(key)
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        if not path.is_file():
            raise EpigrafError(f"trajectory file {path} does not exist")
        return load_keyframes(path, frames, base)
    raise EpigrafError(
        f"unknown trajectory {key!r}; expected one of {', '.join(TRAJECTORIES)} or a .json/.yaml keyframe file"
    )


def check_trajectory_name(name: str | Path) -> None:
    """Validate a trajectory argument without building it (cheap, before any model is loaded)."""
    key = str(name)
    if key in TRAJECTORIES:
        return
    path = Path(key)
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        if not path.is_file():
            raise EpigrafError(f"trajectory file {path} does not exist")
        return
    raise EpigrafError(
        f"unknown trajectory {key!r}; expected one of {', '.join(TRAJECTORIES)} or a .json/.yaml keyframe file"
    )
