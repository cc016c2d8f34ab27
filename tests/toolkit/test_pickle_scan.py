"""epigraf_tools/checkpoints/pickle_scan.py: the opcode pre-scan's statistics, and the budgets it enforces before
anything is unpickled (tiny hand-written opcode streams, so nothing large is ever allocated)."""

from __future__ import annotations

import pickle
import struct

import pytest

import epigraf_tools.checkpoints.pickle_scan as scan
from epigraf_tools.checkpoints.pickle_scan import MAX_MEMO_INDEX, MAX_NESTING, ScanStats, UnsafePickleError, scan_pickle
from epigraf_tools.errors import EpigrafError

PROTO4 = b"\x80\x04"


def test_stats_of_an_ordinary_pickle():
    data = pickle.dumps({"a": [1, (2, 3)], "b": "x"}, protocol=4)
    stats = scan_pickle(data)
    assert isinstance(stats, ScanStats)
    assert stats.end == len(data) and stats.max_depth == 3 and stats.opcodes > 10 and stats.max_memo_index >= 0


def test_a_second_pickle_in_the_same_buffer_is_scanned_from_start():
    first = pickle.dumps({"a": 1}, protocol=4)
    data = first + pickle.dumps([1], protocol=2)
    assert scan_pickle(data).end == len(first)
    assert scan_pickle(data, start=len(first)).end == len(data)


def test_the_refusal_is_a_user_error():
    assert issubclass(UnsafePickleError, EpigrafError)


@pytest.mark.parametrize(
    "data, message",
    [
        (pickle.dumps([1, 2], protocol=4)[:-1], "ends without a STOP opcode"),
        (b"\xff", r"unknown pickle opcode 0xff at byte 0"),
        (
            PROTO4 + b"\x8e" + struct.pack("<Q", 1 << 40) + b".",
            "claims 1,099,511,627,776 bytes but only 1 follow",
        ),  # BINBYTES8 claiming a terabyte
        (b"\x80\x02\x82\x01.", r"extension-registry codes \(EXT1\)"),
        (PROTO4 + b"N" + b"r" + struct.pack("<I", 2**31) + b".", f"exceeds the budget of {MAX_MEMO_INDEX:,}"),
        (PROTO4 + b"N" + b"\x85" * (MAX_NESTING + 10) + b".", f"deeper than {MAX_NESTING} levels"),
        (PROTO4 + b"h\x07.", "never stored"),  # BINGET of an empty memo
        (PROTO4 + b"q\x00.", "empty stack"),
        (PROTO4 + b"e.", "without a MARK"),
    ],
)
def test_hostile_opcode_streams_are_refused_by_name(data, message):
    with pytest.raises(UnsafePickleError, match=message):
        scan_pickle(data)


def test_nesting_just_within_the_budget_is_accepted():
    assert scan_pickle(PROTO4 + b"N" + b"\x85" * (MAX_NESTING - 1) + b".").max_depth <= MAX_NESTING


def test_opcode_and_mark_budgets(monkeypatch):
    data = pickle.dumps(list(range(3000)), protocol=4)
    assert scan_pickle(data).opcodes > 3000
    monkeypatch.setattr(scan, "MAX_OPCODES", 1000)
    with pytest.raises(UnsafePickleError, match="more than 1,000 opcodes"):
        scan_pickle(data)
    monkeypatch.setattr(scan, "MAX_OPCODES", 10**7)
    monkeypatch.setattr(scan, "MAX_MARK_ITEMS", 100)
    with pytest.raises(UnsafePickleError, match="collects 1,000 items"):
        scan_pickle(data)
