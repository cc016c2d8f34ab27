"""epigraf_tools/demo.py: the page's contract without a browser (tests/toolkit/test_demo_browser.py drives one)."""

from __future__ import annotations

import sys

import pytest

from epigraf_tools.demo import INSTALL_HINT, check_address, require_gradio
from epigraf_tools.errors import EpigrafError


def test_without_gradio_the_demo_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # makes `import gradio` fail as if it were absent
    from epigraf_tools.demo import build_demo

    with pytest.raises(EpigrafError, match=r"pip install 'epigraf-tools\[demo\]'"):
        build_demo()
    assert "epigraf-tools[demo]" in INSTALL_HINT


@pytest.mark.parametrize(
    "host, port, needle", [("127.0.0.1", 0, "port"), ("127.0.0.1", 70000, "port"), (" ", 1, "host")]
)
def test_a_bad_address_is_refused(host, port, needle):
    with pytest.raises(EpigrafError, match=needle):
        check_address(host, port)


def test_failures_become_messages_in_the_page_not_tracebacks(caplog):
    gr = pytest.importorskip("gradio", reason="needs the [demo] extra")
    from epigraf_tools.demo import page_errors

    with pytest.raises(gr.Error) as shown, page_errors():
        raise EpigrafError("seed is empty\nsecond line")
    assert shown.value.message == "seed is empty"  # its first line, as the CLI shows it
    with pytest.raises(gr.Error) as shown, page_errors():
        1 / 0  # noqa: B018
    assert shown.value.message.startswith("unexpected error: ZeroDivisionError: division by zero")
    assert "ZeroDivisionError" in caplog.text  # the traceback goes to the server's log


def test_a_bad_model_fails_before_the_page_is_served():
    pytest.importorskip("gradio", reason="needs the [demo] extra")
    from epigraf_tools.demo import build_demo

    with pytest.raises(EpigrafError, match="no such model"):
        build_demo("/no/such/model", device="cpu")


def test_the_page_has_every_control_and_a_bounded_queue(tmp_path):
    pytest.importorskip("gradio", reason="needs the [demo] extra")
    from epigraf_tools.demo import QUEUE_SIZE, build_demo

    blocks = build_demo(device="cpu", work_dir=tmp_path / "work")
    ids = {block.elem_id for block in blocks.blocks.values()}
    for control in ("model", "seed", "psi", "class", "yaw", "pitch", "image", "depth", "normals", "alpha", "video"):
        assert control in ids
    assert {"mesh", "downloads", "extract", "orbit"} <= ids
    assert {"photo", "invert", "inverted", "latent_file", "invert_steps", "pti_steps"} <= ids  # photo inversion
    assert blocks._queue.max_size == QUEUE_SIZE
    assert {fn.concurrency_id for fn in blocks.fns.values()} == {"epigraf"}  # one job at a time, all buttons
    assert require_gradio() is sys.modules["gradio"]


def test_a_conditional_model_shows_its_classes(tmp_path):
    pytest.importorskip("gradio", reason="needs the [demo] extra")
    from epigraf_tools.demo import build_demo

    from support import make_tiny_generator

    make_tiny_generator(0, c_dim=2, class_names=["cat", "dog"]).save_pretrained(tmp_path / "cond")
    blocks = build_demo(str(tmp_path / "cond"), device="cpu", work_dir=tmp_path / "work")
    (picker,) = [block for block in blocks.blocks.values() if block.elem_id == "class"]
    assert picker.visible and [value for _label, value in picker.choices] == ["", "0", "1"]
    (resolution,) = [block for block in blocks.blocks.values() if block.elem_id == "resolution"]
    assert resolution.value == 32  # the tiny model's own


def test_an_allow_list_fixes_the_picker(tmp_path):
    pytest.importorskip("gradio", reason="needs the [demo] extra")
    from epigraf_tools.demo import build_demo

    blocks = build_demo(device="cpu", work_dir=tmp_path / "work", models=["default"])
    (picker,) = [block for block in blocks.blocks.values() if block.elem_id == "model"]
    assert picker.value == "default" and not picker.allow_custom_value
    assert [value for _label, value in picker.choices] == ["default"]
