"""``epigraf train``: options, config files, errors, a tiny run."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_support import write_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny training steps are far faster on one thread when the machine's cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = [
    "--resolution", "32", "--patch-res", "16", "--batch", "4", "--kimg", "0.004", "--tick-kimg", "0.004",
    "--device", "cpu", "--set", "z_dim=32", "--set", "w_dim=32", "--set", "triplane_res=16",
    "--set", "feat_dim=8", "--set", "g_channel_base=256", "--set", "g_channel_max=32", "--set", "mlp_hid_dim=16",
    "--set", "num_ray_steps=4", "--set", "d_channel_base=256", "--set", "d_channel_max=32",
    "--set", "grid_size=0", "--image-kimg", "0",
]  # fmt: skip


def test_train_tiny_run_and_resume(cli, tmp_path):
    data = write_dataset(tmp_path / "d.zip", n=4, size=32)
    run = tmp_path / "run"
    res = cli(["train", "--data", str(data), "--out", str(run), "--gamma", "0.5", *TINY])
    assert res.exit_code == 0, res.output
    assert "patches     16px" in res.output and "Done at 0.004 kimg" in res.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["gamma"] == 0.5 and cfg["z_dim"] == 32
    # continue the run for one more step, with options read back from the run folder
    res = cli(["train", "--resume", str(run), "--kimg", "0.008", "--quiet"])
    assert res.exit_code == 0, res.output
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_config_file_and_bad_inputs(cli, tmp_path):
    data = write_dataset(tmp_path / "d.zip", n=4, size=32, drop_pose=1)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("batch: 4\npatch-res: 16\nno_such_option: 3\n")
    res = cli(["train", "--data", str(data), "--config", str(cfg_file), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "unknown training option(s): no_such_option" in res.output
    res = cli(["train", "--data", str(data), "--out", str(tmp_path / "r"), *TINY])
    assert res.exit_code == 2
    assert "1 of 4 images have no camera_angles" in res.output and "Traceback" not in res.output
    with zipfile.ZipFile(tmp_path / "empty.zip", "w"):
        pass
    res = cli(["train", "--data", str(tmp_path / "empty.zip"), "--out", str(tmp_path / "r"), *TINY])
    assert res.exit_code == 2 and "no images" in res.output
    res = cli(["train", "--data", str(data), "--gamma", "lots", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "--gamma" in res.output
    res = cli(["train", "--resume", "latest"])
    assert res.exit_code == 2 and "needs --out" in res.output
    assert not (tmp_path / "r").exists()


def test_fine_tune_from_a_model_folder(cli, tmp_path):
    data = write_dataset(tmp_path / "d.zip", n=4, size=32)
    first = tmp_path / "first"
    assert cli(["train", "--data", str(data), "--out", str(first), *TINY]).exit_code == 0
    snap = next(first.glob("snapshot-*"))
    # a different --set for the generator is overridden by the model's own architecture
    args = [
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "ft"),
        "--model",
        str(snap),
        *TINY,
        "--set",
        "feat_dim=4",
    ]
    res = cli(args)
    assert res.exit_code == 0, res.output
    ft = json.loads((next((tmp_path / "ft").glob("snapshot-*")) / "config.json").read_text())
    assert ft["feat_dim"] == 8
    assert json.loads((tmp_path / "ft" / "config.json").read_text())["init_model"] == str(snap)
    # resuming a fine-tuned run rebuilds G from the snapshot's architecture
    res = cli(["train", "--resume", str(tmp_path / "ft"), "--kimg", "0.008", "--quiet"])
    assert res.exit_code == 0, res.output
    res = cli(["train", "--data", str(data), "--out", str(tmp_path / "x"), "--model", "no/such/dir/"])
    assert res.exit_code == 2
