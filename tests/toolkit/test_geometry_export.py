"""epigraf_tools.geometry_export: the Python API writes exactly what export-mesh / export-volume write."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
import trimesh
from typer.testing import CliRunner

from epigraf_tools import (
    EpigrafError,
    ExportHooks,
    GridOptions,
    MeshOptions,
    Truncation,
    export_meshes,
    export_volumes,
    load_generator,
    mesh_volume_file,
)
from epigraf_tools.cli.app import app

runner = CliRunner()
SIDECAR_KEYS = [  # the NAME.mesh.json keys of a seed's mesh, in the order the CLI has always written them
    "model", "seed", "truncation_psi", "truncation_cutoff", "class_index", "class_name", "value", "grid", "units",
    "level", "level_source", "model_default_level", "value_range", "colors", "vertices", "faces", "watertight",
    "winding_consistent", "euler_number", "area", "bounds", "volume", "texture", "files",
]  # fmt: skip


@pytest.fixture(scope="module")
def G():
    return load_generator(None, "cpu")  # the embedded default model


@pytest.fixture(autouse=True)
def no_kernel_build(monkeypatch):
    monkeypatch.setenv("EPIGRAF_NO_KERNELS", "1")


def _cli(*args: str) -> None:
    result = runner.invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_export_meshes_writes_what_the_cli_writes(G, tmp_path):
    _cli("export-mesh", "--seeds", "0,3", "--resolution", "20", "--truncation", "0.7", "--formats", "ply,glb",
         "--smooth", "2", "--out", str(tmp_path / "cli"))  # fmt: skip
    reports = export_meshes(
        G, [0, 3], tmp_path / "api", truncation=Truncation(0.7), grid=GridOptions(resolution=20),
        options=MeshOptions(formats=("ply", "glb"), smooth=2), model="default",
    )  # fmt: skip
    assert _files(tmp_path / "api") == _files(tmp_path / "cli") == [
        "seed0000.glb", "seed0000.mesh.json", "seed0000.ply", "seed0003.glb", "seed0003.mesh.json", "seed0003.ply",
    ]  # fmt: skip
    for seed, report in zip([0, 3], reports, strict=True):
        api = json.loads((tmp_path / "api" / f"seed{seed:04d}.mesh.json").read_text())
        cli = json.loads((tmp_path / "cli" / f"seed{seed:04d}.mesh.json").read_text())
        assert list(api) == list(cli) == SIDECAR_KEYS
        assert api == report.to_dict() and report.provenance["seed"] == seed
        for key in ("seed", "level_source", "vertices", "faces", "watertight", "files", "grid", "colors"):
            assert api[key] == cli[key], key
        assert api["level"] == pytest.approx(cli["level"], rel=1e-6)
        a = trimesh.load(tmp_path / "api" / f"seed{seed:04d}.ply", process=False)
        c = trimesh.load(tmp_path / "cli" / f"seed{seed:04d}.ply", process=False)
        np.testing.assert_allclose(a.vertices, c.vertices, atol=1e-5)
        assert report.faces == len(a.faces) and report.files == [f"seed{seed:04d}.ply", f"seed{seed:04d}.glb"]


def test_export_volumes_then_mesh_volume_file_write_what_the_cli_writes(G, tmp_path):
    _cli("export-volume", "--seeds", "2", "--resolution", "16", "--box", "0.5", "--out", str(tmp_path / "cli"))
    (report,) = export_volumes(G, [2], tmp_path / "api", grid=GridOptions(16, box=0.5), model="default")
    assert _files(tmp_path / "api") == _files(tmp_path / "cli") == ["seed0002.cxc", "seed0002.json", "seed0002.mrc"]
    assert report.files == [tmp_path / "api" / n for n in ("seed0002.mrc", "seed0002.json", "seed0002.cxc")]
    api = json.loads((tmp_path / "api" / "seed0002.json").read_text())
    cli = json.loads((tmp_path / "cli" / "seed0002.json").read_text())
    assert list(api) == list(cli) and api == report.to_dict()
    assert api["grid"] == cli["grid"] and api["seed"] == 2 and api["model"] == "default"
    with mrcfile.open(tmp_path / "api" / "seed0002.mrc") as a, mrcfile.open(tmp_path / "cli" / "seed0002.mrc") as c:
        np.testing.assert_allclose(a.data, c.data, atol=1e-5)
    assert (tmp_path / "api" / "seed0002.cxc").read_text() == (tmp_path / "cli" / "seed0002.cxc").read_text()

    volume = tmp_path / "api" / "seed0002.mrc"
    _cli("export-mesh", "--volume", str(volume), "--formats", "obj", "--out", str(tmp_path / "cli_mesh"))
    mesh = mesh_volume_file(volume, tmp_path / "api_mesh", options=MeshOptions(formats=["obj"]))
    assert _files(tmp_path / "api_mesh") == _files(tmp_path / "cli_mesh") == ["seed0002.mesh.json", "seed0002.obj"]
    api = json.loads((tmp_path / "api_mesh" / "seed0002.mesh.json").read_text())
    cli = json.loads((tmp_path / "cli_mesh" / "seed0002.mesh.json").read_text())
    assert api == cli == mesh.to_dict() and not mesh.colors and mesh.level_source in ("model default", "isodata")


def test_mesh_volume_file_loads_the_model_only_for_colours_from_the_sidecar_seed(G, tmp_path):
    (vol,) = export_volumes(G, [1], tmp_path, grid=GridOptions(14))
    calls = []

    def load():
        calls.append(1)
        return G

    report = mesh_volume_file(vol.path, tmp_path / "m", G=load)
    assert calls == [1] and report.colors
    assert trimesh.load(tmp_path / "m" / "seed0001.ply", process=False).visual.kind == "vertex"
    (tmp_path / "seed0001.json").unlink()  # no sidecar, so no seed: no colours, and the model is not loaded
    notes: list[str] = []
    report = mesh_volume_file(vol.path, tmp_path / "n", G=load, hooks=ExportHooks(on_note=notes.append))
    assert calls == [1] and not report.colors and "without colours" in notes[0]
    with pytest.raises(EpigrafError, match="no sidecar"):
        mesh_volume_file(vol.path, tmp_path / "o", G=load, options=MeshOptions(colors=True))


def test_hooks_hear_each_stage_progress_and_report(G, tmp_path):
    heard: list[str] = []
    updates: list[tuple[int, int]] = []
    reports = []

    class Bar:
        def __init__(self, description, names=None):
            heard.append(f"open {description} {names}")

        def __enter__(self):
            return lambda *a: (updates if len(a) == 2 else heard).append(a if len(a) == 2 else a[0])

        def __exit__(self, *exc):
            return False

    hooks = ExportHooks(progress=Bar, stages=Bar, on_report=reports.append)
    out = export_meshes(G, [5], tmp_path, grid=GridOptions(12), options=MeshOptions(keep_largest=True), hooks=hooks)
    assert reports == out and out[0].provenance["model"] == G.config.name  # no name given: the config's
    assert heard == [
        "open seed0005 volume None",
        "open seed0005 mesh ['marching cubes', 'largest component', 'colours']",
        "marching cubes", "largest component", "colours",
    ]  # fmt: skip
    assert updates and updates[-1] == (12**3, 12**3)


@pytest.mark.parametrize(
    "options, needle",
    [
        (MeshOptions(max_faces=2), "max_faces must be at least 4"),
        (MeshOptions(smooth=-1), "smooth must be >= 0"),
        (MeshOptions(level=float("nan")), "level must be a finite number"),
        (MeshOptions(formats=["fbx"]), "unknown mesh format"),
    ],
)
def test_bad_mesh_options_name_the_parameter_not_a_flag(G, tmp_path, options, needle):
    with pytest.raises(EpigrafError, match=needle) as info:
        export_meshes(G, [0], tmp_path / "x", grid=GridOptions(8), options=options)
    assert "--" not in str(info.value)
    assert not (tmp_path / "x").exists()  # checked before any work or output


@pytest.mark.parametrize(
    "grid, needle", [(GridOptions(value="density"), "value must be"), (GridOptions(method="fast"), "method must be")]
)
def test_bad_grid_options_name_the_parameter(G, tmp_path, grid, needle):
    with pytest.raises(EpigrafError, match=needle):
        export_volumes(G, [0], tmp_path / "x", grid=grid)
    assert not (tmp_path / "x").exists()


def test_export_meshes_lets_go_of_the_volume_before_colours_and_report(G, tmp_path, monkeypatch):
    """The 512 MB volume of a 512^3 mesh is freed once marching cubes is done, so the colours and the
    report reuse its memory instead of adding to the peak."""
    import gc
    import weakref

    import epigraf_tools.geometry_export as ge

    buffers, alive_at_finish = [], []
    make_buffer, finish = ge.padded_volume, ge.finish_mesh

    def recording_buffer(shape):
        volume = make_buffer(shape)
        buffers.append(weakref.ref(volume.base))
        return volume

    def checking_finish(*args, **kwargs):
        gc.collect()
        alive_at_finish.append(buffers[-1]() is not None)
        return finish(*args, **kwargs)

    monkeypatch.setattr(ge, "padded_volume", recording_buffer)
    monkeypatch.setattr(ge, "finish_mesh", checking_finish)
    (report,) = export_meshes(G, [1], tmp_path, grid=GridOptions(resolution=16))
    assert alive_at_finish == [False]
    assert report.colors and report.watertight


def test_surface_then_finish_is_build_mesh(G, tmp_path):
    from epigraf_tools.geometry_export import seed_planes
    from epigraf_tools.mesh import build_mesh, finish_mesh, surface_mesh
    from epigraf_tools.volume import extract_density

    planes, _ = seed_planes(G, 4, Truncation(), None)
    vol = extract_density(G, planes, resolution=18)
    spacing, origin = (0.4 / 17,) * 3, (-0.2,) * 3
    whole, whole_report = build_mesh(vol, spacing, origin, model_default=1e9, color_field=(G, planes))
    mesh, choice = surface_mesh(vol, spacing, origin, model_default=1e9)
    assert choice.source == "isodata" and choice.value_range == (float(vol.min()), float(vol.max()))
    parts, parts_report = finish_mesh(mesh, choice, (G, planes))
    assert parts_report == whole_report and parts_report.colors
    np.testing.assert_array_equal(parts.visual.vertex_colors, whole.visual.vertex_colors)
    np.testing.assert_array_equal(parts.faces, whole.faces)
