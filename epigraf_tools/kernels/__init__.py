"""Optional fused C++ CPU kernels, JIT-built on first use and cached.

The kernels are built with ``torch.utils.cpp_extension.load`` (needs a C++ compiler and the
``ninja`` executable; the PyPI ``ninja`` package provides one). A cold build takes ~20 s, later
loads come from the torch extensions cache (``$TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``) in milliseconds. When anything goes wrong, callers get ``None`` and
use the pure-PyTorch path, which computes the same values; set ``EPIGRAF_NO_KERNELS=1`` to skip
the kernels altogether.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import warnings
from pathlib import Path
from types import ModuleType

KERNEL_DIR = Path(__file__).resolve().parent
DENSITY_SOURCE = KERNEL_DIR / "density_slab.cpp"
DISABLE_ENV = "EPIGRAF_NO_KERNELS"

# Flag sets tried in order: the native build is the fast one; the plain one is for compilers that
# reject -march=native (some clang/arm64 setups).
_FLAG_SETS: tuple[tuple[str, ...], ...] = (("-O3", "-march=native"), ("-O3",))

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


def load_density_kernel(verbose: bool = False) -> ModuleType | None:
    """Return the compiled ``density_slab`` module, building it on first use; None when unavailable.

    Thread-safe and cached per process; a failed build is not retried in the same process.
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
        if not DENSITY_SOURCE.is_file():
            _status[name] = f"kernel source {DENSITY_SOURCE} is missing"
        else:
            reason = _compiler_available()
            if reason is not None:
                _status[name] = reason
            else:
                module = _build(name, DENSITY_SOURCE, verbose)
        _cache[name] = module
        _cache_status[name] = _status[name]
        return module


def _build(name: str, source: Path, verbose: bool) -> ModuleType | None:
    from torch.utils.cpp_extension import load

    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:10]
    errors = []
    for flags in _FLAG_SETS:
        # The flag set is part of the name so a cached native build never masks a portable one.
        tag = "native" if "-march=native" in flags else "portable"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = load(
                    name=f"epigraf_{name}_{digest}_{tag}",
                    sources=[str(source)],
                    extra_cflags=list(flags),
                    verbose=verbose,
                )
            _status[name] = f"loaded ({tag} build)"
            return module
        except Exception as exc:  # noqa: BLE001 - any build failure means: use the PyTorch path
            errors.append(f"{tag}: {_first_error_line(str(exc)) or exc.__class__.__name__}")
    _status[name] = "build failed: " + "; ".join(errors)
    return None


def _first_error_line(text: str) -> str:
    """The compiler's first 'error' line (build logs are long; this is the useful part)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() and not line.lower().startswith("error building extension"):
            return line[:300]
    return lines[0][:300] if lines else ""
