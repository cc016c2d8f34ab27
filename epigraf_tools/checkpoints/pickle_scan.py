"""A pre-scan of a pickle's opcode stream that enforces budgets before anything is unpickled.

``pickle``'s C unpickler is fast but cannot be told to stop: a 9-byte file can ask it for a memo
of 2^31 slots (16 GiB of pointers), a ``BINBYTES8`` header can claim a terabyte, a few kilobytes of
nested ``TUPLE1`` can build structures deeper than any consumer can walk. This module parses the
opcodes (like :func:`pickletools.genops`, but it never reads a payload: lengths are checked against
what is left of the buffer and skipped) and simulates the stack abstractly (one small int per
object: how deeply it nests) to refuse such files up front. The real load then runs at C speed.

The nesting estimate follows the stack, not object identity: an object modified after it was
memoized can end up deeper than estimated. Consumers of unpickled data therefore keep their own
depth and size limits (see :mod:`.official_pickle`, :mod:`.omegaconf_state`).
"""

from __future__ import annotations

import mmap
import pickletools
from dataclasses import dataclass

from ..errors import EpigrafError

# Budgets. A real FFHQ-512 official snapshot (~400 MB: G, D, G_ema, Adam states, ~1500 tensors per
# network) has ~10^5 opcodes, ~5*10^4 memo entries and nests ~40 deep; the numbers below leave
# 50-100x headroom and stay far from a memory or CPU blow-up.
MAX_OPCODES = 20_000_000  # ~10 s of scanning at worst; 100x a real snapshot
MAX_MEMO_INDEX = 4_000_000  # the C unpickler's memo is an array: 4M slots = 32 MB of pointers
MAX_NESTING = 400  # real snapshots nest ~40 deep; Python's recursion limit is 1000
MAX_MARK_ITEMS = 1_000_000  # items in one MARK group (pickle batches appends/setitems by 1000)
MAX_LINE = 1 << 16  # text arguments (GLOBAL names, protocol-0 strings) end within 64 KiB


class UnsafePickleError(EpigrafError):
    """The pickle refers to something outside the allow-list, misuses an allowed one, or exceeds a budget."""


def _malformed(message: str) -> UnsafePickleError:
    return UnsafePickleError(f"not a readable pickle: {message}")


@dataclass
class ScanStats:
    """What a scan saw: useful to size the budgets (benchmarks print it)."""

    opcodes: int = 0
    max_memo_index: int = -1
    max_depth: int = 0
    end: int = 0  # offset just after STOP


def _op_table() -> dict[int, tuple]:
    """opcode byte -> (name, arg size or kind, items before mark, pops, pushes, modifies first)."""
    table: dict[int, tuple] = {}
    for op in pickletools.opcodes:
        before, after = op.stack_before, op.stack_after
        if pickletools.markobject in before:
            to_mark, pops = True, before.index(pickletools.markobject)
        else:
            to_mark, pops = False, len(before)
        in_place = op.name in ("APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD")
        arg = op.arg.n if op.arg is not None else 0
        table[op.code.encode("latin-1")[0]] = (op.name, arg, to_mark, pops, len(after), in_place)
    return table


_OPS = _op_table()
_LEN_BYTES = {
    pickletools.TAKEN_FROM_ARGUMENT1: 1,
    pickletools.TAKEN_FROM_ARGUMENT4: 4,
    pickletools.TAKEN_FROM_ARGUMENT4U: 4,
    pickletools.TAKEN_FROM_ARGUMENT8U: 8,
}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_REFUSED = {
    "EXT1": "extension-registry codes",
    "EXT2": "extension-registry codes",
    "EXT4": "extension-registry codes",
    "NEXT_BUFFER": "out-of-band buffers",
    "READONLY_BUFFER": "out-of-band buffers",
}


def scan_pickle(data: bytes | mmap.mmap, start: int = 0) -> ScanStats:
    """Check one pickle in ``data`` from ``start`` against the budgets; raise UnsafePickleError naming the first excess.

    Returns the statistics, with ``end`` just after the STOP opcode (a stream can hold more pickles).
    """
    size = len(data)
    pos = start
    stack: list[int] = []  # nesting depth of each stack item
    marks: list[int] = []  # stack lengths at each MARK
    memo: dict[int, int] = {}
    stats = ScanStats()
    ops = _OPS
    count = 0
    while True:
        if pos >= size:
            raise _malformed(f"the pickle ends without a STOP opcode (after {count} opcodes)")
        code = data[pos]
        entry = ops.get(code)
        if entry is None:
            raise _malformed(f"unknown pickle opcode {code:#04x} at byte {pos}")
        name, arg, to_mark, pops, pushes, in_place = entry
        count += 1
        if count > MAX_OPCODES:
            raise UnsafePickleError(f"the pickle has more than {MAX_OPCODES:,} opcodes (budget)")
        pos += 1
        value = None
        if arg == pickletools.UP_TO_NEWLINE:
            lines = 2 if name == "GLOBAL" else 1  # GLOBAL: module and name
            end = pos
            for _ in range(lines):
                nl = data.find(b"\n", end, end + MAX_LINE)
                if nl < 0:
                    raise _malformed(f"{name} at byte {pos - 1} has no line end within {MAX_LINE} bytes")
                end = nl + 1
            if name in _MEMO_PUT or name in _MEMO_GET:
                text = data[pos : end - 1]
                if not text.isdigit() or len(text) > 12:
                    raise _malformed(f"{name} at byte {pos - 1} has a bad memo index")
                value = int(text)
            pos = end
        elif arg in _LEN_BYTES:
            width = _LEN_BYTES[arg]
            if pos + width > size:
                raise _malformed(f"{name} at byte {pos - 1} is truncated")
            length = int.from_bytes(data[pos : pos + width], "little", signed=arg == pickletools.TAKEN_FROM_ARGUMENT4)
            pos += width
            if length < 0 or length > size - pos:
                raise _malformed(
                    f"{name} at byte {pos - width - 1} claims {length:,} bytes but only {size - pos:,} follow"
                )
            pos += length
        elif arg > 0:
            if pos + arg > size:
                raise UnsafePickleError(f"{name} at byte {pos - 1} is truncated")
            if name in _MEMO_PUT or name in _MEMO_GET:
                value = int.from_bytes(data[pos : pos + arg], "little")
            pos += arg
        if name in _REFUSED:
            raise UnsafePickleError(f"the pickle uses {_REFUSED[name]} ({name}), which official snapshots never do")
        # ---- the abstract stack
        if name == "MARK":
            marks.append(len(stack))
            continue
        if name == "STOP":
            if len(stack) != 1 or marks:
                raise _malformed("the pickle stops with a malformed stack")
            stats.opcodes, stats.end = count, pos
            return stats
        if name == "MEMOIZE" or name in _MEMO_PUT:
            index = len(memo) if name == "MEMOIZE" else value
            if index > MAX_MEMO_INDEX:
                raise UnsafePickleError(f"memo index {index:,} exceeds the budget of {MAX_MEMO_INDEX:,}")
            if not stack or (marks and marks[-1] == len(stack)):
                raise _malformed(f"{name} with an empty stack at byte {pos}")
            memo[index] = stack[-1]
            stats.max_memo_index = max(stats.max_memo_index, index)
            continue
        if name in _MEMO_GET:
            if value not in memo:
                raise _malformed(f"{name} of memo index {value} that was never stored")
            stack.append(memo[value])
            continue
        if name == "POP" and marks and marks[-1] == len(stack):  # POP of a bare mark
            marks.pop()
            continue
        popped: list[int] = []
        if to_mark:
            if not marks:
                raise _malformed(f"{name} without a MARK at byte {pos}")
            base = marks.pop()
            if len(stack) - base > MAX_MARK_ITEMS:
                raise UnsafePickleError(f"{name} collects {len(stack) - base:,} items (budget {MAX_MARK_ITEMS:,})")
            popped = stack[base:]
            del stack[base:]
        floor = marks[-1] if marks else 0
        if pops:
            if len(stack) - floor < pops:
                raise _malformed(f"{name} on a stack too short at byte {pos}")
            popped = stack[len(stack) - pops :] + popped
            del stack[len(stack) - pops :]
        if not pushes:
            continue
        if in_place:
            depth = max(popped[0], 1 + max(popped[1:], default=0))
        else:
            depth = 1 + max(popped) if popped else 0
        if depth > MAX_NESTING:
            raise UnsafePickleError(f"the pickle nests objects deeper than {MAX_NESTING} levels (budget)")
        if depth > stats.max_depth:
            stats.max_depth = depth
        stack.extend([depth] * pushes)
