"""``epigraf dataset synth`` end to end, and its argument errors."""

from __future__ import annotations

import json
import zipfile


def test_synth_writes_a_trainable_dataset(cli, tmp_path):
    out = tmp_path / "shapes.zip"
    res = cli(["dataset", "synth", str(out), "-n", "4", "--resolution", "16", "--quiet"])
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(out) as zf:
        meta = json.loads(zf.read("dataset.json"))
    assert len(meta["camera_angles"]) == 4
    info = cli(["dataset", "info", str(out)])
    assert info.exit_code == 0 and "images      4" in info.output


def test_synth_textured_background(cli, tmp_path):
    out = tmp_path / "sky.zip"
    res = cli(["dataset", "synth", str(out), "-n", "2", "--resolution", "16", "--background", "textured", "--quiet"])
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(out) as zf:
        camera = json.loads(zf.read("dataset.json"))["camera"]
    assert camera["background"] == "textured" and camera["white_back"] is False


def test_synth_bad_arguments_exit_2_without_files(cli, tmp_path):
    cases = [
        [str(tmp_path / "a.zip"), "--shapes", "cone"],
        [str(tmp_path / "b.tar"), "-n", "2"],
        [str(tmp_path / "c.zip"), "-n", "0"],
        [str(tmp_path / "d.zip"), "--resolution", "4"],
        [str(tmp_path / "e.zip"), "--background", "sky"],
    ]
    for args in cases:
        res = cli(["dataset", "synth", *args])
        assert res.exit_code == 2, (args, res.output)
    assert list(tmp_path.iterdir()) == []


def test_synth_renders_on_one_thread_and_restores_the_setting(tmp_path, monkeypatch):
    import torch

    import epigraf_tools.training.synthetic as synthetic

    seen = []
    real = synthetic.render_shape
    monkeypatch.setattr(synthetic, "render_shape", lambda *a: (seen.append(torch.get_num_threads()), real(*a))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = synthetic.SynthConfig(num_images=2, resolution=8)
        synthetic.make_synthetic_dataset(tmp_path / "a.zip", cfg)
        assert seen == [1, 1] and torch.get_num_threads() == 2
        synthetic.make_synthetic_dataset(tmp_path / "b.zip", cfg, threads=None)  # keep the caller's setting
        assert seen[2:] == [2, 2]
    finally:
        torch.set_num_threads(before)


def test_synth_progress_reaches_logs_when_stderr_is_not_a_terminal(cli, tmp_path):
    res = cli(["dataset", "synth", str(tmp_path / "s.zip"), "-n", "3", "--resolution", "8"])
    assert res.exit_code == 0, res.output
    assert "rendering: 3/3 (100%)" in res.output  # CliRunner's stderr is not a TTY: plain progress lines


def test_line_progress_prints_every_ten_percent_or_ten_seconds(capsys, monkeypatch):
    from epigraf_tools.cli import dataset_synth

    clock = [0.0]
    monkeypatch.setattr(dataset_synth.time, "monotonic", lambda: clock[0])
    report = dataset_synth.LineProgress("rendering")
    for i in range(1, 101):
        report(i, 100)
    assert len(capsys.readouterr().err.splitlines()) == 10  # 10 %, 20 %, ... 100 %
    report = dataset_synth.LineProgress("rendering")
    report(1, 1000)  # under 10 % and under 10 s: silent
    clock[0] = 11.0
    report(2, 1000)  # 10 s later: a line, with an estimate
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rendering: 2/1000 (0%), 11 s, ~") and "s left" in lines[0]
