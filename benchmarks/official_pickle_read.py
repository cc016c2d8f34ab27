"""How much the safe reader costs: restricted vs stock unpickling of an official-format snapshot.

Builds the mini fixture snapshot (G, D, G_ema, Adam states: ~75 MB, the layout of the 767 MB FFHQ
release) with tests/official_pickle_factory.py, then times, best of N runs:

- stock: ``pickle.load`` with stand-in modules for ``src.*``/``omegaconf.*`` whose persistence hook
  just returns its meta (the official hook would also exec the embedded source: not measured);
- safe: ``epigraf_tools.checkpoints.safe_pickle.safe_load`` (budget pre-scan, allow-list, validated storages, CPU);
- full: ``read_official_snapshot`` (safe load + hashing + module walk + config) and ``.generator()``.

``--ffhq512`` instead builds a snapshot of FFHQ-512 size (G and G_ema of the FFHQ-512 architecture
with random weights, G's Adam state, the mini D and its Adam state), and ``--stats`` prints what the
budget pre-scan saw (opcodes, memo, nesting: how far each is from its budget).

Usage: python benchmarks/official_pickle_read.py [--repeat 3] [--ffhq512] [--stats] [--pure-python]
"""

from __future__ import annotations

import argparse
import io
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import official_pickle_factory as factory  # noqa: E402

from epigraf_tools.checkpoints.official_pickle import read_official_snapshot  # noqa: E402
from epigraf_tools.checkpoints.safe_pickle import safe_load  # noqa: E402


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ffhq512_generator(experiment: dict) -> tuple[dict, dict, dict]:
    """Random weights of the FFHQ-512 architecture, with its official-style config and kwargs."""
    from epigraf_tools.models import Generator, GeneratorConfig

    config = GeneratorConfig(
        img_resolution=512, triplane_res=512, channel_base=32768, channel_max=512, num_ray_steps=48, fov=12.0
    )
    torch.manual_seed(0)
    G = Generator(config)
    state = {k: v.detach().clone() for k, v in G.state_dict().items()}
    return state, factory.experiment_for(config), factory.init_kwargs_for(config)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fixtures", type=Path, default=ROOT.parent / "shared" / "fixtures" / "official_mini")
    parser.add_argument("--ffhq512", action="store_true", help="an FFHQ-512-size snapshot instead of the mini one")
    parser.add_argument("--stats", action="store_true", help="print what the budget pre-scan saw")
    parser.add_argument("--pure-python", action="store_true", help="also time stock pickle._Unpickler")
    args = parser.parse_args()

    g = {k: torch.from_numpy(v) for k, v in np.load(args.fixtures / "G_ema_state.npz").items()}
    d = {k: torch.from_numpy(v) for k, v in np.load(args.fixtures / "D_state.npz").items()}
    experiment = factory.load_experiment_config(args.fixtures)
    g_kwargs, d_kwargs = factory.mini_init_kwargs(experiment, g["mapping.mean_camera_pose"])
    if args.ffhq512:
        g, experiment, g_kwargs = ffhq512_generator(experiment)
    data = factory.official_snapshot_bytes(g, experiment, d_state=d, g_init_kwargs=g_kwargs, d_init_kwargs=d_kwargs)
    megabytes = len(data) / 1e6
    if args.stats:
        from epigraf_tools.checkpoints import pickle_scan

        start = time.perf_counter()
        seen = pickle_scan.scan_pickle(data)
        took = time.perf_counter() - start
        print(
            f"pre-scan {took:.3f} s: {seen.opcodes:,} opcodes (budget {pickle_scan.MAX_OPCODES:,}), "
            f"memo up to {seen.max_memo_index:,} ({pickle_scan.MAX_MEMO_INDEX:,}), "
            f"nesting {seen.max_depth} ({pickle_scan.MAX_NESTING}), {len(g)} G_ema tensors"
        )

    def stock() -> None:
        with factory.fake_official_modules():
            sys.modules["src.torch_utils.persistence"]._reconstruct_persistent_obj = lambda meta: meta
            pickle.load(io.BytesIO(data))

    def safe() -> None:
        safe_load(io.BytesIO(data))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.pkl"
        path.write_bytes(data)

        def full() -> None:
            read_official_snapshot(path).generator()

        t_stock, t_safe, t_full = (best_of(fn, args.repeat) for fn in (stock, safe, full))
    print(f"snapshot {megabytes:.1f} MB, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"stock pickle.load      {t_stock:6.3f} s  {megabytes / t_stock:7.1f} MB/s")
    ratio = t_safe / t_stock
    print(f"safe_load              {t_safe:6.3f} s  {megabytes / t_safe:7.1f} MB/s  ratio safe/stock {ratio:.2f}")
    print(f"read + build generator {t_full:6.3f} s  {megabytes / t_full:7.1f} MB/s")
    print(f"estimate for the 767 MB FFHQ release: {767 / (megabytes / t_full):.1f} s")
    if args.pure_python:  # the alternative to a pre-scan: counting inside the pure-Python unpickler

        def pure() -> None:
            with factory.fake_official_modules():
                sys.modules["src.torch_utils.persistence"]._reconstruct_persistent_obj = lambda meta: meta
                pickle._Unpickler(io.BytesIO(data)).load()

        t_pure = best_of(pure, args.repeat)
        print(f"stock pickle._Unpickler {t_pure:6.3f} s  {megabytes / t_pure:7.1f} MB/s  (pure Python, no checks)")


if __name__ == "__main__":
    main()
