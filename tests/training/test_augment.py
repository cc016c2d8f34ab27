"""ADA (training/augment.py): the transforms against closed forms, gradients, firing rates, the p
controller, and its wiring into the training loop (state, logs, resume, old runs)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from training_support import tiny_train_config

from epigraf_tools.training.augment import BGC, AdaController, AdaptiveAugment
from epigraf_tools.training.loop import Trainer, train
from epigraf_tools.training.snapshots import STATE_NAME, load_state


def _images(b: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _blur_121(x: torch.Tensor) -> torch.Tensor:
    """Separable [1/8, 3/4, 1/8] with reflect padding: supersample 2 at an integer translation."""
    f = torch.tensor([0.125, 0.75, 0.125], dtype=x.dtype)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="reflect"), f.view(1, 1, 1, 3).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, 1, 1), mode="reflect"), f.view(1, 1, 3, 1).repeat(c, 1, 1, 1), groups=c)


def _centred_coords(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v) pixel offsets from the image centre, u to the right, v down: [size, size] each."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    return r.view(1, size).expand(size, size), r.view(size, 1).expand(size, size)


# ---------------------------------------------------------------------- identity and geometry
def test_p_zero_returns_the_input_itself():
    x = _images()
    aug = AdaptiveAugment(p=0.0)
    assert aug(x, torch.Generator().manual_seed(0)) is x
    fixed = AdaptiveAugment(p=1.0)
    none_fired = {k: v for k, v in AdaptiveAugment(p=0.0).draw(4).items() if not k.endswith("_fired")}
    assert torch.equal(fixed.apply(x, none_fired), x)  # identity parameters do no arithmetic either


def test_rotate90_is_torch_rot90():
    x = _images(12)
    aug = AdaptiveAugment(p=1.0, transforms=["rotate90"])
    params = aug.draw(12, torch.Generator().manual_seed(1))
    assert set(params["rotate90"].tolist()) == {0, 1, 2, 3}
    y = aug.apply(x, params)
    for i, k in enumerate(params["rotate90"].tolist()):
        assert torch.equal(y[i], torch.rot90(x[i], k, dims=(1, 2))), i


def test_xint_is_a_shift_with_reflect_padding():
    x = _images(8, size=32)
    aug = AdaptiveAugment(p=1.0, transforms=["xint"])
    params = aug.draw(8, torch.Generator().manual_seed(2))
    y = aug.apply(x, params)
    shifts = torch.round(params["xint"] * 32).long()
    assert shifts.abs().max() <= 4 and (shifts != 0).any()
    m = 4
    for i, (sx, sy) in enumerate(shifts.tolist()):
        padded = F.pad(x[i : i + 1], (m, m, m, m), mode="reflect")[0]
        assert torch.equal(y[i], padded[:, m - sy : m - sy + 32, m - sx : m - sx + 32]), i
    # Shifts larger than the image keep mirroring periodically (period 2 (size - 1)).
    big = aug.apply(x[:1], {"xint": torch.tensor([[2 * 31 / 32, 0.0]])})
    assert torch.equal(big, x[:1])


def test_integer_translation_through_the_continuous_path_is_the_supersampling_blur():
    x = _images(2, size=16).double()
    aug = AdaptiveAugment(p=1.0, transforms=["xfrac"], supersample=2)
    shift = AdaptiveAugment(p=1.0, transforms=["xint"])
    t = torch.tensor([[3 / 16, -2 / 16], [0.0, 1 / 16]], dtype=torch.float64)
    y = aug.apply(x, {"xfrac": t})
    expected = shift.apply(_blur_121(x), {"xint": t})  # the blur of the mirrored image, moved
    assert torch.allclose(y, expected, atol=1e-6)


def test_scale_one_and_no_rotation_is_near_identity():
    u, v = _centred_coords(32)
    smooth = torch.stack([torch.sin(u / 5), torch.cos(v / 7), torch.sin((u + v) / 9)]).unsqueeze(0).float()
    aug = AdaptiveAugment(p=1.0, transforms=["scale", "rotate"])
    exact = {"scale": torch.ones(1), "rotate_pre": torch.zeros(1), "rotate_post": torch.zeros(1)}
    assert torch.equal(aug.apply(smooth, exact), smooth)  # nothing to resample: unchanged
    nearly = {**exact, "scale": torch.tensor([1.0 + 1e-6]), "rotate_pre": torch.tensor([1e-6])}
    diff = (aug.apply(smooth, nearly) - smooth).abs()
    assert diff[..., 1:-1, 1:-1].max() < 0.01  # only the mild supersampling blur
    assert diff.max() < 0.1  # the edge pixels also see their mirrored neighbours


def test_scale_aniso_rotation_of_a_linear_ramp_match_closed_forms():
    """Bilinear taps and symmetric supersampling reproduce linear images exactly away from the edges."""
    u, v = _centred_coords(32)
    ramp = (0.05 * u - 0.03 * v).float().expand(1, 3, 32, 32)
    aug = AdaptiveAugment(p=1.0, transforms=["scale", "rotate", "aniso"])
    one, zero = torch.ones(1), torch.zeros(1)
    # scale 2 (magnify): the content at u comes from u / 2
    y = aug.apply(ramp, {"scale": torch.tensor([2.0]), "rotate_pre": zero, "aniso": one, "rotate_post": zero})
    assert torch.allclose(y[0, 0], (0.05 * u / 2 - 0.03 * v / 2).float(), atol=1e-5)
    # aniso 2: x stretched by 2, y squeezed by 2 -> sources (u / 2, 2 v); the centre half stays inside
    y = aug.apply(ramp, {"scale": one, "rotate_pre": zero, "aniso": torch.tensor([2.0]), "rotate_post": zero})
    centre = (slice(9, 23), slice(9, 23))
    assert torch.allclose(y[0, 0][centre], (0.05 * u / 2 - 0.03 * 2 * v).float()[centre], atol=1e-5)
    # rotation by theta: sources R(-theta) (u, v)
    theta = 0.3
    y = aug.apply(ramp, {"scale": one, "rotate_pre": torch.tensor([theta]), "aniso": one, "rotate_post": zero})
    us = math.cos(theta) * u + math.sin(theta) * v
    vs = -math.sin(theta) * u + math.cos(theta) * v
    assert torch.allclose(y[0, 0][centre], (0.05 * us - 0.03 * vs).float()[centre], atol=1e-5)


# ---------------------------------------------------------------------- colour
def _constant(rgb: list[float], b: int = 1) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1).expand(b, 3, 4, 4).clone()


def test_colour_transforms_on_constant_colours_match_closed_forms():
    rgb = [0.5, -0.2, 0.1]
    x = _constant(rgb)
    c = torch.tensor(rgb, dtype=torch.float64).view(3, 1, 1)
    mean = c.mean()
    aug = AdaptiveAugment(p=1.0)

    def colour(name: str, value: float) -> torch.Tensor:
        return aug.apply(x, {name: torch.tensor([value], dtype=torch.float64)})[0]

    assert torch.allclose(colour("brightness", 0.3), (c + 0.3).expand(3, 4, 4), atol=1e-6)
    assert torch.allclose(colour("contrast", 1.7), (c * 1.7).expand(3, 4, 4), atol=1e-6)
    assert torch.allclose(colour("lumaflip", 1), (c - 2 * mean).expand(3, 4, 4), atol=1e-6)
    assert torch.equal(colour("lumaflip", 0), x[0])
    assert torch.allclose(colour("saturation", 0.25), (mean + 0.25 * (c - mean)).expand(3, 4, 4), atol=1e-6)
    # a third of a turn about (1, 1, 1) cycles the channels: (r, g, b) -> (b, r, g)
    assert torch.allclose(colour("hue", 2 * math.pi / 3), c[[2, 0, 1]].expand(3, 4, 4), atol=1e-6)
    # any hue turn keeps the luma (mean) and the chroma length, and leaves greys alone
    y = colour("hue", 1.1)[:, 0, 0]
    assert y.mean() == pytest.approx(float(mean), abs=1e-6)
    assert (y - y.mean()).norm() == pytest.approx(float((c - mean).norm()), abs=1e-6)
    grey = aug.apply(_constant([0.3, 0.3, 0.3]), {"hue": torch.tensor([1.1]), "saturation": torch.tensor([3.0])})
    assert torch.allclose(grey, _constant([0.3, 0.3, 0.3]), atol=1e-6)
    # composition order: brightness, then contrast
    both = aug.apply(x, {"brightness": torch.tensor([0.3]), "contrast": torch.tensor([2.0])})[0]
    assert torch.allclose(both, ((c + 0.3) * 2).expand(3, 4, 4), atol=1e-6)


def test_full_pipeline_at_p_one_changes_every_image_and_stays_finite():
    x = _images(8, size=32)
    y = AdaptiveAugment(p=1.0)(x, torch.Generator().manual_seed(3))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert ((y - x).abs().flatten(1).amax(dim=1) > 1e-3).all()


# ---------------------------------------------------------------------- gradients
def test_gradients_and_double_backward_flow_through_the_augmentation():
    aug = AdaptiveAugment(p=1.0)
    params = aug.draw(2, torch.Generator().manual_seed(4))
    x = _images(2, size=8).double().requires_grad_(True)
    fn = lambda t: aug.apply(t, params)  # noqa: E731 - linear in the images for fixed parameters
    assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)

    # R1 as the loss computes it: grad w.r.t. the input with create_graph, then backward to D's weights.
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    logits = F.conv2d(aug(x, torch.Generator().manual_seed(5)), w).square().mean(dim=[1, 2, 3])
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


# ---------------------------------------------------------------------- randomness
def test_transforms_fire_with_probability_p_and_the_paper_distributions():
    p, n = 0.3, 20000
    params = AdaptiveAugment(p=p).draw(n, torch.Generator().manual_seed(6))
    tol = 4 * math.sqrt(p * (1 - p) / n)
    for name in BGC:
        assert params[f"{name}_fired"].float().mean().item() == pytest.approx(p, abs=tol), name
    p_rot = 1 - math.sqrt(1 - p)  # each of the two rotations
    assert params["rotate_pre_fired"].float().mean().item() == pytest.approx(p_rot, abs=tol)
    assert params["rotate_post_fired"].float().mean().item() == pytest.approx(p_rot, abs=tol)

    def fired(name: str) -> torch.Tensor:
        return params[name][params[f"{name}_fired"]]

    assert fired("scale").log2().std().item() == pytest.approx(0.2, rel=0.05)
    assert fired("aniso").log2().std().item() == pytest.approx(0.2, rel=0.05)
    assert fired("contrast").log2().std().item() == pytest.approx(0.5, rel=0.05)
    assert fired("saturation").log2().std().item() == pytest.approx(1.0, rel=0.05)
    assert fired("brightness").std().item() == pytest.approx(0.2, rel=0.05)
    assert fired("xfrac").std().item() == pytest.approx(0.125, rel=0.05)
    assert fired("xint").abs().max().item() <= 0.125
    assert fired("hue").abs().max().item() <= math.pi and fired("hue").std().item() == pytest.approx(
        math.pi / math.sqrt(3), rel=0.05
    )
    assert sorted(set(fired("rotate90").tolist())) == [0, 1, 2, 3]
    assert fired("lumaflip").float().mean().item() == pytest.approx(0.5, abs=0.05)  # a fair coin once fired


# ---------------------------------------------------------------------- the p controller
def test_controller_moves_p_by_the_exact_step_and_clamps_at_zero():
    aug = AdaptiveAugment(p=0.1)
    ada = AdaController(aug, target=0.6, interval=4, kimg=500.0)
    step = 64 * 4 / 500_000
    ada.accumulate(torch.tensor([[1.0], [2.0], [0.5], [-1.0], [3.0]]))  # mean sign 0.6 + ... = 3/5 -> no move
    assert ada.update(batch=64) == pytest.approx(0.6)
    assert float(aug.p) == float(torch.tensor(0.1))  # a float32 buffer, like the official one
    ada.accumulate(torch.ones(8, 1))
    assert ada.update(batch=64) == 1.0
    assert float(aug.p) == pytest.approx(0.1 + step, abs=1e-7)
    assert float(aug.p) == float(torch.tensor(0.1) + step)
    ada.accumulate(-torch.ones(8, 1))
    ada.update(batch=64)
    ada.accumulate(-torch.ones(8, 1))
    ada.update(batch=64)
    assert float(aug.p) == pytest.approx(0.1 - step, abs=1e-7)
    aug.p.fill_(step / 2)
    ada.accumulate(-torch.ones(8, 1))
    ada.update(batch=64)
    assert float(aug.p) == 0.0  # clamped at zero
    assert ada.update(batch=64) is None and float(aug.p) == 0.0  # nothing seen: no move
    # The statistic is the mean over all ranks: a reduce that adds another rank's sums.
    ada.accumulate(torch.ones(3, 1))
    other_rank = torch.tensor([-3.0, 5.0], dtype=torch.float64)  # 1 positive, 4 negative logits
    assert ada.update(batch=64, reduce=lambda t: t + other_rank) == pytest.approx(0.0)
    assert float(aug.p) == 0.0


def test_state_round_trip():
    aug = AdaptiveAugment(p=0.123)
    ada = AdaController(aug)
    ada.accumulate(torch.tensor([1.0, -1.0, 2.0]))
    aug2 = AdaptiveAugment()
    aug2.load_state_dict(aug.state_dict())
    ada2 = AdaController(aug2)
    ada2.load_state_dict(ada.state_dict())
    assert torch.equal(aug2.p, aug.p) and ada2.state_dict() == ada.state_dict() == {"sign_sum": 1.0, "sign_count": 3.0}


# ---------------------------------------------------------------------- the training loop
def _log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_fixed_p_zero_trains_bit_identically_to_noaug(tiny_dataset, tmp_path):
    a = train(tiny_train_config(tiny_dataset, tmp_path / "a", kimg=0.004, augment="noaug"))
    b = train(tiny_train_config(tiny_dataset, tmp_path / "b", kimg=0.004, augment="fixed", augment_p=0.0))
    sa, sb = load_state(a.last_snapshot), load_state(b.last_snapshot)
    for net in ("G", "D"):
        for k in sa[net]:
            assert torch.equal(sa[net][k], sb[net][k]), (net, k)
    assert "augment_p" not in sa and float(sb["augment_p"]) == 0.0
    assert "Aug/p" not in _log(tmp_path / "a")[0] and _log(tmp_path / "b")[0]["Aug/p"] == 0.0


def test_ada_adapts_p_logs_it_and_resumes_exactly(tiny_dataset, tmp_path):
    # interval 1 and a fast speed, so that p moves every step by 4 / 40 = 0.1 from 0.3
    ada = dict(augment="ada", augment_p=0.3, ada_interval=1, ada_kimg=0.04, tick_kimg=0.004)
    full = train(tiny_train_config(tiny_dataset, tmp_path / "a", kimg=0.016, snapshot_kimg=0, **ada))
    train(tiny_train_config(tiny_dataset, tmp_path / "b", kimg=0.008, **ada))
    resumed_cfg = tiny_train_config(tiny_dataset, tmp_path / "b", kimg=0.016, snapshot_kimg=0, **ada)
    resumed = train(resumed_cfg, resume="latest")
    la, lb = _log(tmp_path / "a"), _log(tmp_path / "b")
    assert [r["step"] for r in lb] == [1, 2, 3, 4]
    ps = [r["Aug/p"] for r in la]
    assert all(abs(abs(round(q - p0, 6)) - 0.1) < 1e-6 or q == 0.0 for p0, q in zip([0.3, *ps[:-1]], ps, strict=True))
    assert all(-1 <= r["Aug/rt"] <= 1 for r in la)
    for ra, rb in zip(la, lb, strict=True):
        for k in ("Aug/p", "Aug/rt", "Loss/G/loss", "Loss/D/loss"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-6, abs=1e-7), (ra["step"], k)
    sa, sb = load_state(full.last_snapshot), load_state(resumed.last_snapshot)
    assert torch.equal(sa["augment_p"], sb["augment_p"]) and sa["ada"] == sb["ada"]


def test_runs_written_before_ada_resume_without_augmentation(tiny_dataset, tmp_path):
    from epigraf_tools.cli.train import build_config

    run = tmp_path / "old"
    result = train(tiny_train_config(tiny_dataset, run, kimg=0.004, augment="noaug"))
    # Make it look like a run written before the option existed: no 'augment' key anywhere.
    stored = json.loads((run / "config.json").read_text())
    old = {k: v for k, v in stored.items() if not k.startswith(("augment", "ada_"))}
    (run / "config.json").write_text(json.dumps(old))
    state = load_state(result.last_snapshot)
    state["config"] = json.dumps(old)
    torch.save(state, result.last_snapshot / STATE_NAME)

    # The CLI reads the stored config.json: the run resumes as it trained ...
    assert build_config({}, None, None, [], str(run)).augment == "noaug"
    # ... unless augmentation is asked for explicitly.
    assert build_config({}, None, None, ["augment=ada"], str(run)).augment == "ada"
    # Through the Python API an explicit 'ada' is honoured with a warning, and p starts at 0.
    with pytest.warns(UserWarning, match="before discriminator augmentation existed"):
        trainer = Trainer(tiny_train_config(tiny_dataset, run, augment="ada", augment_p=0.5), resume=run)
    assert float(trainer.augment.p) == 0.0 and trainer.ada.state_dict() == {"sign_sum": 0.0, "sign_count": 0.0}
