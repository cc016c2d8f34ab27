"""The discriminator against the official fixture logits, and its patch modulation."""

from __future__ import annotations

import pytest
import torch

from epigraf_tools.models.discriminator import (
    Discriminator,
    DiscriminatorConfig,
    MinibatchStdLayer,
    num_additional_start_blocks,
)

# The fixture's D (shared/fixtures/official_mini/official_experiment_config.yaml): cbase 4096 * fmaps 0.5,
# cmax 128, 128^2 dataset with 64^2 patches (one additional start block), hyper_mod on.
MINI_D_CONFIG = dict(
    img_resolution=64,
    num_additional_start_blocks=1,
    channel_base=int(4096 * 0.5),
    channel_max=128,
    mbstd_group_size=4,
    hyper_mod=True,
)

TINY_D_CONFIG = dict(
    img_resolution=16,
    num_additional_start_blocks=1,
    channel_base=256,
    channel_max=32,
    hyper_mod_dim=32,
)


@pytest.fixture(scope="module")
def mini_discriminator(official_d_state) -> Discriminator:
    D = Discriminator(DiscriminatorConfig(**MINI_D_CONFIG))
    D.load_state_dict(official_d_state, strict=True)
    return D.eval()


@pytest.mark.parametrize("tag", ["D_single", "D_batch4"])
def test_official_logits(mini_discriminator, reference, tag):
    img = torch.from_numpy(reference[f"{tag}_img"])
    patch = {
        "scales": torch.from_numpy(reference[f"{tag}_scales"]),
        "offsets": torch.from_numpy(reference[f"{tag}_offsets"]),
    }
    angles = torch.from_numpy(reference[f"{tag}_camera_angles"])
    with torch.no_grad():
        logits = mini_discriminator(img, None, patch_params=patch, camera_angles=angles)
    expected = torch.from_numpy(reference[f"{tag}_logits"])
    assert logits.shape == expected.shape
    assert torch.allclose(logits, expected, atol=1e-4, rtol=0), (logits - expected).abs().max()


def test_train_mode_gives_same_logits(mini_discriminator, reference):
    img = torch.from_numpy(reference["D_batch4_img"])
    patch = {
        "scales": torch.from_numpy(reference["D_batch4_scales"]),
        "offsets": torch.from_numpy(reference["D_batch4_offsets"]),
    }
    with torch.no_grad():
        a = mini_discriminator(img, None, patch_params=patch)
        mini_discriminator.train()
        b = mini_discriminator(img, None, patch_params=patch)
        mini_discriminator.eval()
    assert torch.equal(a, b)  # exact: train() changes no arithmetic on this batch


def test_parameter_names_match_official(official_d_state):
    D = Discriminator(DiscriminatorConfig(**MINI_D_CONFIG))
    ours = {k: tuple(v.shape) for k, v in D.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in official_d_state.items()}
    assert ours == theirs


def test_patch_modulation_changes_logits():
    torch.manual_seed(0)
    D = Discriminator(DiscriminatorConfig(**TINY_D_CONFIG)).eval()
    img = torch.randn(4, 3, 16, 16)
    base = {"scales": torch.full((4, 2), 0.5), "offsets": torch.full((4, 2), 0.25)}
    other_scale = {"scales": torch.full((4, 2), 0.75), "offsets": torch.full((4, 2), 0.25)}
    other_offset = {"scales": torch.full((4, 2), 0.5), "offsets": torch.tensor([[0.1, 0.4]] * 4)}
    with torch.no_grad():
        l0 = D(img, None, patch_params=base)
        l1 = D(img, None, patch_params=other_scale)
        l2 = D(img, None, patch_params=other_offset)
        h0 = D.hyper_mod_mapping(None, D.patch_embedding(base, 4, img.device))
        h1 = D.hyper_mod_mapping(None, D.patch_embedding(other_scale, 4, img.device))
    assert (l0 - l1).abs().min() > 1e-6
    assert (l0 - l2).abs().min() > 1e-6
    assert (h0 - h1).abs().max() > 1e-4  # the hyper-network itself sees the change


def test_hyper_mod_scales_conv_inputs():
    torch.manual_seed(0)
    D = Discriminator(DiscriminatorConfig(**TINY_D_CONFIG)).eval()
    conv = D.b32.conv1
    x = torch.randn(2, conv.weight.shape[1], 16, 16)
    h = torch.randn(2, D.config.hyper_mod_dim)
    with torch.no_grad():
        scales = 1 + conv.affine(h).tanh()
        expected = torch.nn.functional.conv2d(x * scales[:, :, None, None], conv.weight * conv.weight_gain, padding=1)
        expected = torch.nn.functional.leaky_relu(expected + conv.bias[None, :, None, None], 0.2) * 2**0.5
        assert torch.allclose(conv(x, h), expected, atol=1e-5)


def test_camera_conditioning_and_labels():
    torch.manual_seed(0)
    D = Discriminator(DiscriminatorConfig(**TINY_D_CONFIG, c_dim=5, camera_cond=True, camera_cond_drop_p=0.5)).eval()
    assert D.head_mapping.embed.weight.shape[1] == 5 + 828 + 24  # label + patch embedding + Fourier angles
    img = torch.randn(4, 3, 16, 16)
    c = torch.eye(5)[:4]
    a0 = torch.tensor([[0.0, 1.5, 0.0]] * 4)
    a1 = torch.tensor([[0.4, 1.2, 0.0]] * 4)
    with torch.no_grad():
        assert (D(img, c, camera_angles=a0) - D(img, c, camera_angles=a1)).abs().min() > 1e-6
        with pytest.raises(ValueError, match="camera"):
            D(img, c)
    raw = Discriminator(DiscriminatorConfig(**TINY_D_CONFIG, camera_cond=True, camera_cond_raw=True))
    assert raw.head_mapping.embed.weight.shape[1] == 828 + 2


def test_blocks_and_shapes():
    D = Discriminator(DiscriminatorConfig(**TINY_D_CONFIG))
    assert D.block_resolutions == [32, 16, 8]
    assert D.b32.conv1.down == 1 and D.b16.conv1.down == 2
    with pytest.raises(ValueError, match="patches"):
        D(torch.randn(2, 3, 32, 32))
    assert num_additional_start_blocks(512, 64) == 3
    with pytest.raises(ValueError):
        num_additional_start_blocks(96, 64)


def test_minibatch_std_groups_are_strided():
    layer = MinibatchStdLayer(group_size=2)
    x = torch.zeros(4, 1, 1, 1)
    x[0] = 1.0  # groups are {0, 2} and {1, 3}
    out = layer(x)[:, 1, 0, 0]
    assert out[0] == out[2] and out[1] == out[3] and out[0] > out[1]


def test_backward_reaches_all_trainable_parameters():
    torch.manual_seed(0)
    D = Discriminator(DiscriminatorConfig(**TINY_D_CONFIG)).train()
    img = torch.randn(4, 3, 16, 16, requires_grad=True)
    patch = {"scales": torch.rand(4, 2), "offsets": torch.rand(4, 2) * 0.3}
    D(img, None, patch_params=patch).sum().backward()
    unused = {f"b{r}.fromrgb" for r in D.block_resolutions[1:]}  # only the first block reads RGB
    for name, p in D.named_parameters():
        if any(name.startswith(u) for u in unused) or name == "scalar_enc.const_embed.weight":
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert img.grad is not None and torch.isfinite(img.grad).all()
