"""A newcomer's first run: the README's Python snippet, --version, --quiet, --help, .gitignore, docs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import epigraf_tools

from support import make_tiny_generator

REPO = Path(__file__).resolve().parents[2]


def _readme_python_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md has no python block under 'Python API'"
    return match.group(1)


def test_the_readme_python_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(_readme_python_block(), "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert (tmp_path / "out" / "samples" / "grid.png").is_file()
    assert scope["pixels"].shape[-1] == 3 and 0 <= scope["pixels"].min() <= scope["pixels"].max() <= 1
    assert scope["volume"].shape == (128, 128, 128)


def test_inference_outputs_need_no_autograd_but_training_still_gets_gradients():
    import torch

    G = make_tiny_generator()
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    out = G.render(ws, torch.tensor([[0.0, 1.5708, 0.0]]), resolution=8)
    assert not out["image"].requires_grad
    out["image"].numpy()  # the README's failure: "Can't call numpy() on Tensor that requires grad"
    assert not G.planes(ws).requires_grad
    assert not G.query(G.planes(ws), torch.zeros(1, 4, 3))["sigma"].requires_grad
    G.train()
    img = G(torch.randn(1, G.z_dim), None, torch.tensor([[0.0, 1.5708, 0.0]]), resolution=8)
    assert img.requires_grad  # forward is the training entry point


def test_version(cli):
    result = cli(["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"epigraf-tools {epigraf_tools.__version__}"


def test_quiet_prints_nothing_at_all(tmp_path):
    model = tmp_path / "tiny"
    make_tiny_generator().save_pretrained(model)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EPIGRAF_NO_KERNELS": "1"}
    args = ["sample", "--model", str(model), "--seeds", "0", "--resolution", "8", "--out", str(tmp_path / "o")]
    code = "import sys; from epigraf_tools.cli.app import main; sys.argv = ['epigraf', *sys.argv[1:]]; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--quiet"], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == "", (proc.stdout, proc.stderr)
    assert (tmp_path / "o" / "seed0000.png").is_file()


@pytest.mark.parametrize(
    "command",
    [[], ["sample"], ["video"], ["interpolate"], ["export-volume"], ["export-mesh"], ["models"], ["download"],
     ["convert"], ["train"], ["fid"], ["dataset", "info"], ["dataset", "synth"]],
)  # fmt: skip
def test_help_has_no_python_type_tags(cli, command):
    result = cli([*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    tags = re.findall(r"<(?:bool|str|int|float|Path)>", result.output)
    assert not tags, tags
    if command == ["sample"]:
        assert "INTEGER" in result.output and "TEXT" in result.output  # values still say what they take


def test_gitignore_covers_the_readme_outputs():
    lines = {line.strip() for line in (REPO / ".gitignore").read_text().splitlines()}
    assert {"data/", "out/", "runs/"} <= lines


def test_readme_points_at_files_that_exist():
    text = (REPO / "README.md").read_text()
    assert "shared/CLI.md" not in text
    for link in re.findall(r"\]\(((?:docs|benchmarks|examples)/[^)#]+)", text):
        assert (REPO / link).exists(), link
    cli_doc = (REPO / "docs" / "cli.md").read_text()
    for needle in ("--seeds", "--model", "130", "143", "export-mesh", "dataset synth", "--quiet"):
        assert needle in cli_doc, needle
