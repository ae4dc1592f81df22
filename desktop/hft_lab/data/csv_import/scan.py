"""Price file import (hft_lab.data.csv_import): full scan: size, encoding, field count of every line."""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass

import numpy as np

from .model import DELIMITERS, ENCODINGS, CsvImportError, CsvSniff, _human_bytes
from .opening import _open_binary, _read_chunks, _read_head

# ----------------------------------------------------------------------------------------------
# full scan: size, encoding, field count of every line
# ----------------------------------------------------------------------------------------------


@dataclass
class _Scan:
    encoding: str
    note: str
    data_lines: np.ndarray  # 1-based line numbers of the non-blank records after the header
    n_lines: int
    total_bytes: int


def _scan(sn: CsvSniff, encoding: str, forced_encoding: bool, max_bytes: int) -> _Scan:
    """One streaming pass over the (decompressed) bytes. Raises on size, NUL bytes, bad encoding,
    and the first line whose field count differs from the header's."""
    nl = 13 if _cr_only(sn) else 10
    delim = sn.delimiter.encode("ascii")[0] if ord(sn.delimiter) < 128 else None
    if delim is None:
        raise CsvImportError(f"delimiter {sn.delimiter!r} is not supported")
    ws = np.array([b for b in (32, 9, 13) if b != delim], dtype=np.uint8)
    skip = sn.header_line if sn.header else sn.header_line - 1  # lines before the first data line
    want = sn.n_fields
    note = ""
    total = 0
    utf16 = encoding == "utf-16"
    dec = (
        codecs.getincrementaldecoder("utf-16")()
        if utf16
        else (codecs.getincrementaldecoder("utf-8")() if encoding in ("utf-8", "utf-8-sig") else None)
    )
    has_quotes = False
    carry = b""
    line_base = 0  # physical lines completed before `carry`
    parts: list[np.ndarray] = []

    def lines_of(buf: bytes, final: bool) -> bytes:
        """Process the complete lines of buf (all of it when final); return the incomplete tail."""
        nonlocal line_base
        arr = np.frombuffer(buf, dtype=np.uint8)
        ends = np.flatnonzero(arr == nl)
        if final and (len(arr) == 0 or arr[-1] != nl):
            ends = np.append(ends, len(arr))
        if len(ends) == 0:
            return buf
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        if nl == 10:  # CRLF: the \r is not part of the last field
            pass
        dpos = np.flatnonzero(arr == delim)
        nfields = np.searchsorted(dpos, ends) - np.searchsorted(dpos, starts) + 1
        content = np.flatnonzero(~np.isin(arr, ws) & (arr != nl))
        nonblank = (np.searchsorted(content, ends) - np.searchsorted(content, starts)) > 0
        lineno = np.arange(line_base + 1, line_base + 1 + len(ends))
        use = nonblank & (lineno > skip)
        bad = np.flatnonzero(use & (nfields != want))
        if len(bad) and not has_quotes:
            k = bad[0]
            raw = buf[starts[k] : ends[k]].rstrip(b"\r")
            _ragged(int(lineno[k]), int(nfields[k]), want, sn, raw.endswith(bytes([delim])))
        parts.append(lineno[use])
        line_base += len(ends)
        return b"" if final else buf[ends[-1] + 1 :]

    try:
        for chunk in _read_chunks(sn.path, sn.compression):
            total += len(chunk)
            if total > max_bytes:
                raise CsvImportError(
                    f"the uncompressed text is larger than {_human_bytes(max_bytes)}: not loaded "
                    "(it would not fit in memory): split it, or keep fewer columns or rows"
                )
            if utf16:
                assert dec is not None  # the UTF-16 decoder is never dropped
                text = dec.decode(chunk)
                if total == len(chunk) and text.startswith("\ufeff"):
                    text = text[1:]
                chunk = text.encode("utf-8")
            else:
                if b"\x00" in chunk:
                    pos = chunk.find(b"\x00")
                    line = line_base + (carry + chunk[:pos]).count(bytes([nl])) + 1
                    raise CsvImportError("binary data (a NUL byte): not a text file", line)
                if dec is not None:
                    try:
                        dec.decode(chunk)
                    except UnicodeDecodeError as e:
                        line = line_base + (carry + chunk[: e.start]).count(bytes([nl])) + 1
                        if forced_encoding:
                            raise CsvImportError(
                                f"not valid {ENCODINGS[encoding]} ({e.reason}): choose Latin-1 as the encoding", line
                            ) from None
                        encoding, note, dec = "latin-1", f"not valid UTF-8 at line {line}", None
            if not has_quotes and b'"' in chunk:
                has_quotes = True
            carry = lines_of(carry + chunk, final=False)
        lines_of(carry, final=True)
    except UnicodeDecodeError as e:
        raise CsvImportError(f"not valid {ENCODINGS[encoding]} ({e.reason}): choose another encoding") from None
    if dec is not None and not utf16:
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CsvImportError("the file ends in the middle of a UTF-8 character", line_base) from None
    if has_quotes:  # quoted fields may hold delimiters or line breaks: count fields with the csv module
        data_lines = _scan_quoted(sn, encoding, skip)
    else:
        data_lines = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return _Scan(encoding, note, data_lines, line_base, total)


def _cr_only(sn: CsvSniff) -> bool:
    head, _ = _read_head(sn.path, sn.compression, 64 << 10)
    return b"\r" in head and b"\n" not in head


def _ragged(line: int, got: int, want: int, sn: CsvSniff, trailing_delim: bool) -> None:
    where = f"the header (line {sn.header_line})" if sn.header else f"line {sn.header_line}"
    extra = ""
    if got > want and trailing_delim:
        extra = f" (the line ends with an extra {DELIMITERS.get(sn.delimiter, sn.delimiter)})"
    elif got > want:
        extra = " (a value holding the delimiter must be quoted)"
    raise CsvImportError(f"{got} fields, but {where} has {want}{extra}", line)


def _text_stream(sn: CsvSniff, encoding: str):
    raw = _open_binary(sn.path, sn.compression)
    return io.TextIOWrapper(raw, encoding=encoding, newline="")


def _scan_quoted(sn: CsvSniff, encoding: str, skip: int) -> np.ndarray:
    out = []
    with _text_stream(sn, encoding) as f:
        reader = csv.reader(f, delimiter=sn.delimiter)
        prev = 0
        try:
            for row in reader:
                start = prev + 1
                prev = reader.line_num
                if start <= skip:
                    continue
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != sn.n_fields:
                    trailing = len(row) > sn.n_fields and row[-1] == ""
                    _ragged(start, len(row), sn.n_fields, sn, trailing)
                out.append(start)
        except csv.Error as e:
            raise CsvImportError(f"cannot split the line into fields: {e}", prev + 1) from None
    return np.asarray(out, dtype=np.int64)
