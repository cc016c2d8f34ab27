"""A restricted unpickler for official EpiGRAF training snapshots: it rebuilds data, never code.

Official snapshots pickle their networks as "persistent objects": a call to
``src.torch_utils.persistence._reconstruct_persistent_obj(meta)`` whose ``meta`` carries the
*source text* of the network module, which the official loader ``exec``s. Loading such a file with
``pickle.load`` therefore runs whatever code the file contains. This unpickler resolves globals
from an explicit allow-list only:

- the persistence hook, mapped to :class:`PersistentObject` (keeps ``class_name`` and ``state``,
  drops ``module_src`` after hashing it; nothing is imported or executed);
- plain containers (dict, list, tuple, set, OrderedDict, defaultdict) and scalars;
- numpy array / scalar / dtype reconstruction and torch tensor / parameter rebuilding, with
  storages read by ``torch.load(..., weights_only=True, map_location='cpu')`` (official storages
  are tagged for CUDA);
- classes that only carry data (omegaconf nodes, ``dnnlib.EasyDict``, ``torch.nn`` containers,
  ``torch.optim`` optimizers), mapped to inert holders that keep their pickled state.

Every other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ``torch.load``, ...)
raises :class:`UnsafePickleError` naming it, before anything is called. The objects handed to the
pickle machinery are either immutable built-in types, holder classes created fresh for each load,
or wrappers whose ``__setstate__`` refuses, so a crafted BUILD cannot patch library objects.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np
import torch

from .errors import EpigrafError

PERSISTENCE_MODULES = ("src.torch_utils.persistence", "torch_utils.persistence")
EASYDICT_MODULES = ("src.dnnlib.util", "dnnlib.util")
TORCH_DTYPES = frozenset(
    "float32 float64 float16 bfloat16 int64 int32 int16 int8 uint8 bool complex64 complex128".split()
)


class UnsafePickleError(EpigrafError):
    """The pickle refers to something outside the allow-list (or misuses an allowed one)."""


class PersistentObject:
    """What an official persistent network becomes: its class name and pickled ``__dict__``.

    ``state`` holds ``_parameters``, ``_buffers``, ``_modules`` (children, themselves persistent
    objects or inert ``torch.nn`` holders), ``_init_kwargs``, ``cfg`` and user attributes.
    """

    __slots__ = ("class_name", "state", "module_src_sha256", "version")

    def __init__(self, class_name: str, state: dict, module_src_sha256: str, version: int) -> None:
        self.class_name = class_name
        self.state = state
        self.module_src_sha256 = module_src_sha256
        self.version = version

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError("the pickle tries to modify a persistent object after creating it")

    def __repr__(self) -> str:
        return f"PersistentObject({self.class_name})"


class InertObject:
    """Stand-in for an allowed data-only class: keeps constructor args, items and pickled state.

    Subclasses are created per load and per qualified name (``qualname`` says what it stood for).
    """

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = object.__new__(cls)
        obj.__dict__.update(args=args, state=None, items={}, list=[])
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__["items"][key] = value

    def append(self, value: Any) -> None:
        self.__dict__["list"].append(value)

    def extend(self, values: Any) -> None:
        self.__dict__["list"].extend(values)

    def state_dict(self) -> dict:
        """The pickled state as a dict (``{}`` when there was none)."""
        state = self.__dict__["state"]
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            return merged
        return dict(state) if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


class EasyDictHolder(dict):
    """``dnnlib.EasyDict`` as a plain dict (its pickled attribute state is ignored)."""

    def __setstate__(self, state: Any) -> None:
        pass


class _Opaque:
    """A named marker returned for harmless globals such as ``typing.Any``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"the pickle tries to modify {self.name}")

    def __repr__(self) -> str:
        return self.name


class _SafeCall:
    """An allowed callable; a BUILD on it (an attempt to patch it) is refused."""

    __slots__ = ("fn", "name")

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self.fn = fn
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"the pickle tries to modify {self.name}")

    def __repr__(self) -> str:
        return f"<allowed {self.name}>"


_TENSOR_TYPE = _Opaque("torch.Tensor")
_PARAMETER_TYPE = _Opaque("torch.nn.Parameter")
_TYPING_ANY = _Opaque("typing.Any")


def _reconstruct_persistent(meta: Any) -> PersistentObject:
    """Replacement for the official hook: validate ``meta`` and keep its data, never its source."""
    if not isinstance(meta, dict):
        raise UnsafePickleError(f"persistent object meta must be a dict, got {type(meta).__name__}")
    missing = {"type", "version", "class_name", "state"} - set(meta)
    if missing:
        raise UnsafePickleError(f"persistent object meta lacks {', '.join(sorted(missing))}")
    if meta["type"] != "class":
        raise UnsafePickleError(f"persistent object of type {meta['type']!r} is not supported (expected 'class')")
    if meta["version"] != 6:
        raise UnsafePickleError(f"persistent object format version {meta['version']!r} is not supported (expected 6)")
    class_name, state = meta["class_name"], meta["state"]
    if not isinstance(class_name, str) or not class_name.isidentifier():
        raise UnsafePickleError(f"bad persistent class name {class_name!r}")
    if not isinstance(state, dict):
        raise UnsafePickleError(f"persistent {class_name} has a non-dict state ({type(state).__name__})")
    src = meta.get("module_src") or ""
    digest = hashlib.sha256(src.encode("utf-8", "surrogatepass") if isinstance(src, str) else b"").hexdigest()
    return PersistentObject(class_name, state, digest, meta["version"])


def _load_storage(data: Any) -> torch.storage.TypedStorage | torch.UntypedStorage:
    """A tensor storage saved by legacy ``torch.save``; CUDA-tagged storages land on the CPU."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"storage payload must be bytes, got {type(data).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafePickleError(f"a tensor storage holds more than tensor data: {str(exc).splitlines()[0]}") from None
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a tensor storage payload decoded to {type(storage).__name__}, not a storage")
    return storage


def _check_hooks(hooks: Any, what: str) -> None:
    if hooks:
        raise UnsafePickleError(f"{what} carries backward hooks; official snapshots have none")


def _rebuild_tensor(storage, offset, size, stride, requires_grad, backward_hooks, metadata=None) -> torch.Tensor:
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    if not (isinstance(offset, int) and all(isinstance(v, int) for v in (*size, *stride))):
        raise UnsafePickleError("tensor geometry must be integers")
    _check_hooks(backward_hooks, "a tensor")
    if metadata is not None and not isinstance(metadata, dict):
        raise UnsafePickleError("bad tensor metadata")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._utils._rebuild_tensor_v2(
            storage, offset, tuple(size), tuple(stride), bool(requires_grad), OrderedDict(), metadata
        )


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"parameter rebuilt from {type(data).__name__}, not a tensor")
    _check_hooks(backward_hooks, "a parameter")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _rebuild_from_type(func, new_type, args, state) -> torch.Tensor:
    if not isinstance(func, _SafeCall):
        raise UnsafePickleError("tensor subclass rebuilt through a callable outside the allow-list")
    result = func(*args)
    if not isinstance(result, torch.Tensor):
        raise UnsafePickleError("tensor subclass rebuild did not produce a tensor")
    if new_type is _PARAMETER_TYPE:
        return torch.nn.Parameter(result, requires_grad=result.requires_grad)
    if new_type is not _TENSOR_TYPE:
        raise UnsafePickleError(f"tensor subclass {new_type!r} is not allowed")
    return result


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """Protocol-2 pickles spell bytes as ``_codecs.encode(str, 'latin1')``; nothing else is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, encoding)


def _exact_allow_list() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {}
    for name in (
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "int",
        "float",
        "complex",
        "bool",
        "str",
        "bytes",
        "bytearray",
    ):
        allowed[("builtins", name)] = getattr(__import__("builtins"), name)
    allowed[("collections", "OrderedDict")] = OrderedDict
    allowed[("collections", "defaultdict")] = defaultdict
    allowed[("_codecs", "encode")] = _SafeCall(_codecs_encode, "_codecs.encode")
    allowed[("typing", "Any")] = _TYPING_ANY
    np_multiarray = np.core.multiarray if not hasattr(np, "_core") else np._core.multiarray  # noqa: NPY201
    np_numeric = np.core.numeric if not hasattr(np, "_core") else np._core.numeric  # noqa: NPY201
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _SafeCall(np_multiarray._reconstruct, "numpy _reconstruct")
        allowed[(mod, "scalar")] = _SafeCall(np_multiarray.scalar, "numpy scalar")
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _SafeCall(np_numeric._frombuffer, "numpy _frombuffer")
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("torch._utils", "_rebuild_tensor_v2")] = _SafeCall(_rebuild_tensor, "torch _rebuild_tensor_v2")
    allowed[("torch._utils", "_rebuild_parameter")] = _SafeCall(_rebuild_parameter, "torch _rebuild_parameter")
    allowed[("torch._utils", "_rebuild_parameter_with_state")] = _SafeCall(
        _rebuild_parameter, "torch _rebuild_parameter_with_state"
    )
    allowed[("torch._tensor", "_rebuild_from_type_v2")] = _SafeCall(_rebuild_from_type, "torch _rebuild_from_type_v2")
    allowed[("torch.storage", "_load_from_bytes")] = _SafeCall(_load_storage, "torch.storage._load_from_bytes")
    allowed[("torch", "Tensor")] = _TENSOR_TYPE
    allowed[("torch._tensor", "Tensor")] = _TENSOR_TYPE
    allowed[("torch.nn.parameter", "Parameter")] = _PARAMETER_TYPE
    for name in TORCH_DTYPES:
        allowed[("torch", name)] = getattr(torch, name)
    return allowed


_ALLOWED = _exact_allow_list()


def _is_data_class(module: str, name: str) -> bool:
    """Classes that only carry data and become inert holders (never imported)."""
    if not name.isidentifier() or name.startswith("_"):
        return False
    if module == "omegaconf" or module.startswith("omegaconf."):
        return True
    if module.startswith("torch.nn.modules.") and name[0].isupper():
        return True
    return module.startswith("torch.optim.") and name[0].isupper()


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` only answers from the allow-list above.

    ``seen_globals`` records every global the pickle asked for (useful in error reports and tests).
    """

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.seen_globals: list[str] = []
        self._holders: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        qualname = f"{module}.{name}"
        self.seen_globals.append(qualname)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in PERSISTENCE_MODULES and name == "_reconstruct_persistent_obj":
            return _SafeCall(_reconstruct_persistent, qualname)
        if module in EASYDICT_MODULES and name == "EasyDict":
            return EasyDictHolder
        if _is_data_class(module, name):
            if qualname not in self._holders:
                self._holders[qualname] = type(name, (InertObject,), {"qualname": qualname, "__module__": __name__})
            return self._holders[qualname]
        raise UnsafePickleError(
            f"refusing to load {qualname}: it is not on the allow-list of an official EpiGRAF snapshot "
            "(nothing from the file was executed)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"unexpected persistent id {str(pid)[:80]!r} in the pickle")


def safe_load(file: BinaryIO) -> Any:
    """Unpickle ``file`` with :class:`RestrictedUnpickler`; malformed data becomes an EpigrafError."""
    try:
        return RestrictedUnpickler(file).load()
    except EpigrafError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        KeyError,
        RuntimeError,
        MemoryError,
        OverflowError,
        RecursionError,
        UnicodeDecodeError,
    ) as exc:
        raise EpigrafError(
            f"not a readable pickle: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
