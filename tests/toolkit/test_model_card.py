"""epigraf_tools/checkpoints/model_card.py: the README.md of a model folder (Hub front matter, settings, usage)."""

from __future__ import annotations

import re

import pytest

from epigraf_tools.checkpoints.model_card import (
    MODEL_CARD_NAME,
    OFFICIAL_ISO_LEVEL,
    OFFICIAL_LICENCE,
    UNKNOWN_LICENCE,
    render_model_card,
    write_model_card,
)
from epigraf_tools.models import GeneratorConfig

from support import TINY_CONFIG


def _front_matter(card: str) -> list[str]:
    assert card.startswith("---\n")
    return card.split("---\n")[1].splitlines()


def test_unknown_licence_front_matter_and_defaults():
    card = render_model_card(GeneratorConfig(**TINY_CONFIG))
    front = _front_matter(card)
    assert front[0] == f"license: {UNKNOWN_LICENCE.hub_id}" and not any(x.startswith("license_name") for x in front)
    assert "library_name: epigraf-tools" in front and "- 3d-aware-gan" in front
    assert "- not recorded" in card and UNKNOWN_LICENCE.note in card
    assert "| image resolution | 32 x 32 |" in card and "| classes | unconditional |" in card
    assert "| parameters |" not in card


def test_official_licence_source_classes_and_parameters():
    names = [f"c{i}" for i in range(14)]
    config = GeneratorConfig(**{**TINY_CONFIG, "c_dim": 14, "class_names": names})
    source = {"file": "network.pkl", "sha256": "ab" * 32, "url": "https://example.org/x", "note": None}
    card = render_model_card(config, title="Tiny", source=source, licence=OFFICIAL_LICENCE, num_params=1_234_567)
    front = _front_matter(card)
    assert "license: other" in front and f"license_name: {OFFICIAL_LICENCE.name}" in front
    assert f"license_link: {OFFICIAL_LICENCE.link}" in front
    assert "# Tiny" in card.splitlines()
    assert "- file: `network.pkl`" in card and f"- sha256: `{'ab' * 32}`" in card
    assert "- url: https://example.org/x" in card and "note" not in card  # None values are left out
    assert "| classes | 14 classes: c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11 ... |" in card
    assert "| parameters | 1.23 M |" in card


@pytest.mark.parametrize("density_shift", [0.0, -1.0])
def test_suggested_iso_level_is_the_official_sigma_in_raw_units(density_shift):
    card = render_model_card(GeneratorConfig(**{**TINY_CONFIG, "density_shift": density_shift}))
    raw = float(re.search(r"iso level for meshes: raw density ([-\d.]+)", card).group(1))
    assert raw == pytest.approx(OFFICIAL_ISO_LEVEL - density_shift)


def test_usage_names_the_repo():
    card = render_model_card(GeneratorConfig(**TINY_CONFIG), repo_id="org/tiny")
    assert "load_generator('org/tiny')" in card and "epigraf sample --model org/tiny" in card


def test_the_usage_snippet_imports_what_exists():
    card = render_model_card(GeneratorConfig(**TINY_CONFIG))
    snippet = card.split("```python\n")[1].split("```")[0]
    imports = "\n".join(line for line in snippet.splitlines() if line.startswith(("from ", "import ")))
    exec(compile(imports, "README.md", "exec"), {})  # noqa: S102 - our own template


def test_write_model_card(tmp_path):
    config = GeneratorConfig(**TINY_CONFIG)
    path = write_model_card(tmp_path, config, title="T")
    assert path == tmp_path / MODEL_CARD_NAME == tmp_path / "README.md"
    assert path.read_text() == render_model_card(config, title="T")
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
