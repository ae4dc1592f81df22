"""Price file import (hft_lab.data.csv_import): opening."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Iterable
from pathlib import Path

from .model import CHUNK, SNIFF_BYTES, CsvImportError, _human_bytes

# ----------------------------------------------------------------------------------------------
# opening
# ----------------------------------------------------------------------------------------------

_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz"}
_NOT_CSV = {
    b"PK\x03\x04": "a ZIP archive (or an Excel .xlsx workbook)",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls workbook (or another OLE document)",
    b"PAR1": "a Parquet file",
    b"%PDF": "a PDF document",
    b"\x89HDF": "an HDF5 file",
    b"SQLite format 3": "an SQLite database",
}


def _check_file(path: Path, max_bytes: int) -> tuple[str | None, int]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CsvImportError(f"file not found: {path}") from None
    except OSError as e:
        raise CsvImportError(f"cannot open {path}: {e.strerror or e}") from None
    if path.is_dir():
        raise CsvImportError(f"{path} is a folder, not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(16)
    except OSError as e:
        raise CsvImportError(f"cannot read {path}: {e.strerror or e}") from None
    comp = next((c for m, c in _MAGIC.items() if magic.startswith(m)), None)
    for m, what in _NOT_CSV.items():
        if magic.startswith(m):
            raise CsvImportError(f"this is {what}, not a CSV text file: export or save it as CSV first")
    if comp is None and st.st_size > max_bytes:
        raise CsvImportError(
            f"the file is {_human_bytes(st.st_size)}; files above {_human_bytes(max_bytes)} are not loaded "
            "(they would not fit in memory): split it, or keep fewer columns or rows"
        )
    return comp, st.st_size


def _open_binary(path: Path, compression: str | None):
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "bz2":
        return bz2.open(path, "rb")
    if compression == "xz":
        return lzma.open(path, "rb")
    return open(path, "rb")


def _read_chunks(path: Path, compression: str | None, size: int = CHUNK) -> Iterable[bytes]:
    try:
        with _open_binary(path, compression) as f:
            while True:
                b = f.read(size)
                if not b:
                    return
                yield b
    except (EOFError, OSError, lzma.LZMAError, zlib.error) as e:
        what = f"{compression} data" if compression else "file"
        raise CsvImportError(f"cannot read the {what} (corrupt or truncated?): {e}") from None


def _read_head(path: Path, compression: str | None, n: int = SNIFF_BYTES) -> tuple[bytes, bool]:
    out = bytearray()
    for chunk in _read_chunks(path, compression, min(n, CHUNK)):
        out += chunk
        if len(out) > n:
            return bytes(out[:n]), False
    return bytes(out), True
