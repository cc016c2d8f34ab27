"""``geometry_compare``: folder names per model and the tiled ChimeraX script (the pipeline runs in tests/cli)."""

from __future__ import annotations

import pytest

from epigraf_tools.errors import EpigrafError
from epigraf_tools.geometry_compare import compare_script, folder_names


def test_folder_names_are_file_safe_and_unique():
    assert folder_names(["default", "./runs/tiny/", "hub/user@v1", "other/tiny"]) == [
        "default", "tiny", "user_v1", "tiny-2",
    ]  # fmt: skip
    with pytest.raises(EpigrafError, match="twice"):
        folder_names(["a", "b", "a"])
    with pytest.raises(EpigrafError, match="empty"):
        folder_names([])


def test_script_opens_tiles_and_turns_every_volume():
    text = compare_script([("a/seed0000.mrc", 25.0), ("b/seed0000.mrc", 10.0), ("a/seed0001.mrc", 25.5)], columns=2)
    lines = text.splitlines()
    assert lines.index('open "b/seed0000.mrc" format mrc') < lines.index("volume #2 style surface level 10 step 1")
    assert "volume #3 style surface level 25.5 step 1" in lines
    assert lines.index("tile #1-3 columns 2") < lines.index("lighting full") < lines.index("movie record")
    for spec in ("#1", "#2", "#3"):
        assert f"turn y 2 180 models {spec} center {spec}" in lines
    assert lines[-1] == 'movie encode "compare.mp4" framerate 30'
    assert "movie" not in compare_script([("a.mrc", 1.0)], columns=1, movie=None)
