"""epigraf_tools/kernels: where builds are cached and the one-off build notice (the build is faked here)."""

from __future__ import annotations

import platform
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.utils.cpp_extension

import epigraf_tools.kernels as kernels
from epigraf_tools.cli.geometry_args import geometry_hooks
from epigraf_tools.geometry_export import prepare_kernel


@pytest.fixture()
def fake_build(monkeypatch, tmp_path):
    """A stand-in for ``cpp_extension.load`` that 'compiles' by writing NAME.so into the build folder."""
    calls: list[dict] = []

    def load(name, sources, extra_cflags, build_directory, verbose):
        calls.append({"name": name, "build_directory": build_directory, "flags": extra_cflags})
        (Path(build_directory) / f"{name}.so").write_bytes(b"")
        return types.ModuleType(name)

    monkeypatch.delenv(kernels.DISABLE_ENV, raising=False)
    monkeypatch.setenv(kernels.CACHE_ENV, str(tmp_path / "kernels"))
    monkeypatch.setattr(torch.utils.cpp_extension, "load", load)
    monkeypatch.setattr(kernels, "_compiler_available", lambda: None)
    monkeypatch.setattr(kernels, "_cache", {})
    return calls


def test_a_flag_set_that_fails_is_marked_and_never_tried_again(fake_build, monkeypatch):
    """Apple clang rejects -fopenmp: that set fails once, the next one serves, later processes skip it."""
    real_load = torch.utils.cpp_extension.load

    def no_openmp(name, sources, extra_cflags, build_directory, verbose):
        if "-fopenmp" in extra_cflags:
            raise RuntimeError("clang: error: unsupported option '-fopenmp'")
        return real_load(name, sources, extra_cflags, build_directory, verbose)

    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_openmp)
    assert kernels.load_density_kernel() is not None
    assert [c["flags"] for c in fake_build] == [["-O3", "-march=native"]]
    assert kernels.kernel_status() == "loaded (native build)"
    marker = Path(kernels.kernel_cache_root()) / kernels.build_key(kernels.DENSITY_SOURCE, kernels._FLAG_SETS[0])
    assert "unsupported option" in (marker / kernels.FAILED_MARKER).read_text()
    assert kernels.kernel_is_cached()  # the failed set does not count as "needs a build"
    monkeypatch.setattr(kernels, "_cache", {})  # a new process: no second attempt at the failed set
    assert kernels.load_density_kernel() is not None
    assert [c["flags"] for c in fake_build] == [["-O3", "-march=native"]] * 2


def test_a_cached_lesser_build_does_not_mask_an_untried_better_one(fake_build):
    """A cache from before the threaded flag set (or another machine's portable build) gets the better build."""
    lesser = kernels._FLAG_SETS[1]
    key = kernels.build_key(kernels.DENSITY_SOURCE, lesser)
    folder = kernels.kernel_cache_root() / key
    folder.mkdir(parents=True)
    (folder / f"{kernels._module_name('density_slab', key, 'native')}.so").write_bytes(b"")
    assert not kernels.kernel_is_cached()  # 'auto' on a small grid will not start a build for it
    assert kernels.load_density_kernel() is not None
    assert [c["flags"] for c in fake_build] == [list(kernels._FLAG_SETS[0])]
    assert kernels.kernel_status() == "loaded (native build, threaded)"


def test_the_build_notice_comes_once_and_only_for_a_cold_build(fake_build, monkeypatch):
    heard: list[str] = []
    assert kernels.load_density_kernel(on_build=heard.append) is not None
    assert len(heard) == 1 and "minutes" in heard[0] and "once" in heard[0]
    assert kernels.load_density_kernel(on_build=heard.append) is not None  # cached in this process
    monkeypatch.setattr(kernels, "_cache", {})  # a new process: the build is on disk, nothing to say
    assert kernels.load_density_kernel(on_build=heard.append) is not None
    assert len(heard) == 1 and len(fake_build) == 2


def test_builds_are_keyed_by_torch_python_compiler_and_source_not_by_venv(fake_build, monkeypatch, tmp_path):
    kernels.load_density_kernel()
    first = fake_build[0]["build_directory"]
    assert first.startswith(str(tmp_path / "kernels")) and torch.__version__.replace("+", "-") in first
    assert sys.implementation.cache_tag in first
    monkeypatch.setattr(sys, "prefix", "/another/venv")  # another venv with the same torch: the same folder
    assert kernels.build_key(kernels.DENSITY_SOURCE, ("-O3",)) == kernels.build_key(kernels.DENSITY_SOURCE, ("-O3",))
    key = kernels.build_key(kernels.DENSITY_SOURCE, ("-O3",))
    real_version = torch.__version__
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert kernels.build_key(kernels.DENSITY_SOURCE, ("-O3",)) != key
    monkeypatch.setattr(torch, "__version__", real_version)
    assert kernels.build_key(kernels.DENSITY_SOURCE, ("-O3",)) == key
    monkeypatch.setattr(kernels, "compiler_version", lambda cxx: "g++ (fake) 99.1")
    assert kernels.build_key(kernels.DENSITY_SOURCE, ("-O3",)) != key


def test_default_cache_is_under_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv(kernels.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kernels.kernel_cache_root() == tmp_path / "epigraf-tools" / "kernels"


def test_the_cli_says_on_stderr_that_the_kernel_is_being_built(fake_build, capsys, monkeypatch):
    prepare_kernel("auto", "cpu", kernels.AUTO_BUILD_VOXELS, geometry_hooks(quiet=False))
    err = capsys.readouterr().err
    assert err.count("Building the fused C++ density kernel once") == 1
    monkeypatch.setattr(kernels, "_cache", {})
    prepare_kernel("auto", "cpu", kernels.AUTO_BUILD_VOXELS, geometry_hooks(quiet=False))  # built: silent
    assert "Building" not in capsys.readouterr().err


def test_quiet_silences_the_build_notice(fake_build, capsys):
    prepare_kernel("auto", "cpu", kernels.AUTO_BUILD_VOXELS, geometry_hooks(quiet=True))
    assert capsys.readouterr().err == ""


def test_auto_builds_the_kernel_only_for_big_grids_or_when_it_is_cached(fake_build, capsys):
    from analytic_fields import sphere_generator

    from epigraf_tools.volume import extract_density

    assert not kernels.kernel_is_cached()
    prepare_kernel("auto", "cpu", 64**3, geometry_hooks(quiet=False))  # small grid, nothing cached: no build
    G, planes = sphere_generator()
    extract_density(G, planes, resolution=16, method="auto")
    assert fake_build == [] and "Building" not in capsys.readouterr().err
    assert not kernels.kernel_is_cached()
    prepare_kernel("kernel", "cpu", 64**3)  # asked for by name: built whatever the size
    assert len(fake_build) == 1 and kernels.kernel_is_cached()
    kernels._cache.clear()  # a new process: the build is on disk, so auto uses it at any size
    assert kernels.kernel_is_cached() and kernels.auto_builds_kernel(8**3)


def test_auto_builds_the_kernel_for_a_grid_of_auto_build_voxels(fake_build, capsys):
    prepare_kernel("auto", "cpu", kernels.AUTO_BUILD_VOXELS - 1, geometry_hooks(quiet=False))
    assert fake_build == []
    prepare_kernel("auto", "cpu", kernels.AUTO_BUILD_VOXELS, geometry_hooks(quiet=False))
    assert len(fake_build) == 1 and capsys.readouterr().err.count("Building the fused C++ density kernel") == 1


def test_extraction_picks_the_path_by_the_same_rule(fake_build):
    from analytic_fields import sphere_generator

    from epigraf_tools.volume import FoldedField, _choose_method

    G, _ = sphere_generator()
    folded = FoldedField.from_generator(G, torch.device("cpu"))
    assert _choose_method("auto", torch.device("cpu"), folded, 64**3) == ("separable", None)
    assert fake_build == []
    used, module = _choose_method("auto", torch.device("cpu"), folded, kernels.AUTO_BUILD_VOXELS)
    assert used == "kernel" and module is not None and len(fake_build) == 1
    assert _choose_method("auto", torch.device("cpu"), folded, 8**3)[0] == "kernel"  # now built: used at any size


def test_native_builds_are_keyed_by_the_cpu_and_portable_ones_are_not(monkeypatch):
    native, portable = ("-O3", "-march=native"), ("-O3",)
    keys = (kernels.build_key(kernels.DENSITY_SOURCE, native), kernels.build_key(kernels.DENSITY_SOURCE, portable))
    monkeypatch.setattr(kernels, "cpu_features", lambda: "model name: another CPU\nflags: sse2")
    assert kernels.build_key(kernels.DENSITY_SOURCE, native) != keys[0]  # a native build never runs elsewhere
    assert kernels.build_key(kernels.DENSITY_SOURCE, portable) == keys[1]


def test_cpu_features_name_the_instruction_sets():
    kernels.cpu_features.cache_clear()
    text = kernels.cpu_features()
    assert text.strip()
    if platform.machine() == "x86_64" and Path("/proc/cpuinfo").is_file():
        assert "flags:" in text and "sse2" in text  # every x86-64 CPU has SSE2


def test_a_source_change_gives_a_new_build_key(tmp_path):
    src = tmp_path / "k.cpp"
    src.write_text("int x;\n")
    key = kernels.build_key(src, ("-O3",))
    src.write_text("int y;\n")
    assert kernels.build_key(src, ("-O3",)) != key
    assert kernels.build_key(src, ("-O3", "-march=native")) != kernels.build_key(src, ("-O3",))


def test_a_cached_build_that_does_not_load_says_why_in_the_status(monkeypatch, tmp_path):
    """Without a compiler, a damaged cached binary leaves the PyTorch path and a status naming both causes."""
    monkeypatch.delenv(kernels.DISABLE_ENV, raising=False)
    monkeypatch.setenv(kernels.CACHE_ENV, str(tmp_path / "kernels"))
    monkeypatch.setattr(kernels, "_cache", {})
    monkeypatch.setattr(kernels, "_compiler_available", lambda: "no C++ compiler (test)")
    key = kernels.build_key(kernels.DENSITY_SOURCE, kernels._FLAG_SETS[0])
    folder = kernels.kernel_cache_root() / key
    folder.mkdir(parents=True)
    (folder / f"{kernels._module_name('density_slab', key, 'native')}.so").write_bytes(b"not an ELF file")
    assert kernels.load_density_kernel() is None
    status = kernels.kernel_status()
    assert status.startswith("no C++ compiler (test); cached build ") and "did not load (ImportError" in status


def test_a_compiler_that_does_not_answer_once_is_asked_again(monkeypatch):
    """'unknown' is not remembered: one slow answer on a loaded machine must not re-key the whole process."""
    import subprocess

    monkeypatch.setattr(kernels, "_compiler_versions", {})
    real_run, calls = subprocess.run, []

    def run(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:  # the first call times out
            raise subprocess.TimeoutExpired("c++", 30)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    cxx = sys.executable  # a program that surely answers --version
    assert kernels.compiler_version(cxx) == "unknown"
    assert kernels.compiler_version(cxx).startswith("Python 3")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("asked twice")))
    assert kernels.compiler_version(cxx).startswith("Python 3")  # an answer is kept
