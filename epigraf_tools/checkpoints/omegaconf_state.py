"""Turn pickled omegaconf configs (inert holders from :mod:`safe_pickle`) into plain Python values.

Official snapshots keep the experiment configuration in omegaconf ``DictConfig`` nodes: each
container's pickled state has ``_content`` (a dict or list of child nodes, None, or an
interpolation string) and ``_parent``; value nodes hold ``_val``. Values may be interpolations such
as ``${dataset}`` or ``ffhq_${dataset.resolution}_posed`` that are resolved against the root of
the tree, which the ``_parent`` links lead to (the whole experiment config is embedded).
omegaconf itself is neither needed nor imported. Custom resolvers (``${env:HOME}``,
``${oc.env:...}``) are never evaluated: such values stay as their literal text.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import EpigrafError
from .safe_pickle import InertObject, UnsafePickleError

_FULL = re.compile(r"^\$\{([^${}]*)\}$")
_INNER = re.compile(r"\$\{([^${}]*)\}")
_MISSING = "???"
# Budgets. A real experiment config has a few hundred nodes, nests ~8 deep and resolves strings of
# at most a few hundred characters; interpolations can still multiply work (``b: ${a}${a}``,
# ``c: ${b}${b}``... doubles at each step), so every resolution is bounded.
_MAX_DEPTH = 64  # nesting plus interpolation hops
MAX_RESOLVED_CHARS = 1 << 16  # one resolved string: 64 KiB (real values are paths and names)
MAX_RESOLVE_STEPS = 200_000  # node visits for one to_plain() call: ~500x a real config


class _Unresolved(Exception):
    pass


def _is_node(obj: Any) -> bool:
    return isinstance(obj, InertObject) and obj.qualname.startswith("omegaconf.")


def _node_state(node: InertObject) -> dict:
    return node.state_dict()


def _parent(node: Any) -> Any:
    return _node_state(node).get("_parent") if _is_node(node) else None


def _root(node: Any) -> Any:
    seen = 0
    while _parent(node) is not None:
        node = _parent(node)
        seen += 1
        if seen > 10_000:
            raise UnsafePickleError("the pickled config has a cycle in its parent links")
    return node


class _ConfigResolver:
    def __init__(self) -> None:
        self.steps = 0

    def plain(self, obj: Any, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise UnsafePickleError("the pickled config nests or interpolates too deeply (a cycle?)")
        self.steps += 1
        if self.steps > MAX_RESOLVE_STEPS:
            raise UnsafePickleError(
                f"the pickled config takes more than {MAX_RESOLVE_STEPS:,} steps to resolve "
                "(interpolations that multiply, or shared sub-trees)"
            )
        if _is_node(obj):
            state = _node_state(obj)
            if "_content" in state:
                content = state["_content"]
                if isinstance(content, str):
                    return self._value(content, obj, depth)
                if isinstance(content, dict):
                    return {self.plain(k, depth + 1): self.plain(v, depth + 1) for k, v in content.items()}
                if isinstance(content, (list, tuple)):
                    return [self.plain(v, depth + 1) for v in content]
                return content
            if "_val" in state:
                return self._value(state["_val"], obj, depth)
            return obj  # metadata and other helpers stay as they are
        if isinstance(obj, dict):
            return {self.plain(k, depth + 1): self.plain(v, depth + 1) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.plain(v, depth + 1) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.plain(v, depth + 1) for v in obj)
        return obj

    def _value(self, value: Any, node: Any, depth: int) -> Any:
        if not isinstance(value, str):
            return self.plain(value, depth + 1)
        if value == _MISSING:
            return None
        full = _FULL.match(value)
        if full:
            try:
                return self.plain(self._lookup(full.group(1), node, depth + 1), depth + 1)
            except _Unresolved:
                return value
        text, previous = value, None
        while text != previous:
            previous = text

            def substitute(match: re.Match[str]) -> str:
                try:
                    return str(self.plain(self._lookup(match.group(1), node, depth + 1), depth + 1))
                except _Unresolved:
                    return "\0{" + match.group(1) + "}"  # keep it, but stop re-matching it

            text = _INNER.sub(substitute, text)
            if len(text) > MAX_RESOLVED_CHARS:
                raise UnsafePickleError(
                    f"a value in the pickled config resolves to more than {MAX_RESOLVED_CHARS:,} characters "
                    "(self-multiplying ${...} interpolations?)"
                )
        return text.replace("\0{", "${")

    def _deref(self, node: Any, depth: int) -> Any:
        """Follow a node that is itself a whole-value interpolation (``dataset: ${dataset}``)."""
        for _ in range(_MAX_DEPTH):
            if not _is_node(node):
                return node
            state = _node_state(node)
            raw = state.get("_content", state.get("_val"))
            match = _FULL.match(raw) if isinstance(raw, str) else None
            if not match:
                return node
            node = self._lookup(match.group(1), node, depth + 1)
        raise UnsafePickleError("the pickled config interpolates too deeply (a cycle?)")

    def _lookup(self, path: str, node: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise UnsafePickleError("the pickled config interpolates too deeply (a cycle?)")
        path = path.strip()
        if not path or ":" in path:  # custom resolvers are never evaluated
            raise _Unresolved(path)
        dots = len(path) - len(path.lstrip("."))
        if dots:
            base = _parent(node)
            for _ in range(dots - 1):
                base = _parent(base)
            path = path[dots:]
        else:
            base = _root(node)
        keys = [k for k in re.sub(r"\[(\w+)\]", r".\1", path).split(".") if k]
        current = base
        for key in keys:
            current = self._deref(current, depth + 1)
            if not _is_node(current):
                raise _Unresolved(path)
            content = _node_state(current).get("_content")
            if isinstance(content, dict) and key in content:
                current = content[key]
            elif isinstance(content, (list, tuple)) and key.isdigit() and int(key) < len(content):
                current = content[int(key)]
            else:
                raise _Unresolved(path)
        return self._deref(current, depth + 1)


def to_plain(obj: Any) -> Any:
    """Recursively replace omegaconf holders by dicts/lists/values with interpolations resolved.

    Plain dicts (including ``EasyDict`` holders), lists and tuples are converted element-wise;
    tensors and other values are returned unchanged.
    """
    try:
        return _ConfigResolver().plain(obj)
    except (TypeError, ValueError, RecursionError) as exc:  # e.g. a key that resolves to an unhashable dict
        raise EpigrafError(f"the pickled config is malformed: {type(exc).__name__}: {exc}") from None


def config_root(node: Any) -> dict | None:
    """The whole experiment config that ``node`` (any pickled omegaconf node) belongs to, resolved."""
    if not _is_node(node):
        return None
    root = to_plain(_root(node))
    return root if isinstance(root, dict) else None
