"""Optional fused C++ CPU kernels, JIT-built on first use and cached.

The kernels are built with ``torch.utils.cpp_extension.load`` (needs a C++ compiler and the
``ninja`` executable; the PyPI ``ninja`` package provides one). A cold build took 70-150 s on a
shared 2-core CPU; later loads take milliseconds (a finished build is imported directly, without the
compiler or ninja). The build lives in a cache folder keyed by everything the
binary depends on (torch version, Python version, compiler version, flags, source hash, and for
-march=native builds the CPU model and flags), by default
``$XDG_CACHE_HOME/epigraf-tools/kernels/<key>`` (``~/.cache/...``; override with
``$EPIGRAF_KERNEL_CACHE``), so every venv with the same torch and compiler reuses one build instead
of recompiling. Before a cold build, ``on_build`` (or, without one, the ``epigraf_tools.kernels``
logger at INFO) hears that it is starting, why, and how long it takes. When anything goes wrong,
callers get ``None`` and use the pure-PyTorch path, which computes the same values; set
``EPIGRAF_NO_KERNELS=1`` to skip the kernels altogether.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

KERNEL_DIR = Path(__file__).resolve().parent
DENSITY_SOURCE = KERNEL_DIR / "density_slab.cpp"
DISABLE_ENV = "EPIGRAF_NO_KERNELS"
CACHE_ENV = "EPIGRAF_KERNEL_CACHE"
BUILD_MESSAGE = (
    "Building the fused C++ density kernel once for this torch and compiler (1-3 minutes on a small CPU). It makes "
    "density volumes several times faster (and CPU renders about 1.5x); later runs load it from {where}."
)

# ``method="auto"`` builds the kernel only for grids of at least this many voxels (or uses it when a build
# is already cached). Measured on a shared 2-core CPU: a cold build takes 70-150 s, while the pure-PyTorch
# separable path takes ~1.4 s at 256^3 for an FFHQ-size model (far less for the embedded one), so below
# this size the build costs a minute to save about a second. At 384^3 (~5 s separable) and above, the
# kernel's several-fold speed-up pays for the one-off build within a few volumes (512^3: ~11 s each).
AUTO_BUILD_VOXELS = 384**3

logger = logging.getLogger(__name__)

# Flag sets tried in order: the native build is the fast one; the plain one is for compilers that
# reject -march=native (some clang/arm64 setups). -fopenmp is what makes the kernels' at::parallel_for
# share rows over torch's threads: without it ATen's header compiles the loop serially (measured on 2
# idle cores, 512^3 relu_slab: 1.28 s with 2 threads without it, 0.62 s with it). It adds no link
# flag: the OpenMP calls resolve to the runtime libtorch_cpu already loads. Compilers without OpenMP
# (Apple clang) fail that set once, leave a marker, and use the next.
_FLAG_SETS: tuple[tuple[str, ...], ...] = (
    ("-O3", "-march=native", "-fopenmp"),
    ("-O3", "-march=native"),
    ("-O3", "-fopenmp"),
    ("-O3",),
)
FAILED_MARKER = "BUILD-FAILED"  # in a build folder: this key failed to build once; never retried

_lock = threading.Lock()
_cache: dict[str, ModuleType | None] = {}
_status: dict[str, str] = {}
_cache_status: dict[str, str] = {}


def kernel_status(name: str = "density_slab") -> str:
    """Why the kernel is or is not in use ('loaded', 'not tried', or the failure reason)."""
    return _status.get(name, "not tried")


def _compiler_available() -> str | None:
    """A reason the build cannot work, or None when a compiler and ninja are present."""
    from torch.utils.cpp_extension import is_ninja_available

    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        return f"no C++ compiler ({cxx!r} not on PATH)"
    if not is_ninja_available():
        return "the ninja executable is missing (pip install ninja)"
    return None


def kernel_cache_root() -> Path:
    """The folder that holds one sub-folder per build key (shared by every venv of this user)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "epigraf-tools" / "kernels"


_compiler_versions: dict[str, str] = {}


def compiler_version(cxx: str) -> str:
    """The compiler's first ``--version`` line ('unknown' when it does not answer).

    Only answers are remembered: an 'unknown' from a compiler that was slow or briefly unavailable
    (a loaded machine) would otherwise key every later lookup in this process to a build folder that
    does not exist, and a finished build would go unused.
    """
    if cxx in _compiler_versions:
        return _compiler_versions[cxx]
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not out.strip():
        return "unknown"
    _compiler_versions[cxx] = out.strip().splitlines()[0]
    return _compiler_versions[cxx]


@functools.lru_cache(maxsize=1)
def cpu_features() -> str:
    """The CPU's model and instruction-set flags (what ``-march=native`` compiles for).

    A native build copied to, or shared through a network home with, a CPU that lacks one of the
    instructions would die with SIGILL, so native build keys include this. Linux reads
    /proc/cpuinfo; elsewhere ``platform.processor()`` is the best cheap stand-in.
    """
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name in ("model name", "flags", "features", "cpu part", "cpu implementer") and name not in wanted:
            wanted[name] = " ".join(sorted(value.split()))
    return "\n".join(f"{k}: {v}" for k, v in sorted(wanted.items())) or platform.processor()


def build_key(source: Path, flags: tuple[str, ...]) -> str:
    """A folder name that changes whenever the binary would: torch, Python, compiler, flags, source.

    ``-march=native`` builds also key on the CPU's features (``cpu_features``); portable ones do not,
    so they stay shared between machines.
    """
    import torch

    cxx = os.environ.get("CXX", "c++")
    native = [cpu_features()] if "-march=native" in flags else []
    ident = "\n".join(
        [
            torch.__version__,
            sys.implementation.cache_tag or "",
            platform.machine(),
            compiler_version(cxx),
            *flags,
            *native,
        ]
    )
    digest = hashlib.sha256(ident.encode() + b"\0" + source.read_bytes()).hexdigest()[:16]
    return f"torch{torch.__version__.replace('+', '-')}-{sys.implementation.cache_tag}-{_tag(flags)}-{digest}"


def _tag(flags: tuple[str, ...]) -> str:
    """'native' (-march=native) or 'portable': the word the status and the module name carry."""
    return "native" if "-march=native" in flags else "portable"


def _describe(flags: tuple[str, ...]) -> str:
    """The status words for a build of ``flags``, e.g. 'native build, threaded'."""
    return f"{_tag(flags)} build" + (", threaded" if "-fopenmp" in flags else "")


def _preferred_build(name: str, source: Path, built_only: bool = False) -> tuple[tuple[str, ...], str, Path | None]:
    """The flag set this process should use: (flags, key, finished binary or None when it must be built).

    Flag sets go in order of preference; one whose build failed before (``FAILED_MARKER``) is passed
    over, so an untried better set is built (once) rather than masked by a cached lesser one, and a
    failed one never costs a second attempt. ``built_only`` (no compiler here) takes the best set that
    is already built. (), "", None when there is none.
    """
    for flags in _FLAG_SETS:
        key = build_key(source, flags)
        build_dir = kernel_cache_root() / key
        if (build_dir / FAILED_MARKER).is_file():
            continue
        module_name = _module_name(name, key, _tag(flags))
        found = sorted(build_dir.glob(f"{module_name}*.so")) + sorted(build_dir.glob(f"{module_name}*.pyd"))
        if found or not built_only:
            return flags, key, (found[0] if found else None)
    return (), "", None


def kernel_is_cached(name: str = "density_slab") -> bool:
    """Whether the kernel is loaded in this process or a finished build sits in the cache (builds nothing)."""
    if _cache.get(name) is not None:
        return True
    if os.environ.get(DISABLE_ENV, "") not in ("", "0") or not DENSITY_SOURCE.is_file():
        return False
    try:
        return _preferred_build(name, DENSITY_SOURCE)[2] is not None
    except OSError:
        return False


def auto_builds_kernel(voxels: int) -> bool:
    """Whether ``method="auto"`` tries the kernel for a grid of ``voxels`` points (see AUTO_BUILD_VOXELS)."""
    return voxels >= AUTO_BUILD_VOXELS or kernel_is_cached()


def cached_kernel_module() -> ModuleType | None:
    """The fused kernel module if it is built already (or loaded), else None; builds nothing (for callers
    that must never wait for a build, such as rendering)."""
    if not kernel_is_cached():
        return None
    module = load_density_kernel()
    return module if hasattr(module, "triplane_field") else None


def attach_field_kernels(field: Any) -> bool:
    """Let a CPU ``FastTriPlaneField`` (or EG3D's) query through the compiled ``triplane_field`` when the
    kernel is already built; returns whether it does. Nothing is built, nothing changes on other devices."""
    module = cached_kernel_module() if field.table.device.type == "cpu" else None
    return module is not None and field.use_gather_kernel(module.triplane_gather, module.triplane_field)


def _module_name(name: str, key: str, tag: str) -> str:
    return f"epigraf_{name}_{key.rsplit('-', 1)[-1]}_{tag}"


def load_density_kernel(verbose: bool = False, on_build: Callable[[str], None] | None = None) -> ModuleType | None:
    """Return the compiled ``density_slab`` module, building it on first use; None when unavailable.

    Thread-safe and cached per process; a failed build is not retried in the same process.
    ``on_build(message)`` is called once before a cold build (nothing is said when a build is cached).
    """
    name = "density_slab"
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):  # checked on every call, so tests can toggle it
        _status[name] = f"disabled by {DISABLE_ENV}"
        return None
    with _lock:
        if name in _cache:
            _status[name] = _cache_status.get(name, _status.get(name, "not tried"))
            return _cache[name]
        module = None
        _status.pop(name, None)  # what this attempt finds, not an earlier one's words
        if not DENSITY_SOURCE.is_file():
            _status[name] = f"kernel source {DENSITY_SOURCE} is missing"
        elif (module := _load_built(name, DENSITY_SOURCE)) is not None:
            pass
        else:
            reason = _compiler_available()
            if reason is not None:  # no compiler: a lesser build that is already cached still serves
                module = _load_built(name, DENSITY_SOURCE, built_only=True)
                if module is None:
                    _status[name] = f"{reason}; {_status[name]}" if name in _status else reason
            else:
                module = _build(name, DENSITY_SOURCE, verbose, on_build)
        _cache[name] = module
        _cache_status[name] = _status[name]
        return module


def _load_built(name: str, source: Path, built_only: bool = False) -> ModuleType | None:
    """Import the preferred finished build straight from the cache, or None (then ``_build`` builds it).

    The folder's key already covers torch, Python, compiler, flags, CPU and source, so nothing needs
    re-checking; this skips importing ``torch.utils.cpp_extension`` (which pulls in setuptools) and
    running ninja: about 0.65 s of CPU per process, measured on 2 loaded cores.
    """
    import importlib.machinery
    import importlib.util

    flags, key, path = _preferred_build(name, source, built_only)
    if path is None:
        return None
    module_name = _module_name(name, key, _tag(flags))
    try:
        loader = importlib.machinery.ExtensionFileLoader(module_name, str(path))
        spec = importlib.util.spec_from_file_location(module_name, str(path), loader=loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: rebuild through ninja instead
        _status[name] = f"cached build {path.name} did not load ({exc.__class__.__name__}: {exc})"[:400]
        return None
    _status[name] = f"loaded ({_describe(flags)})"
    return module


def _build(name: str, source: Path, verbose: bool, on_build: Callable[[str], None] | None = None) -> ModuleType | None:
    from torch.utils.cpp_extension import load

    errors = []
    announced = False
    for flags in _FLAG_SETS:
        # The flag set is part of the key so a cached native build never masks a portable one.
        tag = _tag(flags)
        key = build_key(source, flags)
        build_dir = kernel_cache_root() / key
        module_name = _module_name(name, key, tag)
        marker = build_dir / FAILED_MARKER
        if marker.is_file():
            errors.append(f"{_describe(flags)}: {marker.read_text(errors='replace').strip()[:300]}")
            continue
        try:
            if not announced and not _is_built(build_dir, module_name):
                announced = True
                message = BUILD_MESSAGE.format(where=build_dir.parent)
                if on_build is not None:
                    on_build(message)
                else:
                    logger.info(message)
            build_dir.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = load(
                    name=module_name,
                    sources=[str(source)],
                    extra_cflags=list(flags),
                    build_directory=str(build_dir),
                    verbose=verbose,
                )
            _status[name] = f"loaded ({_describe(flags)})"
            return module
        except Exception as exc:  # noqa: BLE001 - any build failure means: the next flag set, then PyTorch
            reason = _first_error_line(str(exc)) or exc.__class__.__name__
            errors.append(f"{_describe(flags)}: {reason}")
            _mark_failed(marker, reason)
    _status[name] = "build failed: " + "; ".join(errors)
    return None


def _mark_failed(marker: Path, reason: str) -> None:
    """Remember that this key does not build (a later process goes straight to the next flag set)."""
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(reason + "\n")
    except OSError:  # a read-only cache: the attempt is simply repeated next time
        pass


def _is_built(build_dir: Path, module_name: str) -> bool:
    """Whether a finished build is in ``build_dir`` (then loading it takes milliseconds)."""
    return any(build_dir.glob(f"{module_name}*.so")) or any(build_dir.glob(f"{module_name}*.pyd"))


def _first_error_line(text: str) -> str:
    """The compiler's first 'error' line (build logs are long; this is the useful part)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() and not line.lower().startswith("error building extension"):
            return line[:300]
    return lines[0][:300] if lines else ""
