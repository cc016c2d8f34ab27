"""epigraf_tools/devices.py: 'auto' falls back to the CPU; unknown or absent devices are one clear error."""

from __future__ import annotations

import pytest
import torch

import epigraf_tools.devices as devices
from epigraf_tools.devices import DEVICE_CHOICES, resolve_device
from epigraf_tools.errors import EpigrafError


def test_choices():
    assert DEVICE_CHOICES == ("auto", "cpu", "cuda", "mps")


def test_cpu_and_case():
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device("CPU")


def test_auto_without_accelerators_is_the_cpu(monkeypatch):
    monkeypatch.setattr(devices.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices.torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("") == resolve_device(None) == torch.device("cpu")


def test_auto_prefers_cuda(monkeypatch):
    monkeypatch.setattr(devices.torch.cuda, "is_available", lambda: True)
    assert resolve_device() == torch.device("cuda")


def test_unknown_device_names_the_choices():
    with pytest.raises(EpigrafError, match="unknown device 'tpu'; expected one of auto, cpu, cuda, mps"):
        resolve_device("tpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:1", "mps"])
def test_absent_accelerator_is_an_error(monkeypatch, name):
    monkeypatch.setattr(devices.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices.torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(EpigrafError, match=f"{name.split(':')[0]} was requested but .* (not )?available"):
        resolve_device(name)
