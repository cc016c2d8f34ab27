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
