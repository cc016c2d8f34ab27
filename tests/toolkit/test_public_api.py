"""Every name of the public API resolves (lazily) to the object of its module."""

from __future__ import annotations

import importlib

import pytest

import epigraf_tools


@pytest.mark.parametrize("name", epigraf_tools.__all__)
def test_public_name_resolves(name):
    obj = getattr(epigraf_tools, name)
    module = importlib.import_module(f"epigraf_tools.{epigraf_tools._EXPORTS[name]}")
    assert obj is getattr(module, name)


def test_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute"):
        epigraf_tools.not_a_function  # noqa: B018


def test_the_pipelines_behind_every_command_are_public():
    """Each CLI command is a thin layer over one of these, so a Python caller can do the same job."""
    for name in ("save_samples", "render_video", "render_interpolation", "export_meshes", "export_volumes",
                 "mesh_volume_file", "fetch_model", "convert_official", "convert_snapshot", "describe_model",
                 "evaluate_fid"):  # fmt: skip
        assert name in epigraf_tools.__all__ and callable(getattr(epigraf_tools, name))
