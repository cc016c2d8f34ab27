"""Out-of-memory back-off for training steps: recognising the error, and undoing a failed step.

``auto_config`` estimates a chunk (``batch_gpu``) that fits; an estimate can be wrong (another process
on the GPU, allocator fragmentation, a device the calibration never saw). When a step then runs out
of memory the loop halves the chunk and redoes the step from its start. A redo must start from the
state the step started from, or the step's earlier phases would apply twice: ``StepRollback`` keeps
what a step changes before its last phase, on the CPU so that the copy costs no device memory.
"""

from __future__ import annotations

import gc
from typing import Any

import torch

# How the allocators say it: CUDA and MPS ("... out of memory ..."), the CPU allocator ("can't allocate memory").
OOM_MESSAGES = ("out of memory", "can't allocate memory")


def oom_error_types() -> tuple[type[BaseException], ...]:
    """torch.OutOfMemoryError (torch >= 2.5) and torch.cuda.OutOfMemoryError, where this torch has them."""
    found = [getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)]
    return tuple(t for t in found if isinstance(t, type))


def is_out_of_memory(exc: BaseException) -> bool:
    """True for an allocator's out-of-memory error on any device; other errors must propagate unchanged."""
    if isinstance(exc, oom_error_types()):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in OOM_MESSAGES)


def free_memory(device: torch.device, *optimizers: torch.optim.Optimizer) -> None:
    """Drop gradients and unreachable tensors, and hand cached CUDA blocks back, before a smaller retry."""
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _to_cpu(value: Any) -> Any:
    """A deep copy of a (nested) state dict with every tensor copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


class StepRollback:
    """The state a training step starts from: modules (parameters and buffers) and optimisers, plus extras.

    ``extras`` are (get_state, set_state) pairs for small stateful helpers (ADA's pending sums, its p).
    A full rollback copies everything to the CPU; ``BufferRollback`` is the cheap one for a step
    that fails before any optimiser step (only buffers such as G's ``w_avg`` have moved by then).
    """

    full = True

    def __init__(
        self,
        modules: dict[str, torch.nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        extras: dict[str, tuple[Any, Any]] | None = None,
    ) -> None:
        self.modules, self.optimizers, self.extras = modules, optimizers, extras or {}
        self.module_states = {k: _to_cpu(m.state_dict()) for k, m in modules.items()}
        self.optimizer_states = {k: _to_cpu(o.state_dict()) for k, o in optimizers.items()}
        self.extra_states = {k: _to_cpu(get()) for k, (get, _) in self.extras.items()}

    def restore(self) -> None:
        """Put everything back as it was when the rollback was taken (tensors return to their devices)."""
        for k, module in self.modules.items():
            module.load_state_dict(self.module_states[k])
        for k, opt in self.optimizers.items():
            opt.state.clear()  # free the device's moments before the restored ones are allocated there
            opt.load_state_dict(self.optimizer_states[k])
        for k, (_, set_state) in self.extras.items():
            set_state(self.extra_states[k])


class BufferRollback:
    """The modules' buffers only (``w_avg`` moves in every forward of G), kept on their devices: a few MB.

    Enough to redo a step that failed before its first optimiser step; ``full`` is False to say so.
    """

    full = False

    def __init__(self, modules: dict[str, torch.nn.Module]) -> None:
        self.buffers = {(k, name): buf.detach().clone() for k, m in modules.items() for name, buf in m.named_buffers()}
        self.modules = modules

    def restore(self) -> None:
        for (k, name), saved in self.buffers.items():
            self.modules[k].get_buffer(name).copy_(saved)
