"""Stream a large region of a new file to disk beside the computation that produces it.

A 512^3 volume is 512 MB. Written through the page cache, every one of its 131,072 pages is
allocated, filled by a copy and later flushed, all on the writing thread: 0.2-1.8 s of system time
for 512 MB on this project's 2-core VM (where freshly allocated memory is slow), and replacing an
older file of that size frees its pages in another 0.25-0.33 s. With ``O_DIRECT`` the disk reads the
data from our own buffer instead: the same 512 MB took 0.34-0.41 s of *waiting*, not computing, and
a helper thread does the waiting while the density kernel fills the next slab. The page cache then
holds nothing of the file, so a later reader (ChimeraX) reads it from disk.

``O_DIRECT`` needs every transfer's memory, file offset and length aligned to the device's block
size. Bytes before the first ``ALIGN`` boundary and from the last page of the file on are therefore
written through the page cache, as is everything when the platform or file system does not take
``O_DIRECT`` (macOS, Windows, some network and in-memory file systems): the bytes on disk are the
same either way.
"""

from __future__ import annotations

import errno
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

import numpy as np

ALIGN = 4096  # a multiple of every common logical block size (512 and 4096 bytes)
CHUNK = 16 << 20  # bytes per direct write; two such staging buffers are in flight at most
MIN_DIRECT_BYTES = 64 << 20  # below this the page cache is cheap enough and a thread is not worth it


_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_SEEK_LOCK = threading.Lock()  # without pwrite (Windows) a seek and its write must not interleave


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    if not hasattr(os, "pwrite"):
        with _SEEK_LOCK:
            os.lseek(fd, offset, os.SEEK_SET)
            while data:
                data = data[os.write(fd, data) :]
        return
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


class DirectRegionWriter:
    """Writes ``nbytes`` consecutive bytes of an existing file from ``offset`` on, fed in any pieces.

    ``write(buffer)`` copies the next bytes into one of two aligned staging buffers; a full one goes
    to a helper thread, which writes it with ``O_DIRECT`` while the caller goes on. ``finish()``
    waits for the last transfer and writes the unaligned tail; an error of the helper thread
    (a full disk, say) is raised in the caller at the next ``write`` or at ``finish``. Use as a
    context manager: on leaving, by error or interrupt, it waits for the transfer in flight (a few
    milliseconds) and closes its file descriptors, so nothing writes to the file afterwards.
    """

    def __init__(self, path: str | os.PathLike[str], offset: int, nbytes: int) -> None:
        self.path, self.offset, self.nbytes = os.fspath(path), int(offset), int(nbytes)
        self.written = 0  # bytes received so far
        end = self.offset + self.nbytes
        self._start = -(-self.offset // ALIGN) * ALIGN  # the aligned region [start, stop)
        self._stop = max(self._start, ((end - 1) // ALIGN) * ALIGN)  # never the file's last page
        self._buffered = os.open(self.path, os.O_WRONLY | _BINARY)
        self._direct = _open_direct(self.path) if self._stop - self._start >= MIN_DIRECT_BYTES else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epigraf-direct-write")
        self._staging = [_aligned_buffer(CHUNK), _aligned_buffer(CHUNK)]
        self._pending: list[Future | None] = [None, None]
        self._current, self._filled = 0, 0  # staging buffer being filled, and its bytes so far
        self._chunk_offset = self._start  # file offset of the current staging buffer

    @property
    def direct(self) -> bool:
        """Whether the aligned region goes out with O_DIRECT (False: through the page cache)."""
        return self._direct is not None

    def write(self, data: np.ndarray | bytes | memoryview) -> None:
        """Append the bytes of ``data`` (a C-contiguous array, or bytes)."""
        view = memoryview(np.ascontiguousarray(data) if isinstance(data, np.ndarray) else data).cast("B")
        if self.written + len(view) > self.nbytes:
            raise ValueError(f"{self.path}: more than the {self.nbytes} bytes of the region")
        while view:
            position = self.offset + self.written
            if position < self._start or position >= self._stop:  # the unaligned head, or the tail
                limit = self._start if position < self._start else self.offset + self.nbytes
                n = min(len(view), limit - position)
                _write_all(self._buffered, view[:n], position)
            else:
                n = min(len(view), CHUNK - self._filled, self._stop - position)
                self._staging[self._current][self._filled : self._filled + n] = np.frombuffer(view[:n], np.uint8)
                self._filled += n
                if self._filled == CHUNK or position + n == self._stop:
                    self._submit()
            view, self.written = view[n:], self.written + n

    def finish(self) -> None:
        """Wait until every byte is written; raises the helper thread's error, if any."""
        if self.written != self.nbytes:
            raise ValueError(f"{self.path}: {self.written} of the region's {self.nbytes} bytes were written")
        for n, future in enumerate(self._pending):
            if future is not None:
                self._pending[n] = None
                future.result()

    def close(self) -> None:
        """Stop: wait for the transfer in flight (its error is dropped here) and release everything."""
        for future in self._pending:
            if future is not None:
                future.exception()
        self._pool.shutdown(wait=True)
        for fd in (self._direct, self._buffered):
            if fd is not None:
                os.close(fd)
        self._direct = None

    def __enter__(self) -> DirectRegionWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _submit(self) -> None:
        n, size, offset = self._current, self._filled, self._chunk_offset
        self._pending[n] = self._pool.submit(self._transfer, memoryview(self._staging[n][:size]), offset)
        self._chunk_offset += size
        self._current, self._filled = 1 - n, 0
        previous = self._pending[self._current]  # the other buffer: free once its transfer is done
        if previous is not None:
            self._pending[self._current] = None
            previous.result()

    def _transfer(self, data: memoryview, offset: int) -> None:
        """Runs on the helper thread: one aligned chunk, direct when possible."""
        fd = self._direct if self._direct is not None else self._buffered
        try:
            _write_all(fd, data, offset)
        except OSError as exc:
            if exc.errno != errno.EINVAL or fd == self._buffered:
                raise
            # the device wants a larger alignment than ALIGN: the rest goes through the page cache
            self._direct = None
            os.close(fd)
            _write_all(self._buffered, data, offset)


def _aligned_buffer(nbytes: int) -> np.ndarray:
    """``nbytes`` of memory starting at an ALIGN boundary, as O_DIRECT transfers need."""
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + nbytes]


def _open_direct(path: str) -> int | None:
    """A second descriptor of ``path`` for O_DIRECT writes, or None where that is not available."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | flag)
    except OSError:  # EINVAL: a file system without direct I/O (older tmpfs, some FUSE and network ones)
        return None


__all__ = ["ALIGN", "CHUNK", "MIN_DIRECT_BYTES", "DirectRegionWriter"]
