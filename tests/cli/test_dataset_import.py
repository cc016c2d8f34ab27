"""``epigraf dataset import`` end to end (synth -> other formats -> import -> info --plot), and its refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from posed_sources import read_zip_meta, synth_truth, write_angles_csv, write_eg3d, write_transforms


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory, cli_runner) -> Path:
    from epigraf_tools.cli.app import app

    out = tmp_path_factory.mktemp("synth") / "shapes.zip"
    res = cli_runner.invoke(app, ["dataset", "synth", str(out), "-n", "6", "--resolution", "16", "--quiet"])
    assert res.exit_code == 0, res.output
    return out


def test_import_then_info_plot(cli, synth: Path, tmp_path: Path) -> None:
    _, truth, _ = synth_truth(synth)
    src = write_transforms(synth, tmp_path / "lego")
    res = cli(["dataset", "import", src, "--out", tmp_path / "d.zip"])
    assert res.exit_code == 0, res.output
    assert "6 images, 16x16, from transforms; fov 30.000 deg, radius 1, up +z (auto)" in res.stdout
    np.testing.assert_allclose(list(read_zip_meta(tmp_path / "d.zip")["camera_angles"].values()), truth, atol=1e-5)
    res = cli(["dataset", "info", tmp_path / "d.zip", "--plot", tmp_path / "poses.png"])
    assert res.exit_code == 0, res.output
    assert "plot        " in res.stdout
    from epigraf_tools.training.dataset_plot import WIDTH, plot_height

    img = np.asarray(Image.open(tmp_path / "poses.png").convert("RGB"))
    assert img.shape == (plot_height(6), WIDTH, 3)
    assert img.std() > 20 and (img < 100).mean() > 0.01  # ink and bars, not a blank page


def _broken(kind: str, synth: Path, folder: Path) -> list[str]:
    """The import arguments of a source broken in one way."""
    if kind == "all-zero yaws":
        csv = write_angles_csv(synth, folder)
        rows = csv.read_text().splitlines()
        csv.write_text("\n".join([rows[0]] + [f"{r.split(',')[0]},0,{r.split(',')[2]}" for r in rows[1:]]))
        return [csv, "--fov", "30"]
    src = write_eg3d(synth, folder)
    meta = json.loads((src / "dataset.json").read_text())
    labels = meta["labels"]
    if kind == "NaN":
        labels[1][1][3] = float("nan")
    elif kind == "non-rotation":
        labels[1][1][0] *= 1.5
    elif kind == "duplicate names":
        labels[2][0] = labels[1][0].replace(".png", ".jpg")
    elif kind == "duplicate poses":
        labels[2][1] = labels[1][1]
    elif kind == "missing images":
        (src / labels[4][0]).unlink()
    (src / "dataset.json").write_text(json.dumps(meta))
    return [src]


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("NaN", "NaN"),
        ("non-rotation", "not a rotation"),
        ("duplicate names", "listed twice"),
        ("duplicate poses", "have the same camera pose"),
        ("missing images", "1 of 6 images are missing"),
        ("all-zero yaws", "all 6 yaws are zero"),
    ],
)
def test_broken_sources_exit_2_with_one_line(kind, needle, cli, one_error_line, synth: Path, tmp_path: Path) -> None:
    args = _broken(kind, synth, tmp_path / "src")
    res = cli(["dataset", "import", *args, "--out", tmp_path / "out.zip"])
    one_error_line(res, needle)
    assert not (tmp_path / "out.zip").exists()


def test_option_errors_name_their_flags(cli, one_error_line, synth: Path, tmp_path: Path) -> None:
    src = write_eg3d(synth, tmp_path / "src")
    out = tmp_path / "o.zip"
    one_error_line(cli(["dataset", "import", src, "--out", out, "--resolution", "24"]), "--resolution must be")
    one_error_line(cli(["dataset", "import", src, "--out", out, "--up", "z"]), "--up must be one of")
    one_error_line(cli(["dataset", "import", src, "--out", tmp_path / "o.tar"]), "must be a .zip")
    one_error_line(cli(["dataset", "import", tmp_path / "nothing", "--out", out]), "does not exist")
    shutil.rmtree(src / "images")
    (src / "dataset.json").write_text("[]")  # JSON, but neither EG3D's nor ours
    one_error_line(cli(["dataset", "import", src, "--out", out]), "cannot tell the format")
    csv = write_angles_csv(synth, tmp_path / "csv")
    one_error_line(cli(["dataset", "import", csv, "--out", out]), "pass --fov")
    csv.write_text(csv.read_text().replace("_deg", ""))
    one_error_line(cli(["dataset", "import", csv, "--out", out, "--fov", "30"]), "pass --angle-units")
    one_error_line(cli(["dataset", "info", synth, "--plot", tmp_path / "p.jpg"]), "must end in .png")
    assert not out.exists()
