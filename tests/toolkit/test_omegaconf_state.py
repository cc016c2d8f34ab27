"""epigraf_tools/checkpoints/omegaconf_state.py: pickled omegaconf trees become plain values, with interpolations
resolved against the root, custom resolvers left as text, and every resolution bounded."""

from __future__ import annotations

import io

import pytest
import torch
from official_pickle_factory import config_child, make_config_node, pickle_with_fake_modules

import epigraf_tools.checkpoints.omegaconf_state as ocs
from epigraf_tools.checkpoints.omegaconf_state import config_root, to_plain
from epigraf_tools.checkpoints.safe_pickle import safe_load
from epigraf_tools.errors import EpigrafError

EXPERIMENT = {
    "dataset": {"name": "ffhq", "resolution": 512},
    "name": "run_${dataset.name}_${dataset.resolution}",
    "data": "${dataset}",
    "home": "${env:HOME}",
    "missing": "???",
    "sizes": [1, "${dataset.resolution}"],
}
PLAIN = {
    "dataset": {"name": "ffhq", "resolution": 512},
    "name": "run_ffhq_512",
    "data": {"name": "ffhq", "resolution": 512},
    "home": "${env:HOME}",
    "missing": None,
    "sizes": [1, 512],
}


def _load(obj):
    """``obj`` pickled with the omegaconf stand-ins and read back as inert holders, as a snapshot is read."""
    return safe_load(io.BytesIO(pickle_with_fake_modules(obj)))


def test_a_tree_becomes_plain_values_with_interpolations_resolved():
    assert to_plain(_load(make_config_node(EXPERIMENT))) == PLAIN


def test_a_child_resolves_against_its_root_and_config_root_finds_the_whole_experiment():
    root = make_config_node(EXPERIMENT)
    loaded = _load({"child": config_child(root, "dataset"), "name": config_child(root, "name")})
    assert to_plain(loaded["child"]) == {"name": "ffhq", "resolution": 512}
    assert to_plain(loaded["name"]) == "run_ffhq_512"
    assert config_root(loaded["child"]) == PLAIN


def test_non_nodes_pass_through():
    t = torch.zeros(2)
    assert to_plain({"a": [1, (2, "x")], "t": t})["t"] is t
    assert to_plain({"a": [1, (2, "x")]}) == {"a": [1, (2, "x")]}
    assert config_root({"a": 1}) is None and config_root(3) is None


def test_unresolvable_interpolations_stay_as_text():
    tree = {"a": "${nope}", "b": "x_${nope.deeper}", "c": "${oc.env:X}"}
    assert to_plain(_load(make_config_node(tree))) == tree


def _doubling(levels: int) -> dict:
    """v0: x, v1: ${v0}${v0}, ...: each level doubles the text and the work of resolving it."""
    return {"v0": "x", **{f"v{i}": f"${{v{i - 1}}}${{v{i - 1}}}" for i in range(1, levels)}}


def test_a_cycle_is_refused():
    with pytest.raises(EpigrafError, match="interpolates too deeply"):
        to_plain(_load(make_config_node({"a": "${b}", "b": "${a}"})))


def test_multiplying_interpolations_are_refused_by_the_step_and_length_budgets(monkeypatch):
    """The real budgets take seconds to reach; lowered, the same refusals come at once."""
    tree = _load(make_config_node(_doubling(12)))  # v11 is 2,048 characters, resolved in ~8,000 steps
    assert len(to_plain(tree)["v11"]) == 2048
    monkeypatch.setattr(ocs, "MAX_RESOLVE_STEPS", 1000)
    with pytest.raises(EpigrafError, match="more than 1,000 steps"):
        to_plain(tree)
    monkeypatch.setattr(ocs, "MAX_RESOLVE_STEPS", 10**6)
    monkeypatch.setattr(ocs, "MAX_RESOLVED_CHARS", 1000)
    with pytest.raises(EpigrafError, match="more than 1,000 characters"):
        to_plain(tree)
