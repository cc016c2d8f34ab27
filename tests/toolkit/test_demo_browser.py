"""A real headless Chromium drives the demo page (epigraf_tools/demo.py) served on 127.0.0.1.

What a user would see is checked from the page itself: a new seed gives a new, non-blank picture
whose pixels are the ones ``render_maps`` makes for that seed; the orbit video and the GLB, MRC and
.cxc are served (HTTP 200, the right magic bytes); the 3D viewer draws the mesh (its part of the
screenshot is not blank); a bad model is a message in the page, not a traceback.

Needs the ``[test]`` extra (gradio, selenium) and Debian's ``chromium`` + ``chromium-driver``
(.ci/run installs them); skipped with the reason otherwise. EPIGRAF_DEMO_SCREENSHOT=FILE.png also
saves the page's screenshot there (how docs/images/demo.png is made).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from support import assert_images_close

pytest.importorskip("gradio", reason="the demo needs gradio: pip install 'epigraf-tools[demo]'")
pytest.importorskip("selenium", reason="the browser test needs selenium: pip install 'epigraf-tools[test]'")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="no chromium + chromedriver on PATH (Debian: apt-get install chromium chromium-driver)",
)
WINDOW = (1400, 1000)
SEED = 7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    from epigraf_tools.demo import run_demo

    blocks, url = run_demo(device="cpu", port=_free_port(), block=False, quiet=True)
    try:
        yield url
    finally:
        blocks.close()
        blocks.epigraf_work.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader"):
        options.add_argument(arg)  # no GPU and maybe root: software WebGL, no sandbox
    options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(browser: Any, condition: Callable[[Any], Any], timeout: float = 30.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.2).until(condition)


def _src(browser: Any, selector: str) -> str | None:
    from selenium.webdriver.common.by import By

    found = browser.find_elements(By.CSS_SELECTOR, selector)
    return found[0].get_attribute("src") if found else None


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, url
        return response.read()


def _png(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _type_and_enter(browser: Any, selector: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = browser.find_element(By.CSS_SELECTOR, selector)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text, Keys.ENTER)


def _download_links(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")]


def _screenshot(browser: Any) -> np.ndarray:
    return _png(browser.get_screenshot_as_png())


def _crop(shot: np.ndarray, element: Any) -> np.ndarray:
    r = element.rect
    return shot[int(r["y"]) : int(r["y"] + r["height"]), int(r["x"]) : int(r["x"] + r["width"])]


def _coloured_fraction(pixels: np.ndarray) -> float:
    """The share of strongly coloured pixels: the page's chrome is white and grey, the default model's mesh is not."""
    channels = pixels.astype(np.int16)
    return float(((channels.max(axis=-1) - channels.min(axis=-1)) > 60).mean())


def test_the_page_renders_a_new_seed_and_serves_video_and_mesh(demo_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from epigraf_tools.demo_work import ModelCache, ViewRequest, render_maps

    browser.get(demo_url)
    first = _wait(browser, lambda b: _src(b, "#image img"))  # the page renders seed 0 when it opens
    _type_and_enter(browser, "#seed input", str(SEED))
    src = _wait(browser, lambda b: (s := _src(b, "#image img")) != first and s)
    shown = _png(_fetch(src))
    expected = render_maps(ModelCache("cpu").get(None), ViewRequest(SEED)).image
    assert shown.shape == expected.shape and shown.std() > 5.0  # a picture, not a blank
    # The same code path and ray noise, here in the test's thread and there in a server worker thread: the same
    # pixels, but allow what a different GEMM blocking could change (1 level on 1% of values; support.py).
    assert_images_close(shown, expected)
    for name in ("depth", "normals", "alpha"):
        assert _png(_fetch(_src(browser, f"#{name} img"))).shape == expected.shape
    assert f"Seed {SEED}" in browser.find_element(By.CSS_SELECTOR, "#status").text

    browser.find_element(By.CSS_SELECTOR, "#orbit").click()
    video = _fetch(_wait(browser, lambda b: _src(b, "#video video")))
    assert video[4:8] == b"ftyp"  # an mp4 container

    browser.find_element(By.CSS_SELECTOR, "#extract").click()
    links = _wait(browser, _download_links)
    names = sorted(link.rsplit("/", 1)[-1] for link in links)
    assert names == [f"seed{SEED:04d}.cxc", f"seed{SEED:04d}.glb", f"seed{SEED:04d}.mrc"]
    glb = _fetch(next(link for link in links if link.endswith(".glb")))
    assert glb[:4] == b"glTF"
    assert _fetch(next(link for link in links if link.endswith(".mrc")))[208:212] == b"MAP "  # the MRC magic

    canvas = _wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#mesh canvas"))[0]
    deadline = time.monotonic() + 20
    while (drawn := _coloured_fraction(_crop(_screenshot(browser), canvas))) < 0.02 and time.monotonic() < deadline:
        time.sleep(0.5)  # the viewer loads the GLB and draws it a moment later
    assert drawn >= 0.02, f"the 3D viewer drew nothing coloured ({drawn:.4f} of its pixels)"

    shot = _screenshot(browser)
    width, height = browser.execute_script("return [window.innerWidth, window.innerHeight]")
    assert shot.shape[:2] == (height, width) and width >= WINDOW[0] - 40
    if os.environ.get("EPIGRAF_DEMO_SCREENSHOT"):
        from PIL import Image

        Image.fromarray(shot).quantize(colors=128).save(os.environ["EPIGRAF_DEMO_SCREENSHOT"], optimize=True)


def test_a_bad_model_is_a_message_in_the_page(demo_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(demo_url)
    _wait(browser, lambda b: _src(b, "#image img"))
    _type_and_enter(browser, "#model input", "/no/such/model")
    toast = _wait(browser, lambda b: [t.text for t in b.find_elements(By.CSS_SELECTOR, ".toast-body") if t.text])
    assert any("no such model" in text for text in toast), toast
    assert "Traceback" not in browser.page_source
