"""Parity of the EG3D super-resolution head and dual discriminator with the official code.

Reference: shared/fixtures/eg3d_mini (official EG3D run on the CPU; see its README and reference.json),
found at ``$EPIGRAF_EG3D_FIXTURES`` or ../shared/fixtures/eg3d_mini; the parity tests skip when absent.
Tolerances (the fixture README's): super-resolved image <= 1e-3 absolute, logits <= 1e-4 absolute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from eg3d_fixture import require_fixture

from epigraf_tools.models.eg3d.discriminator import DualDiscriminator
from epigraf_tools.models.eg3d.superresolution import SUPERRESOLUTION_VARIANTS, Superresolution

SR_PREFIX = "superresolution."
TAGS = [f"psi{psi}__seed{seed}__cam{cam}" for psi in (0.7, 1.0) for seed in (0, 3) for cam in (0, 1)]
SEEDS = (0, 3)


@pytest.fixture(scope="module")
def eg3d_dir() -> Path:
    return require_fixture()  # the one fixture finder (tests/eg3d_fixture.py); skips when absent


@pytest.fixture(scope="module")
def ref(eg3d_dir: Path) -> dict[str, np.ndarray]:
    with np.load(eg3d_dir / "reference_outputs.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def sr(eg3d_dir: Path) -> Superresolution:
    """The fixture config's head (SuperresolutionHybrid2X, 32 feature channels, 128x128)."""
    with np.load(eg3d_dir / "G_ema_state.npz") as data:
        state = {k[len(SR_PREFIX) :]: torch.from_numpy(data[k]) for k in data.files if k.startswith(SR_PREFIX)}
    module = Superresolution("training.superresolution.SuperresolutionHybrid2X", channels=32, img_resolution=128)
    module.load_state_dict(state, strict=True)
    return module.eval()


@pytest.fixture(scope="module")
def dual_d(eg3d_dir: Path) -> DualDiscriminator:
    """The fixture config's D: 128x128, --cbase 1024 --cmax 32, c_dim 25."""
    with np.load(eg3d_dir / "D_state.npz") as data:
        state = {k: torch.from_numpy(data[k]) for k in data.files}
    module = DualDiscriminator(128, c_dim=25, channel_base=1024, channel_max=32, num_fp16_res=4, conv_clamp=256)
    module.load_state_dict(state, strict=True)
    return module.eval()


def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x)


def _ws(ref, tag: str) -> torch.Tensor:
    psi = tag.split("psi")[1].split("__")[0]
    seed = int(tag.split("seed")[1].split("__")[0])
    return t(ref[f"ws__psi{psi}"])[SEEDS.index(seed)][None]


@pytest.mark.parametrize("tag", TAGS)
def test_superresolution_matches_official(sr, ref, tag):
    feats = t(ref[f"render_det_features__{tag}"])[None]
    raw = t(ref[f"render_det_image_raw__{tag}"])[None]
    with torch.no_grad():
        image = sr(raw, feats, _ws(ref, tag))
    assert image.shape == (1, 3, 128, 128)
    torch.testing.assert_close(image[0], t(ref[f"render_det_image__{tag}"]), atol=1e-3, rtol=0)


def test_superresolution_from_neural_resolution_64(sr, ref):
    """64 -> no resize before block0. The fixture's stored image_raw for this render is not the first 3
    feature channels (it disagrees by up to ~2), while the official synthesis feeds features[:, :3] to
    the head, so the head's rgb input is taken from the captured features here."""
    tag = "nr64__psi0.7__seed0__cam0"
    feats = t(ref[f"render_det_features__{tag}"])[None]
    with torch.no_grad():
        image = sr(feats[:, :3].contiguous(), feats, _ws(ref, "psi0.7__seed0__cam0"))
    torch.testing.assert_close(image[0], t(ref[f"render_det_image__{tag}"]), atol=1e-3, rtol=0)


def test_superresolution_reads_only_the_last_w(sr, ref):
    tag = TAGS[0]
    feats = t(ref[f"render_det_features__{tag}"])[None]
    raw = feats[:, :3].contiguous()
    ws = _ws(ref, tag)
    other = ws.clone()
    other[:, :-1] = torch.randn_like(other[:, :-1])
    with torch.no_grad():
        # same inputs to the same ops (only ws[:, -1] is read), so the same bytes
        torch.testing.assert_close(sr(raw, feats, other), sr(raw, feats, ws), atol=0, rtol=0)
        moved = ws.clone()
        moved[:, -1] += 1.0
        assert (sr(raw, feats, moved) - sr(raw, feats, ws)).abs().max() > 1e-2


def _d_inputs(ref, batch: int):
    image, image_raw, c = (t(ref[k])[:batch] for k in ("D_rand_image", "D_rand_image_raw", "D_rand_c"))
    return {"image": image, "image_raw": image_raw}, c


@pytest.mark.parametrize("batch", [1, 2])
def test_dual_discriminator_matches_official_on_fixed_pairs(dual_d, ref, batch):
    img, c = _d_inputs(ref, batch)
    with torch.no_grad():
        logits = dual_d(img, c)
    assert logits.shape == (batch, 1)
    torch.testing.assert_close(logits, t(ref[f"D_rand_logits_batch{batch}"]), atol=1e-4, rtol=0)


def test_dual_discriminator_matches_official_on_generated_pair(dual_d, ref):
    tag = "psi0.7__seed0__cam0"
    img = {"image": t(ref[f"render_det_image__{tag}"])[None], "image_raw": t(ref[f"render_det_image_raw__{tag}"])[None]}
    with torch.no_grad():
        logits = dual_d(img, t(ref["c_cams"])[:1])
    torch.testing.assert_close(logits, t(ref["D_gen_logits"]), atol=1e-4, rtol=0)


def test_dual_discriminator_sees_the_raw_render(dual_d, ref):
    """The logits depend on image_raw (it is stacked as channels 3..5), not on the image alone."""
    img, c = _d_inputs(ref, 1)
    with torch.no_grad():
        base = dual_d(img, c)
        changed = dual_d({"image": img["image"], "image_raw": -img["image_raw"]}, c)
    assert (changed - base).abs().max() > 1e-6


# ------------------------------------------------------------------------------------------------
# Structure and bad inputs (no fixture needed)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "first_block", "keys"),
    [
        ("SuperresolutionHybrid2X", "block0.conv0.weight", {"block0.conv0.weight": (128, 32, 3, 3)}),
        ("SuperresolutionHybrid4X", "block0.conv0.weight", {"block1.conv0.noise_const": (256, 256)}),
        ("SuperresolutionHybrid8X", "block0.conv0.weight", {"block0.conv0.noise_const": (256, 256)}),
        ("SuperresolutionHybrid8XDC", "block1.conv1.weight", {"block1.conv1.weight": (128, 128, 3, 3)}),
    ],
)
def test_superresolution_variants_have_official_layout(variant, first_block, keys):
    state = Superresolution(variant, channels=32).state_dict()
    assert first_block in state
    for key, shape in keys.items():
        assert tuple(state[key].shape) == shape
    assert ("resample_filter" in state) == SUPERRESOLUTION_VARIANTS[variant].has_resample_filter
    assert not any("const" == k.split(".")[-1] for k in state)  # no learned constant input


def test_superresolution_4x_resizes_only_smaller_inputs():
    torch.manual_seed(0)
    head = Superresolution("SuperresolutionHybrid4X", channels=4).eval()
    feats = torch.randn(1, 4, 64, 64)
    ws = torch.randn(1, 14, 512)
    with torch.no_grad():
        assert head(feats[:, :3], feats, ws).shape == (1, 3, 256, 256)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variant": "SuperresolutionHybrid3X"}, "unknown super-resolution module"),
        ({"variant": "SuperresolutionHybrid2X", "img_resolution": 256}, "makes 128x128 images"),
        ({"variant": "SuperresolutionHybrid2X", "channels": 2}, "channels must be >= 3"),
    ],
)
def test_superresolution_rejects_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Superresolution(**kwargs)


@pytest.mark.parametrize(
    ("rgb", "feats", "ws", "match"),
    [
        ((1, 3, 32, 32), (1, 16, 32, 32), (1, 14, 512), "features must be"),
        ((1, 4, 32, 32), (1, 32, 32, 32), (1, 14, 512), "rgb must be"),
        ((1, 3, 16, 16), (1, 32, 32, 32), (1, 14, 512), "rgb must be"),
        ((1, 3, 32, 32), (1, 32, 32, 32), (1, 14, 256), "ws must be"),
        ((1, 3, 32, 32), (1, 32, 32, 32), (2, 14, 512), "ws must be"),
        ((1, 3, 32, 32), (1, 32, 32, 16), (1, 14, 512), "features must be"),
    ],
)
def test_superresolution_rejects_bad_inputs(rgb, feats, ws, match):
    head = Superresolution("SuperresolutionHybrid2X", channels=32).eval()
    with pytest.raises(ValueError, match=match):
        head(torch.zeros(rgb), torch.zeros(feats), torch.zeros(ws))


def test_superresolution_4x_rejects_larger_render():
    head = Superresolution("SuperresolutionHybrid4X", channels=4).eval()
    with pytest.raises(ValueError, match="at most 128"):
        head(torch.zeros(1, 3, 256, 256), torch.zeros(1, 4, 256, 256), torch.zeros(1, 14, 512))


def test_dual_discriminator_layout_matches_official_names():
    state = DualDiscriminator(128, c_dim=25, channel_base=1024, channel_max=32).state_dict()
    assert tuple(state["b128.fromrgb.weight"].shape) == (8, 6, 1, 1)
    assert not any(k.startswith("b64.fromrgb") for k in state)
    assert tuple(state["mapping.embed.weight"].shape) == (32, 25)
    assert "mapping.fc7.weight" in state and "resample_filter" in state
    assert tuple(state["b4.conv.weight"].shape) == (32, 33, 3, 3)


@pytest.mark.parametrize(
    ("img", "c", "match"),
    [
        ({"image": (1, 3, 16, 16)}, (1, 25), "takes {'image'"),
        ({"image": (1, 3, 16, 16), "image_raw": (1, 3, 8, 8)}, (1, 24), r"c must be \[1, 25\]"),
        ({"image": (1, 3, 16, 16), "image_raw": (1, 3, 8, 8)}, None, r"c must be \[1, 25\]"),
        ({"image": (1, 3, 32, 32), "image_raw": (1, 3, 8, 8)}, (1, 25), "image must be"),
        ({"image": (1, 3, 16, 16), "image_raw": (2, 3, 8, 8)}, (1, 25), "image_raw must be"),
        ({"image": (1, 3, 16, 16), "image_raw": (1, 1, 8, 8)}, (1, 25), "image_raw must be"),
    ],
)
def test_dual_discriminator_rejects_bad_inputs(img, c, match):
    d = DualDiscriminator(16, c_dim=25, channel_base=256, channel_max=16).eval()
    with pytest.raises(ValueError, match=match):
        d({k: torch.zeros(v) for k, v in img.items()}, None if c is None else torch.zeros(c))


@pytest.mark.parametrize("resolution", [0, 4, 100])
def test_dual_discriminator_rejects_bad_resolution(resolution):
    with pytest.raises(ValueError, match="power of two >= 8"):
        DualDiscriminator(resolution)


def test_train_mode_matches_official_too(sr, dual_d, ref):
    """Train mode switches the SR head to the unfused modulated convolution; both stay in tolerance."""
    tag = TAGS[0]
    feats = t(ref[f"render_det_features__{tag}"])[None]
    img, c = _d_inputs(ref, 2)
    sr.train()
    dual_d.train()
    try:
        with torch.no_grad():
            image = sr(feats[:, :3].contiguous(), feats, _ws(ref, tag))
            logits = dual_d(img, c)
    finally:
        sr.eval()
        dual_d.eval()
    torch.testing.assert_close(image[0], t(ref[f"render_det_image__{tag}"]), atol=1e-3, rtol=0)
    torch.testing.assert_close(logits, t(ref["D_rand_logits_batch2"]), atol=1e-4, rtol=0)
