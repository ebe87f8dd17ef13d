"""Vector files written as they are produced and read back in blocks: the `.npy` streams.

    NpyAppender(path, dtype, dim).append(block)… .close()  →  a 2-D `.npy` file
    NpyReader(path).read(lo, hi) / .blocks()               ←  row ranges of one

Invariants:
- A finished file is byte-identical to `np.save` of the same C-ordered (rows, dim) array: the
  appender reserves `NPY_HEADER` bytes, appends rows as they come (each block converted to the
  file's dtype and reshaped to `dim` columns) and writes the version 1.0 header, now knowing the
  row count, over the reserved bytes on `close`. A header of any other length is an error.
- Until `close` the reserved bytes are zeros, so an unfinished file is never a valid `.npy`
  (a build that dies leaves no file that reads as complete).
- Rows already appended can be read back before `close` (the writer copies a duplicate
  document's vectors that way); the buffer is flushed first.
- Reading uses `pread`, never mmap or a whole-file load, so memory is one block and the file's
  pages never count towards this process's RSS. `NpyReader` accepts only C-ordered 2-D arrays
  (version 1 or 2 headers) and raises `ValueError` when the file is shorter than its header
  says; `blocks()` yields `READ_ROWS` rows at a time, in order.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

NPY_HEADER = 128  # bytes; np.save's version 1.0 header for any 1- or 2-D shape we write
READ_ROWS = 8192  # rows per block when copying or indexing vectors


def _npy_header(dtype: np.dtype[Any], shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    out = buf.getvalue()
    if len(out) != NPY_HEADER:  # pragma: no cover - only for absurd shapes
        raise ValueError(f"unexpected .npy header length {len(out)}")
    return out


class NpyAppender:
    """An .npy file written row block by row block; the header is filled in on `close`."""

    def __init__(self, path: Path, dtype: Any, dim: int) -> None:
        self.path, self.dtype, self.dim, self.rows = path, np.dtype(dtype), dim, 0
        self._fh = open(path, "w+b")  # noqa: SIM115 - closed in close()
        self._fh.write(b"\0" * NPY_HEADER)

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype).reshape(-1, self.dim)
        self._fh.write(block.tobytes())
        self.rows += len(block)

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows already appended (a duplicate document copies them)."""
        self._fh.flush()
        n, row = max(0, hi - lo), self.dim * self.dtype.itemsize
        raw = os.pread(self._fh.fileno(), n * row, NPY_HEADER + lo * row)
        return np.frombuffer(raw, self.dtype).reshape(n, self.dim)

    def close(self) -> None:
        self._fh.seek(0)
        self._fh.write(_npy_header(self.dtype, (self.rows, self.dim)))
        self._fh.close()


class NpyReader:
    """Row ranges of a 2-D .npy file read with `pread`: no mmap, no whole-file load."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        with open(path, "rb") as fh:
            major, _minor = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if fortran or len(shape) != 2:
            raise ValueError(f"{path.name}: expected a C-ordered 2-D array")
        self.rows, self.dim = shape
        self.dtype = np.dtype(dtype)
        self.row_bytes = self.dim * self.dtype.itemsize

    def read(self, lo: int, hi: int) -> np.ndarray:
        n = max(0, hi - lo)
        raw = os.pread(self._fd, n * self.row_bytes, self.offset + lo * self.row_bytes)
        if len(raw) != n * self.row_bytes:
            raise ValueError("vector file shorter than its header says")
        return np.frombuffer(raw, self.dtype).reshape(n, self.dim)

    def blocks(self, step: int = READ_ROWS) -> Iterator[np.ndarray]:
        for lo in range(0, self.rows, step):
            yield self.read(lo, min(lo + step, self.rows))

    def close(self) -> None:
        os.close(self._fd)
