"""Build (or find cached) every optional C++ kernel now: ``python -m epigraf_tools.kernels``.

The density kernel builds itself on first use by a large volume; the renderer's tri-plane lookup never
makes a render wait for the compiler, so it is used only once built, by this command or a benchmark.
Prints each kernel's status and exits 1 when one is unavailable (the pure-PyTorch paths still work).
"""

from __future__ import annotations

import sys

from . import kernel_status, load_kernel


def main() -> int:
    failed = 0
    for name in ("density_slab", "plane_gather"):
        print(f"building or loading {name} ...", flush=True)
        module = load_kernel(name, on_build=lambda message: print(message, flush=True))
        print(f"{name}: {kernel_status(name)}")
        failed += module is None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
