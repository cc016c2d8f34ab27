"""Initial weights: drawn as before for training, not drawn at all when a weights file replaces them."""

from __future__ import annotations

import pytest
import torch

from epigraf_tools.models import Generator, GeneratorConfig
from epigraf_tools.models.eg3d.config import EG3DConfig
from epigraf_tools.models.eg3d.generator import EG3DGenerator
from epigraf_tools.models.initial_weights import normal_weights, weights_from_file

from support import TINY_CONFIG


def test_outside_a_load_the_weights_are_the_same_draws_as_torch_randn():
    torch.manual_seed(3)
    a, b = normal_weights(4, 5), normal_weights(2, 3, 3)
    torch.manual_seed(3)
    assert torch.equal(a, torch.randn(4, 5)) and torch.equal(b, torch.randn(2, 3, 3))


def test_a_seeded_generator_is_initialised_as_before():
    # Training starts from these draws: two builds from one seed must agree bit for bit.
    config = GeneratorConfig(**TINY_CONFIG)
    torch.manual_seed(0)
    first = Generator(config).state_dict()
    torch.manual_seed(0)
    second = Generator(config).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_building_for_a_load_draws_nothing_and_the_setting_ends_with_the_block():
    torch.manual_seed(0)
    expected = torch.randn(3)
    torch.manual_seed(0)
    with weights_from_file():
        Generator(GeneratorConfig(**TINY_CONFIG))
    assert torch.equal(torch.randn(3), expected)  # the RNG was not advanced
    with pytest.raises(RuntimeError), weights_from_file():
        raise RuntimeError("a failed build")
    torch.manual_seed(1)
    drawn = normal_weights(3)
    torch.manual_seed(1)
    assert torch.equal(drawn, torch.randn(3))  # back to drawing after the block, even after an error


@pytest.mark.parametrize("family", ["epigraf", "eg3d"])
def test_a_saved_model_loads_back_bit_identical(tmp_path, family):
    torch.manual_seed(0)
    if family == "epigraf":
        model, cls = Generator(GeneratorConfig(**TINY_CONFIG)), Generator
    else:
        model = EG3DGenerator(EG3DConfig(z_dim=16, w_dim=16, channel_base=256, channel_max=16))
        cls = EG3DGenerator
    model.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path)
    want, got = model.state_dict(), loaded.state_dict()
    assert set(want) == set(got)
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert all(p.requires_grad == q.requires_grad for p, q in zip(model.parameters(), loaded.parameters(), strict=True))
