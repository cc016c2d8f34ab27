"""A restricted unpickler for official EpiGRAF training snapshots: it rebuilds data, never code.

Official snapshots pickle their networks as "persistent objects": a call to
``src.torch_utils.persistence._reconstruct_persistent_obj(meta)`` whose ``meta`` carries the
*source text* of the network module, which the official loader ``exec``s. Loading such a file with
``pickle.load`` therefore runs whatever code the file contains. This unpickler resolves globals
from an explicit allow-list only:

- the persistence hook, mapped to :class:`PersistentObject` (keeps ``class_name`` and ``state``,
  drops ``module_src`` after hashing it; nothing is imported or executed);
- plain containers (dict, list, tuple, set, OrderedDict, defaultdict) and scalars;
- numpy arrays / scalars / dtypes and torch tensors / parameters, rebuilt from plain values that
  are validated first: a dtype from its type string (plain numeric or bool only), an array from
  dtype + shape + exactly that many bytes, a scalar as the equivalent Python number, a storage
  parsed from torch's legacy payload by us (never ``torch.load``; CUDA tags land on the CPU), a
  tensor as a view whose shape and strides lie inside its storage;
- classes that only carry data (omegaconf nodes, ``dnnlib.EasyDict``, ``torch.nn`` containers,
  ``torch.optim`` optimizers), mapped to inert holders that keep their pickled state.

Every other global (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ``torch.load``, ...)
raises :class:`UnsafePickleError` naming it, before anything is called. The objects handed to the
pickle machinery are immutable built-in types, holder classes created fresh for each load, or
wrappers whose ``__setstate__`` validates or refuses: a crafted BUILD cannot patch a numpy dtype,
array or tensor (a BUILD on a numpy dtype could give it an object field and crash the process).
Before the load, :func:`epigraf_tools.checkpoints.pickle_scan.scan_pickle` checks the opcode stream against
budgets (opcodes, memo, declared lengths, nesting); during it, materialised bytes are counted.
See docs/security.md.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import math
import mmap
import pickle
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any, BinaryIO

import numpy as np
import torch

from ..errors import EpigrafError
from .pickle_scan import UnsafePickleError, scan_pickle

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "safe_load", "safe_loads", "plain_tensor"]

PERSISTENCE_MODULES = ("src.torch_utils.persistence", "torch_utils.persistence")
EASYDICT_MODULES = ("src.dnnlib.util", "dnnlib.util")
# Plain (non-persistent) nn.Module classes an official EG3D snapshot pickles by reference: they hold no
# code of their own in the file and become inert holders like the torch.nn containers.
EG3D_MODULE_CLASSES = frozenset(
    {
        "training.triplane.OSGDecoder",
        "training.volumetric_rendering.ray_marcher.MipRayMarcher2",
        "training.volumetric_rendering.ray_sampler.RaySampler",
        "training.volumetric_rendering.renderer.ImportanceRenderer",
    }
)
TORCH_DTYPES = frozenset(
    "float32 float64 float16 bfloat16 int64 int32 int16 int8 uint8 bool complex64 complex128".split()
)


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
_NDARRAY_TYPE = _Opaque("numpy.ndarray")


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


# ----------------------------------------------------------------------------- budgets
# Whatever a load builds from the file's bytes (storages, tensor views of them, arrays, bytes objects)
# is counted; a file cannot make more than this, whatever its headers claim. The largest official
# release is 875 MB, which counts about twice (each storage once, and once as its tensor).
MAX_MATERIALISED_BYTES = 4 << 30  # 2.3x what the largest release counts; far below exhausting memory
MAX_TENSOR_DIMS = 16  # official tensors have at most 5 dimensions
MAX_HEADER_PICKLE = 1 << 16  # the small pickles that frame a storage payload are ~300 bytes


class _LoadBudget:
    """Per-load counter of bytes materialised by the allowed callables."""

    def __init__(self) -> None:
        self.materialised = 0

    def charge(self, nbytes: int, what: str) -> None:
        self.materialised += nbytes
        if self.materialised > MAX_MATERIALISED_BYTES:
            raise UnsafePickleError(
                f"{what} would take the load past {MAX_MATERIALISED_BYTES >> 30} GiB materialised (budget)"
            )


# ----------------------------------------------------------------------------- numpy, from plain values
# Only plain numeric and bool dtypes, by their pickled type string (no void, object or structured dtypes).
NUMPY_DTYPES = frozenset("b1 i1 i2 i4 i8 u1 u2 u4 u8 f2 f4 f8 c8 c16".split())


class _DtypeSpec:
    """What a pickled ``numpy.dtype(...)`` becomes: a validated type string, never a patched dtype.

    numpy pickles a dtype as ``dtype(str, align, copy)`` followed by a BUILD with its state; here the
    BUILD only checks that the state is the plain one (byte order, no fields or subarray).
    """

    __slots__ = ("dtype", "_built")

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(spec, str) or spec not in NUMPY_DTYPES:
            raise UnsafePickleError(
                f"numpy dtype {str(spec)[:40]!r} is not allowed "
                f"(only plain numeric/bool: {' '.join(sorted(NUMPY_DTYPES))})"
            )
        self.dtype = np.dtype(spec)
        self._built = False

    def __setstate__(self, state: Any) -> None:
        ok = (
            not self._built
            and isinstance(state, tuple)
            and len(state) == 8
            and state[0] == 3
            and state[1] in ("<", ">", "|", "=")
            and state[2:5] == (None, None, None)
            and state[5] in (-1, self.dtype.itemsize)
            and state[6] in (-1, self.dtype.alignment)
            and state[7] == 0
        )
        if not ok:
            raise UnsafePickleError(f"numpy dtype {self.dtype.str} carries a non-plain state (fields or flags)")
        if state[1] == ">" and self.dtype.itemsize > 1:
            raise UnsafePickleError(f"big-endian numpy data ({self.dtype.str}) is not supported")
        self._built = True


def _dtype_of(spec: Any) -> np.dtype:
    if not isinstance(spec, _DtypeSpec):
        raise UnsafePickleError(f"numpy data with a dtype given as {type(spec).__name__}")
    return spec.dtype


def _shape_of(shape: Any, what: str) -> tuple[int, ...]:
    if not (isinstance(shape, tuple) and len(shape) <= MAX_TENSOR_DIMS):
        raise UnsafePickleError(f"{what} has a bad shape")
    if not all(type(v) is int and v >= 0 for v in shape):
        raise UnsafePickleError(f"{what} shape {list(shape)[:8]} must be non-negative integers")
    return shape


class PickledArray(np.ndarray):
    """A numpy array rebuilt from a validated dtype, shape and exactly as many bytes as they need.

    numpy pickles arrays as ``_reconstruct(ndarray, (0,), b'b')`` followed by a BUILD with
    ``(version, shape, dtype, fortran, raw bytes)``; the BUILD lands here and is checked first.
    """

    def __setstate__(self, state: Any) -> None:
        if getattr(self, "_epigraf_built", False):
            raise UnsafePickleError("the pickle tries to modify a numpy array after building it")
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise UnsafePickleError("numpy array with a non-standard pickled state")
        _, shape, spec, fortran, raw = state
        shape, dtype = _shape_of(shape, "numpy array"), _dtype_of(spec)
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != math.prod(shape) * dtype.itemsize:
            raise UnsafePickleError(f"numpy array {list(shape)} {dtype.str}: the data is not exactly its size")
        np.ndarray.__setstate__(self, (1, shape, dtype, bool(fortran), raw))
        self._epigraf_built = True


def _np_reconstruct(subtype: Any, shape: Any, typecode: Any) -> PickledArray:
    if subtype is not _NDARRAY_TYPE:
        raise UnsafePickleError(f"numpy _reconstruct of {subtype!r} (only numpy.ndarray)")
    return np.ndarray.__new__(PickledArray, (0,), np.uint8)


def _np_scalar(budget: _LoadBudget, spec: Any, raw: Any = b"") -> bool | int | float | complex:
    """A numpy scalar as the equivalent Python value (nothing numpy-side is left to patch)."""
    dtype = _dtype_of(spec)
    if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise UnsafePickleError(f"numpy scalar {dtype.str} needs exactly {dtype.itemsize} bytes")
    return np.frombuffer(raw, dtype)[0].item()


def _np_frombuffer(budget: _LoadBudget, buf: Any, spec: Any, shape: Any, order: Any) -> PickledArray:
    dtype, shape = _dtype_of(spec), _shape_of(shape, "numpy array")
    if not isinstance(buf, (bytes, bytearray)) or len(buf) != math.prod(shape) * dtype.itemsize or order not in "CF":
        raise UnsafePickleError(f"numpy array {list(shape)} {dtype.str}: the buffer is not exactly its size")
    budget.charge(len(buf), "a numpy array")
    array = np.frombuffer(bytes(buf), dtype).reshape(shape, order=order).view(PickledArray)
    array._epigraf_built = True
    return array


def _builtin_bytes(kind: type, budget: _LoadBudget) -> Callable[..., Any]:
    """``bytes(...)`` / ``bytearray(...)`` from a value in the file, never from a count (``bytes(2**32)``)."""

    def make(*args: Any) -> Any:
        if args and not (
            (len(args) == 1 and isinstance(args[0], (bytes, bytearray)))
            or (len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"))
        ):
            raise UnsafePickleError(f"{kind.__name__}() from {type(args[0]).__name__} is not allowed (only from bytes)")
        value = kind(*args)
        budget.charge(len(value), f"{kind.__name__}()")
        return value

    return make


# ----------------------------------------------------------------------------- torch, from plain values
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch's legacy serialization: magic number, then protocol 1001
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}


class PickledStorage:
    """A tensor storage: a flat CPU tensor over exactly the bytes the payload declared."""

    __slots__ = ("flat",)

    def __init__(self, flat: torch.Tensor) -> None:
        self.flat = flat

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError("the pickle tries to modify a tensor storage")


class PickledTensor(torch.Tensor):
    """Tensors as loaded: a BUILD on them (``Tensor.__setstate__`` would ``set_`` any storage) is refused."""

    __torch_function__ = torch._C._disabled_torch_function_impl  # ops return plain tensors

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError("the pickle tries to modify a tensor after building it")


class PickledParameter(torch.nn.Parameter):
    """Parameters as loaded (see :class:`PickledTensor`)."""

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError("the pickle tries to modify a parameter after building it")


class _StorageHeader(pickle.Unpickler):
    """Reads the small pickles around a legacy storage payload: storage type names only."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.pid: Any = None

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in STORAGE_DTYPES:
            return _Opaque(name)
        raise UnsafePickleError(f"a tensor storage holds more than tensor data: refusing {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if self.pid is not None:
            raise UnsafePickleError("a tensor storage payload holds more than one storage")
        self.pid = pid
        return _STORAGE_REF


_STORAGE_REF = _Opaque("storage reference")
_CHECKED_PREFIXES: set[bytes] = set()  # payload prefixes (magic, protocol, sys info) already validated


def _header_pickle(data: bytes, pos: int) -> tuple[Any, _StorageHeader, int]:
    end = scan_pickle(data, pos).end
    if end - pos > MAX_HEADER_PICKLE:
        raise UnsafePickleError("a tensor storage payload has an oversized header")
    unpickler = _StorageHeader(io.BytesIO(data[pos:end]))
    return unpickler.load(), unpickler, end


def _load_storage(budget: _LoadBudget, data: Any) -> PickledStorage:
    """A storage saved by legacy ``torch.save`` (as pickling a tensor does), parsed here, not by torch.load.

    Layout: magic, protocol, sys info, a pickle whose persistent id is
    ``('storage', type, key, location, numel, None)``, the list of keys, then int64 numel and the raw
    bytes. The payload must hold exactly ``numel`` elements: a lying header cannot allocate anything.
    Zip-format payloads (which could hide a deflate bomb) are refused: tensor pickling never writes them.
    """
    if not isinstance(data, bytes):
        raise UnsafePickleError(f"storage payload must be bytes, got {type(data).__name__}")
    if data[:2] == b"PK":
        raise UnsafePickleError("a tensor storage payload is a zip archive; official snapshots store raw data")
    try:
        pos = next((len(p) for p in _CHECKED_PREFIXES if data.startswith(p)), 0)
        if not pos:  # magic, protocol and sys info: the same bytes in every payload of a snapshot
            magic, _, pos = _header_pickle(data, 0)
            protocol, _, pos = _header_pickle(data, pos)
            info, _, pos = _header_pickle(data, pos)
            if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL or not isinstance(info, dict):
                raise UnsafePickleError("a tensor storage payload is not in torch's legacy format")
            if info.get("little_endian") is not True:
                raise UnsafePickleError("a big-endian tensor storage is not supported")
            if len(_CHECKED_PREFIXES) < 8:
                _CHECKED_PREFIXES.add(data[:pos])
        ref, header, pos = _header_pickle(data, pos)
        keys, _, pos = _header_pickle(data, pos)
    except UnsafePickleError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the tiny header pickles means "not a storage"
        raise UnsafePickleError(f"a tensor storage payload is malformed ({type(exc).__name__})") from None
    pid = header.pid
    if ref is not _STORAGE_REF or not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
        raise UnsafePickleError("a tensor storage payload holds more than tensor data")
    _, kind, key, location, numel, view = pid
    if not isinstance(kind, _Opaque) or not isinstance(location, str) or view is not None or keys != [key]:
        raise UnsafePickleError("a tensor storage payload has an unexpected storage reference")
    dtype = STORAGE_DTYPES[kind.name]
    itemsize = torch.empty((), dtype=dtype).element_size()
    if type(numel) is not int or numel < 0 or data[pos : pos + 8] != numel.to_bytes(8, "little"):
        raise UnsafePickleError(f"a {kind.name} payload declares inconsistent sizes")
    nbytes = numel * itemsize
    if len(data) - pos - 8 != nbytes:
        raise UnsafePickleError(
            f"a {kind.name} declares {numel:,} elements ({nbytes:,} bytes) but holds {len(data) - pos - 8:,} bytes"
        )
    budget.charge(nbytes, f"a {kind.name} of {numel:,} elements")
    raw = bytearray(memoryview(data)[pos + 8 :])  # one copy, writable (tensors must own writable memory)
    flat = torch.frombuffer(raw, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
    return PickledStorage(flat)


def _check_hooks(hooks: Any, what: str) -> None:
    if hooks:
        raise UnsafePickleError(f"{what} carries backward hooks; official snapshots have none")


def _rebuild_tensor(
    budget: _LoadBudget, storage, offset, size, stride, requires_grad, backward_hooks, metadata=None
) -> PickledTensor:
    """A view of a storage whose geometry is checked to lie inside it (no stride-0 'huge' tensors).

    Views count towards the materialised budget too: many full views of one large storage would
    otherwise multiply what a consumer that lists or copies tensors has to handle.
    """
    if not isinstance(storage, PickledStorage):
        raise UnsafePickleError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
    size, stride = _shape_of(size, "a tensor"), _shape_of(stride, "a tensor's stride")
    if type(offset) is not int or offset < 0 or len(size) != len(stride):
        raise UnsafePickleError("tensor geometry must be non-negative integers, one stride per dimension")
    _check_hooks(backward_hooks, "a tensor")
    if metadata is not None and not isinstance(metadata, dict):
        raise UnsafePickleError("bad tensor metadata")
    available = storage.flat.numel()
    numel = math.prod(size)
    if numel:
        span = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1
        if numel > available or span > available:
            raise UnsafePickleError(
                f"a tensor of shape {list(size)} (stride {list(stride)}, offset {offset}) needs more than its "
                f"storage of {available:,} elements"
            )
    budget.charge(numel * storage.flat.element_size(), f"a tensor of shape {list(size)}")
    return storage.flat.as_strided(size, stride, offset if numel else 0).as_subclass(PickledTensor)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None) -> PickledParameter:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"parameter rebuilt from {type(data).__name__}, not a tensor")
    _check_hooks(backward_hooks, "a parameter")
    return PickledParameter(plain_tensor(data), requires_grad=bool(requires_grad))


def _rebuild_from_type(func, new_type, args, state) -> torch.Tensor:
    if not isinstance(func, _SafeCall) or not isinstance(args, tuple):
        raise UnsafePickleError("tensor subclass rebuilt through a callable outside the allow-list")
    result = func(*args)
    if not isinstance(result, torch.Tensor):
        raise UnsafePickleError("tensor subclass rebuild did not produce a tensor")
    if new_type is _PARAMETER_TYPE:
        return PickledParameter(plain_tensor(result), requires_grad=result.requires_grad)
    if new_type is not _TENSOR_TYPE:
        raise UnsafePickleError(f"tensor subclass {new_type!r} is not allowed")
    return result


def plain_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A loaded tensor or parameter as a plain ``torch.Tensor`` (same memory, detached)."""
    return tensor.detach().as_subclass(torch.Tensor)


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """Protocol-2 pickles spell bytes as ``_codecs.encode(str, 'latin1')``; nothing else is allowed."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed")
    return codecs.encode(text, encoding)


def _exact_allow_list(budget: _LoadBudget) -> dict[tuple[str, str], Any]:
    """The globals a snapshot may name, mapped to validating stand-ins (fresh per load: they share ``budget``)."""
    allowed: dict[tuple[str, str], Any] = {}
    for name in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str"):
        allowed[("builtins", name)] = getattr(__import__("builtins"), name)
    for kind in (bytes, bytearray):
        allowed[("builtins", kind.__name__)] = _SafeCall(_builtin_bytes(kind, budget), f"builtins.{kind.__name__}")
    allowed[("collections", "OrderedDict")] = OrderedDict
    allowed[("collections", "defaultdict")] = defaultdict
    allowed[("_codecs", "encode")] = _SafeCall(_codecs_encode, "_codecs.encode")
    allowed[("typing", "Any")] = _TYPING_ANY
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _SafeCall(_np_reconstruct, "numpy _reconstruct")
        allowed[(mod, "scalar")] = _SafeCall(partial(_np_scalar, budget), "numpy scalar")
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(mod, "_frombuffer")] = _SafeCall(partial(_np_frombuffer, budget), "numpy _frombuffer")
    allowed[("numpy", "ndarray")] = _NDARRAY_TYPE
    allowed[("numpy", "dtype")] = _SafeCall(_DtypeSpec, "numpy dtype")
    allowed[("torch._utils", "_rebuild_tensor_v2")] = _SafeCall(
        partial(_rebuild_tensor, budget), "torch _rebuild_tensor_v2"
    )
    allowed[("torch._utils", "_rebuild_parameter")] = _SafeCall(_rebuild_parameter, "torch _rebuild_parameter")
    allowed[("torch._utils", "_rebuild_parameter_with_state")] = _SafeCall(
        _rebuild_parameter, "torch _rebuild_parameter_with_state"
    )
    allowed[("torch._tensor", "_rebuild_from_type_v2")] = _SafeCall(_rebuild_from_type, "torch _rebuild_from_type_v2")
    allowed[("torch.storage", "_load_from_bytes")] = _SafeCall(
        partial(_load_storage, budget), "torch.storage._load_from_bytes"
    )
    allowed[("torch", "Tensor")] = _TENSOR_TYPE
    allowed[("torch._tensor", "Tensor")] = _TENSOR_TYPE
    allowed[("torch.nn.parameter", "Parameter")] = _PARAMETER_TYPE
    for name in TORCH_DTYPES:
        allowed[("torch", name)] = getattr(torch, name)
    return allowed


def _is_data_class(module: str, name: str) -> bool:
    """Classes that only carry data and become inert holders (never imported)."""
    if not name.isidentifier() or name.startswith("_"):
        return False
    if module == "omegaconf" or module.startswith("omegaconf."):
        return True
    if module.startswith("torch.nn.modules.") and name[0].isupper():
        return True
    if f"{module}.{name}" in EG3D_MODULE_CLASSES:
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
        self.budget = _LoadBudget()
        self._allowed = _exact_allow_list(self.budget)

    def find_class(self, module: str, name: str) -> Any:
        qualname = f"{module}.{name}"
        self.seen_globals.append(qualname)
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        if module in PERSISTENCE_MODULES and name == "_reconstruct_persistent_obj":
            return _SafeCall(_reconstruct_persistent, qualname)
        if module in EASYDICT_MODULES and name == "EasyDict":
            return EasyDictHolder
        if _is_data_class(module, name):
            if qualname not in self._holders:
                self._holders[qualname] = type(name, (InertObject,), {"qualname": qualname, "__module__": __name__})
            return self._holders[qualname]
        raise UnsafePickleError(
            f"refusing to load {qualname}: it is not on the allow-list of an official EpiGRAF or EG3D snapshot "
            "(nothing from the file was executed)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"unexpected persistent id {str(pid)[:80]!r} in the pickle")


def safe_loads(data: bytes | mmap.mmap, file: BinaryIO | None = None) -> Any:
    """Scan ``data`` against the budgets (:mod:`epigraf_tools.checkpoints.pickle_scan`), then unpickle it restrictedly.

    ``file``, when given, is read instead of ``data`` for the actual load (it must hold the same
    bytes): it lets the caller hash the bytes and report progress while they are read.
    """
    scan_pickle(data)
    try:
        return RestrictedUnpickler(file if file is not None else io.BytesIO(data)).load()
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


def safe_load(file: BinaryIO) -> Any:
    """Read ``file`` to its end and :func:`safe_loads` it; malformed data becomes an EpigrafError."""
    return safe_loads(file.read())
