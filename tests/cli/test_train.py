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


# --------------------------------------------------------------------------- cameras from the dataset
CAMERAS = {"fov": 30.0, "radius": 1.0, "ray_start": 0.7, "ray_end": 1.3, "cube_scale": 0.35, "white_back": True}


def _synth(path: Path, n: int = 4, res: int = 16) -> Path:
    from epigraf_tools.training.synthetic import SynthConfig, make_synthetic_dataset

    cfg = SynthConfig(
        num_images=n, resolution=res, supersample=1, **{k: v for k, v in CAMERAS.items() if k != "white_back"}
    )
    return make_synthetic_dataset(path, cfg)


def test_only_data_and_kimg_trains_with_the_datasets_cameras_and_the_snapshot_renders_with_them(
    cli, tmp_path, monkeypatch
):
    from epigraf_tools.images import read_png_metadata

    data = _synth(tmp_path / "shapes.zip")
    monkeypatch.chdir(tmp_path)
    res = cli(["train", "--data", data, "--kimg", "0.064"])  # one step of the default batch (64)
    assert res.exit_code == 0, res.output
    assert "cameras     custom, fov 30.0, rays 0.7-1.3, cube 0.35\n" in res.output
    assert "background  none (white behind the foreground)" in res.output
    assert "tick 0 " in res.output and "sec/kimg" in res.output  # tick 0 comes after the first step
    run = tmp_path / "runs" / "epigraf"
    snap = next(run.glob("snapshot-*"))
    g_config = json.loads((snap / "config.json").read_text())
    assert {k: g_config[k] for k in CAMERAS} == CAMERAS
    run_config = json.loads((run / "config.json").read_text())
    assert {k: run_config[k] for k in CAMERAS} == CAMERAS
    assert (run_config["resolution"], run_config["patch_res"], run_config["triplane_res"]) == (16, 8, 32)  # auto
    out = tmp_path / "views"
    res = cli(["sample", "--model", snap, "--seeds", "0", "--out", out, "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    camera = read_png_metadata(out / "seed0000.png")["camera"]
    assert camera["fov_degrees"] == pytest.approx(30.0) and camera["radius"] == pytest.approx(1.0)


def test_a_camera_option_that_contradicts_the_dataset_is_an_error_unless_allowed(cli, tmp_path):
    data = _synth(tmp_path / "shapes.zip", res=32)
    run = tmp_path / "r"
    res = cli(["train", "--data", data, "--out", run, "--preset", "small", "--set", "fov=12", *TINY])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "fov: the dataset says 30 (dataset.json camera.fov) but the options say 12" in res.output
    assert "--allow-camera-mismatch" in res.output and not run.exists()
    res = cli(["train", "--data", data, "--out", run, "--set", "fov=12", "--allow-camera-mismatch", *TINY])
    assert res.exit_code == 0, res.output
    assert "warning: fov: the dataset says 30" in res.output
    g_config = json.loads((next(run.glob("snapshot-*")) / "config.json").read_text())
    assert g_config["fov"] == 12 and g_config["cube_scale"] == 0.35  # the explicit value; the rest from the data
    stored = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**stored, "allow_camera_mismatch": False}))
    res = cli(["train", "--resume", run, "--kimg", "0.008", "--quiet"])
    assert res.exit_code == 2 and "the resumed run's config.json holds the value it trained with" in res.output


# --------------------------------------------------------------------------- --init
def test_init_from_the_embedded_model_continues_like_a_resume_of_the_same_weights(cli, tmp_path):
    """Same seed, same data, same weights: --init and --resume give the first tick's losses to 1e-6.

    The resumed snapshot is written by a Trainer initialised from the embedded model (its D is the
    fresh D of the same seed, as --init builds it: the embedded model carries no D).
    """
    from epigraf_tools.checkpoints.loading import load_generator
    from epigraf_tools.training.config import RUN_CONFIG_NAME
    from epigraf_tools.training.loop import Trainer
    from epigraf_tools.training.snapshots import write_snapshot

    default = Path(__file__).resolve().parents[2] / "epigraf_tools" / "assets" / "default"
    data = write_dataset(tmp_path / "d.zip", n=4, size=64)
    opts = ["--patch-res", "16", "--batch", "4", "--kimg", "0.008", "--tick-kimg", "0.004", "--device", "cpu",
            "--set", "d_channel_base=256", "--set", "d_channel_max=32", "--set", "grid_size=0", "--image-kimg", "0",
            "--set", "use_labels=false"]  # fmt: skip
    res = cli(["train", "--data", data, "--out", tmp_path / "init", "--init", default, *opts])
    assert res.exit_code == 0, res.output
    assert "has no discriminator: D starts from scratch" in res.output
    assert "generator   z/w 128/128, tri-plane 32^2 x 16" in res.output  # the summary shows the model's G

    from epigraf_tools.cli.train import build_config

    explicit = {"data": str(data), "out": str(tmp_path / "res"), "patch_res": 16, "batch": 4, "kimg": 0.008}
    sets = ["d_channel_base=256", "d_channel_max=32", "grid_size=0", "use_labels=false", "image_kimg=0"]
    cfg = build_config({**explicit, "tick_kimg": 0.004, "device": "cpu"}, None, None, sets, None)
    trainer = Trainer(cfg, init_generator=load_generator(str(default)))
    (tmp_path / "res").mkdir()
    trainer.cfg.save(tmp_path / "res" / RUN_CONFIG_NAME)
    snap = write_snapshot(tmp_path / "res", 0, trainer.G_ema, trainer.state_dict())
    res = cli(["train", "--resume", snap, "--quiet"])
    assert res.exit_code == 0, res.output

    def first_tick(run: Path) -> dict:
        return json.loads((run / "log.jsonl").read_text().splitlines()[0])

    a, b = first_tick(tmp_path / "init"), first_tick(tmp_path / "res")
    keys = [k for k in a if k.startswith("Loss/")]
    assert {"Loss/G/loss", "Loss/D/loss"} <= set(keys)
    for k in keys:
        assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-6), k


def test_init_adds_a_fresh_background_network_to_a_model_without_one(cli, tmp_path):
    """--init default --bg-model sphere: the embedded foreground, a new background network, a saved run."""
    import torch

    from epigraf_tools.checkpoints.loading import load_generator

    default = Path(__file__).resolve().parents[2] / "epigraf_tools" / "assets" / "default"
    data = tmp_path / "sky.zip"
    res = cli(["dataset", "synth", data, "-n", "4", "--resolution", "64", "--background", "textured", "--quiet"])
    assert res.exit_code == 0, res.output
    opts = ["--patch-res", "16", "--batch", "4", "--kimg", "0.004", "--tick-kimg", "0.004", "--device", "cpu",
            "--set", "d_channel_base=256", "--set", "d_channel_max=32", "--set", "grid_size=0", "--image-kimg", "0",
            "--set", "use_labels=false", "--set", "bg_channel_max=16", "--snapshot-kimg", "0.004"]  # fmt: skip
    res = cli(["train", "--data", data, "--out", tmp_path / "ft", "--init", default, "--bg-model", "sphere", *opts])
    assert res.exit_code == 0, res.output
    assert "the background network starts from scratch" in res.output
    assert "background  sphere network" in res.output
    cfg = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert cfg["bg_model"] == "sphere" and cfg["white_back"] is False  # the dataset's sky: no white background
    tuned = load_generator(str(next((tmp_path / "ft").glob("snapshot-*"))))
    base = load_generator(str(default))
    assert tuned.config.bg_model == "sphere" and tuned.num_ws == base.num_ws + 4
    assert tuned.config.triplane_res == base.config.triplane_res  # the rest of G is the model's
    fg = {k: v for k, v in tuned.state_dict().items() if not k.startswith("synthesis.bg_model.")}
    assert fg.keys() == base.state_dict().keys()
    assert any(not torch.equal(v, base.state_dict()[k]) for k, v in fg.items())  # and it trained


def test_init_from_a_training_snapshot_starts_d_from_its_discriminator(tmp_path):
    import torch
    from training_support import tiny_train_config

    from epigraf_tools.checkpoints.init_weights import RUN_STATE_NAME, load_init_networks
    from epigraf_tools.training.loop import Trainer
    from epigraf_tools.training.snapshots import STATE_NAME, write_snapshot

    assert RUN_STATE_NAME == STATE_NAME
    data = write_dataset(tmp_path / "d.zip", n=4, size=32)
    trainer = Trainer(tiny_train_config(data, tmp_path / "run"))
    snap = write_snapshot(tmp_path / "run", 0, trainer.G_ema, trainer.state_dict())
    init = load_init_networks(str(snap))
    assert init.d_source == str(snap / STATE_NAME)
    for (name, p), q in zip(trainer.D.state_dict().items(), init.D.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    tuned = Trainer(
        tiny_train_config(data, tmp_path / "ft", d_channel_base=512), init_generator=init.G, init_discriminator=init.D
    )
    assert tuned.cfg.d_channel_base == 256  # the initial D's architecture wins (and is what the run saves)
    assert all(torch.equal(p, q) for p, q in zip(tuned.D.parameters(), init.D.parameters(), strict=True))
    misfit = Trainer(tiny_train_config(data, tmp_path / "m", resolution=16, patch_res=8), init_discriminator=init.D)
    assert misfit.D.config.img_resolution == 8  # trained for 32^2: D starts fresh, with a warning


def _oom_in_the_first_chunk_of_size_4(monkeypatch):
    from epigraf_tools.training.loss import EpiGRAFLoss

    original = EpiGRAFLoss.accumulate_gradients
    raised = []

    def flaky(self, **kwargs):
        if kwargs["real_img"].shape[0] == 4 and not raised:
            raised.append(1)
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, **kwargs)

    monkeypatch.setattr(EpiGRAFLoss, "accumulate_gradients", flaky)


def test_out_of_memory_backs_off_alone_and_a_given_batch_gpu_exits_2(cli, one_error_line, tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "d.zip", n=4, size=32)
    _oom_in_the_first_chunk_of_size_4(monkeypatch)
    res = cli(["train", "--data", data, "--out", tmp_path / "auto", "--quiet", *TINY])
    assert res.exit_code == 0, res.output
    assert "out of memory in step 0 (Gall) with batch_gpu 4: redoing the step with batch_gpu 2" in res.stderr
    assert json.loads((tmp_path / "auto" / "config.json").read_text())["batch_gpu"] == 2
    _oom_in_the_first_chunk_of_size_4(monkeypatch)
    res = cli(["train", "--data", data, "--out", tmp_path / "given", "--batch-gpu", "4", "--quiet", *TINY])
    one_error_line(res, "out of memory in step 0 (Gall) with batch_gpu 4, given explicitly", "smaller --batch-gpu")
