"""DirectRegionWriter: the bytes on disk are those given, whatever the pieces, the path taken or the failure."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from epigraf_tools import direct_write
from epigraf_tools.direct_write import ALIGN, DirectRegionWriter


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 4 pages and a low threshold, so a few hundred KB take the direct path."""
    monkeypatch.setattr(direct_write, "CHUNK", 4 * ALIGN)
    monkeypatch.setattr(direct_write, "MIN_DIRECT_BYTES", 2 * ALIGN)


def _region_file(tmp_path, offset: int, nbytes: int, header: bytes = b"H"):
    path = tmp_path / "out.bin"
    path.write_bytes(header * offset + b"\0" * nbytes)  # a new file of its final size, as mrcfile makes it
    return path


@pytest.mark.parametrize("offset", [1024, 0, 4096, 5000])
@pytest.mark.parametrize("nbytes", [200_003, 3 * 4 * ALIGN, 70_000])
def test_pieces_of_any_size_land_where_they_belong(tmp_path, small_chunks, offset, nbytes):
    rng = np.random.default_rng(offset + nbytes)
    data = rng.integers(0, 256, nbytes, dtype=np.uint8)
    path = _region_file(tmp_path, offset, nbytes)
    cuts = np.sort(rng.integers(0, nbytes, 7))
    with DirectRegionWriter(path, offset, nbytes) as writer:
        for piece in np.split(data, cuts):
            writer.write(piece)
        writer.finish()
    raw = path.read_bytes()
    assert len(raw) == offset + nbytes
    assert raw[:offset] == b"H" * offset  # the header before the region is untouched
    assert raw[offset:] == data.tobytes()


def test_a_512_cube_of_floats_is_written_with_o_direct_where_the_file_system_takes_it(tmp_path):
    nbytes = 64 * 1024 * 1024 + 4 * ALIGN  # above MIN_DIRECT_BYTES, with an unaligned head and tail
    path = _region_file(tmp_path, 1024, nbytes)
    slab = np.arange(nbytes // 4 // 64, dtype=np.float32)
    with DirectRegionWriter(path, 1024, nbytes) as writer:
        for k in range(64):
            writer.write(slab + k)
        writer.finish()
        direct = writer.direct
    got = np.fromfile(path, dtype=np.float32, offset=1024).reshape(64, -1)
    np.testing.assert_array_equal(got, slab[None] + np.arange(64, dtype=np.float32)[:, None])
    if hasattr(os, "O_DIRECT") and not direct:
        pytest.skip(f"{tmp_path} does not take O_DIRECT here (the page-cache path wrote the same bytes)")


def test_without_o_direct_the_page_cache_path_writes_the_same_bytes(tmp_path, small_chunks, monkeypatch):
    monkeypatch.setattr(direct_write, "_open_direct", lambda path: None)
    data = np.arange(50_000, dtype=np.uint8)
    path = _region_file(tmp_path, 1024, data.size)
    with DirectRegionWriter(path, 1024, data.size) as writer:
        assert not writer.direct
        writer.write(data)
        writer.finish()
    assert path.read_bytes()[1024:] == data.tobytes()


def test_a_device_that_refuses_the_alignment_falls_back_to_the_page_cache(tmp_path, small_chunks, monkeypatch):
    data = np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8)
    path = _region_file(tmp_path, 1024, data.size)
    real_pwrite, refused = os.pwrite, []

    def pwrite(fd, buf, offset):
        if fd == writer._direct:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, buf, offset)

    with DirectRegionWriter(path, 1024, data.size) as writer:
        if not writer.direct:
            pytest.skip("no O_DIRECT here: nothing to fall back from")
        monkeypatch.setattr(direct_write.os, "pwrite", pwrite)
        writer.write(data)
        writer.finish()
        assert not writer.direct
    assert len(refused) == 1 and path.read_bytes()[1024:] == data.tobytes()


def test_a_write_error_reaches_the_caller_and_the_descriptors_are_closed(tmp_path, small_chunks, monkeypatch):
    data = np.zeros(100_000, np.uint8)
    path = _region_file(tmp_path, 1024, data.size)
    real_pwrite = os.pwrite

    def full_disk(fd, buf, offset):
        if offset >= 2 * ALIGN:  # a chunk of the aligned region: on the helper thread
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, buf, offset)

    monkeypatch.setattr(direct_write.os, "pwrite", full_disk)
    writer = DirectRegionWriter(path, 1024, data.size)
    fds = [fd for fd in (writer._direct, writer._buffered) if fd is not None]
    with pytest.raises(OSError, match="No space left"), writer:
        writer.write(data)
        writer.finish()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)  # closed


def test_more_or_fewer_bytes_than_the_region_are_refused(tmp_path):
    path = _region_file(tmp_path, 16, 100)
    with DirectRegionWriter(path, 16, 100) as writer:
        writer.write(b"x" * 60)
        with pytest.raises(ValueError, match="60 of the region's 100 bytes"):
            writer.finish()
        with pytest.raises(ValueError, match="more than the 100 bytes"):
            writer.write(b"x" * 41)


def test_without_pwrite_the_seek_and_write_fallback_writes_the_same_bytes(tmp_path, small_chunks, monkeypatch):
    # Windows has no os.pwrite; the helper thread and the caller then share one seek position.
    monkeypatch.delattr(direct_write.os, "pwrite")
    monkeypatch.setattr(direct_write, "_open_direct", lambda path: None)
    data = np.random.default_rng(1).integers(0, 256, 300_001, dtype=np.uint8)
    path = _region_file(tmp_path, 1024, data.size)
    with DirectRegionWriter(path, 1024, data.size) as writer:
        for piece in np.array_split(data, 9):
            writer.write(piece)
        writer.finish()
    assert path.read_bytes()[1024:] == data.tobytes()
