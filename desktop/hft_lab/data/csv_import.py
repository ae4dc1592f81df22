"""Reading price files (CSV, gzip/bz2/xz CSV) into a `Dataset`, with clear errors.

No Qt here: the import dialog (ui/import_dialog.py) and the tests call this module directly.

Two steps:

* `sniff(path)` reads only the head of the file (1 MiB) and guesses how to read it: compression
  (by magic bytes), encoding (UTF-8, UTF-8 with BOM, UTF-16 with BOM, else Latin-1), delimiter
  (comma, semicolon, tab, pipe), the header row (lines above it, e.g. a title, are skipped), the
  decimal separator, the date column and its format candidates (ISO, US, EU, ...), and the layout:
  *wide* (a date column and one column per ticker) or *long* (date, ticker, price; the price column
  is Adj Close when there is one, else Close, Price, ...).
* `load_prices(path, ...)` reads the whole file with those guesses (each can be overridden) and
  returns `ImportResult(dataset, report)`. It streams once over the bytes (size limit, encoding,
  field count of every line, so a ragged row is reported with its line number), then lets pandas'
  C parser read the values, then checks them: every problem is a `CsvImportError` whose message
  starts with the 1-based line number as a text editor shows it, e.g.
  "line 17: 'abc' in column 'MSFT' is not a number".

Decisions (documented for the user in the report lines):
* US vs EU: a date like 03/04/2020 fits both. When every date of the file fits both (all days
  <= 12), `load_prices` raises `AmbiguousDateError` and the caller must pass date_format="US" or
  "EU". Dates with dots (31.12.2020) are EU only; year-first dates are ISO.
* Unsorted dates are sorted (stable); duplicate dates keep the last row in file order (long
  layout: per ticker); missing cells (empty, NA, N/A, NaN, null, #N/A, -, ...) are reported per
  column with their first line, then handled by `nan_policy`: "drop" (drop every row with a
  missing value) or "ffill" (carry the last price forward; rows before every column has started
  are dropped and the report says so). A column without any value is dropped (and reported).
* Time zones (ISO dates with an offset) are converted to UTC and made naive.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import datetime as _dt
import gzip
import io
import lzma
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from .samples import Dataset

MAX_BYTES = 2 * 1024**3  # uncompressed text above this is refused (pandas would need ~that much RAM)
SNIFF_BYTES = 1 << 20
PREVIEW_ROWS = 50
CHUNK = 4 << 20
READ_CHUNK_ROWS = 50_000
SNIFF_ROWS = 5000  # rows of the head used for guesses (date format, column kinds)

DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
ENCODINGS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16 (with BOM)",
    "latin-1": "Latin-1 (ISO-8859-1)",
}
LAYOUTS = ("wide", "long", "ohlcv")
BAD_CELLS = {"error": "stop at the first unparseable cell", "missing": "treat unparseable cells as missing"}
NAN_POLICIES = {"drop": "drop rows with a missing value", "ffill": "forward-fill (carry the last price)"}
NA_TOKENS = [
    "",
    "NA",
    "N/A",
    "n/a",
    "na",
    "NaN",
    "nan",
    "NAN",
    "-nan",
    "null",
    "NULL",
    "Null",
    "None",
    "none",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "<NA>",
    "NaT",
    "-",
    "--",
    ".",
]
_NA_SET = frozenset(NA_TOKENS)

DATE_FORMATS = {
    "ISO": "ISO (YYYY-MM-DD[ hh:mm:ss])",
    "US": "US (MM/DD/YYYY)",
    "EU": "EU (DD/MM/YYYY or DD.MM.YYYY)",
    "YMD": "compact YYYYMMDD",
    "MON": "month names (02-Jan-2020, Jan 2, 2020)",
    "unix-s": "Unix time in seconds",
    "unix-ms": "Unix time in milliseconds",
    "unix-us": "Unix time in microseconds",
    "unix-ns": "Unix time in nanoseconds",
}

_DATE_NAMES = {
    "date",
    "dates",
    "datetime",
    "time",
    "timestamp",
    "ts",
    "day",
    "dt",
    "tradedate",
    "tradingday",
    "asof",
    "asofdate",
    "period",
    "index",
    "localtime",
    "utctime",
    "bar",
}
_TICKER_NAMES = {
    "ticker",
    "tickers",
    "symbol",
    "symbols",
    "sym",
    "asset",
    "assets",
    "name",
    "code",
    "instrument",
    "security",
    "stock",
    "secid",
    "ric",
    "isin",
    "permno",
    "cusip",
    "id",
    "tic",
    "contract",
    "pair",
}
_ID_NAMES = {"permno", "secid", "id", "cusip"}  # ticker columns that may hold numbers
# price columns of a long file, most preferred first (names compared without case, spaces, _ . -)
# fields of an OHLCV file (Yahoo Finance, brokers, Stooq, Nasdaq ...), by normalised column name
_FIELD_NAMES = {
    "adjclose": {
        "adjclose",
        "adjustedclose",
        "adjclosingprice",
        "adjustedcloseprice",
        "adjcloseprice",
        "adjprice",
        "adjustedclosingprice",
        "adjustedprice",
    },
    "close": {
        "close",
        "closeprice",
        "closingprice",
        "closelast",
        "last",
        "lastprice",
        "pxlast",
        "settle",
        "settlement",
        "settlementprice",
        "price",
    },
    "open": {"open", "openprice", "opening", "openingprice", "pxopen"},
    "high": {"high", "highprice", "hi", "dayhigh", "pxhigh"},
    "low": {"low", "lowprice", "lo", "daylow", "pxlow"},
    "vwap": {"vwap", "averageprice", "avgprice", "typicalprice", "midprice", "mid"},
}
# columns of an OHLCV file that are not prices (never loaded as a price unless the user asks)
_NONPRICE_NAMES = {
    "volume",
    "vol",
    "volumes",
    "totalvolume",
    "qty",
    "quantity",
    "turnover",
    "amount",
    "notional",
    "openinterest",
    "oi",
    "trades",
    "numtrades",
    "numberoftrades",
    "tradecount",
    "count",
    "transactions",
    "dividends",
    "dividend",
    "dividendamount",
    "stocksplits",
    "splits",
    "split",
    "splitfactor",
    "splitcoefficient",
    "splitratio",
    "capitalgains",
    "change",
    "changepercent",
    "pctchange",
    "changepct",
    "percentchange",
    "marketcap",
    "sharesoutstanding",
}
FIELD_LABELS = {
    "adjclose": "adjusted close",
    "close": "close",
    "open": "open",
    "high": "high",
    "low": "low",
    "vwap": "average price",
    "volume": "not a price",
}
_PRICE_NAMES = [
    "adjclose",
    "adjustedclose",
    "adjclosingprice",
    "adjustedcloseprice",
    "adjcloseprice",
    "adjprice",
    "close",
    "closeprice",
    "closingprice",
    "last",
    "lastprice",
    "pxlast",
    "settle",
    "settlement",
    "price",
    "value",
    "mid",
    "midprice",
    "vwap",
]


class CsvImportError(ValueError):
    """A file that cannot be read as prices. `line` is 1-based as in a text editor (None when the
    problem is not on one line); str(e) is "line 17: <problem>" or just "<problem>" (prefixed with
    the file name, "MSFT.csv: line 17: ...", when several files are loaded together: `file`).

    (A ValueError, not a subclass of Python's ImportError, which means a failed module import and
    is caught by `except ImportError` around optional imports.)"""

    def __init__(self, message: str, line: int | None = None):
        self.problem = message
        self.line = line
        self.file: str | None = None
        super().__init__(f"line {line}: {message}" if line is not None else message)

    def in_file(self, name: str) -> CsvImportError:
        """Name the file in the message (several files loaded together); returns self."""
        if self.file is None:
            self.file = name
            self.args = (f"{name}: {self.args[0]}",)
        return self

    @property
    def message(self) -> str:
        return str(self)


class AmbiguousDateError(CsvImportError):
    """Every date fits both US (MM/DD) and EU (DD/MM): the caller must choose date_format."""

    def __init__(self, message: str, candidates: tuple[str, ...] = ("US", "EU"), example: str = ""):
        super().__init__(message)
        self.candidates = candidates
        self.example = example


class BadCellError(CsvImportError):
    """A cell that is neither a number nor a missing-value marker (e.g. '#VALUE!'). The message names
    the first one in file order; `count` is how many such cells the loaded columns hold (in all the
    files loaded together), `cells` the first few as (file line or None, column, text). Pass
    bad_cells="missing" to load_prices to treat them as missing values."""

    def __init__(self, message: str, line: int | None, count: int, cells: list[tuple[int | None, str, str]]):
        super().__init__(message, line)
        self.count = count
        self.cells = cells
        self.files: list[str] | None = None  # the files that hold bad cells (several loaded together)


@dataclass
class CsvSniff:
    """What the head of a file says about how to read it (every field can be overridden)."""

    path: Path
    compression: str | None  # "gzip", "bz2", "xz" or None
    size_bytes: int  # on disk
    encoding: str  # a key of ENCODINGS
    encoding_note: str
    delimiter: str
    decimal: str
    header: bool
    header_line: int  # 1-based line of the header (or of the first data row when there is none)
    skipped_lines: int  # lines above the header (titles, notes)
    n_fields: int
    columns: list[str]
    layout: str  # "wide" or "long"
    date_column: str | None
    ticker_column: str | None
    price_column: str | None  # long layout: the (first) default price column
    date_formats: list[str]  # candidate formats of the date column (keys of DATE_FORMATS)
    preview: pd.DataFrame  # first PREVIEW_ROWS data rows, raw strings
    preview_lines: list[int] = field(default_factory=list)  # their 1-based lines in the file
    column_kinds: dict[str, str] = field(default_factory=dict)  # "number", "date", "text", "empty"
    notes: list[str] = field(default_factory=list)
    head_is_whole_file: bool = False
    fields: dict[str, str] = field(default_factory=dict)  # column -> OHLCV field (keys of FIELD_LABELS)
    price_columns: list[str] = field(default_factory=list)  # the columns loaded by default
    value_columns: list[str] = field(default_factory=list)  # the columns that can be chosen as prices
    asset_name: str = ""  # OHLCV layout: the asset's name (from the file name)

    @property
    def nonprice_columns(self) -> list[str]:
        return [c for c in self.value_columns if self.fields.get(c) == "volume"]

    @property
    def ambiguous_date(self) -> bool:
        return "US" in self.date_formats and "EU" in self.date_formats

    @property
    def date_format(self) -> str | None:
        """The format to use, or None when there is none or the user must choose (ambiguous)."""
        if not self.date_formats or self.ambiguous_date:
            return None
        return self.date_formats[0]

    def describe(self) -> list[str]:
        comp = f"{self.compression}-compressed, " if self.compression else ""
        lines = [
            f"File: {self.path.name} ({comp}{_human_bytes(self.size_bytes)})",
            f"Encoding: {ENCODINGS.get(self.encoding, self.encoding)}"
            + (f" ({self.encoding_note})" if self.encoding_note else ""),
            f"Delimiter: {DELIMITERS.get(self.delimiter, repr(self.delimiter))}"
            + (", decimal comma" if self.decimal == "," else ""),
            (f"Header on line {self.header_line}" if self.header else f"No header row (data from line {self.header_line})")
            + (f"; {self.skipped_lines} line(s) above it skipped" if self.skipped_lines else ""),
        ]
        if self.layout == "long":
            lines.append(f"Layout: long (ticker column '{self.ticker_column}', prices from '{self.price_column}')")
        elif self.layout == "ohlcv":
            got = ", ".join(self.value_columns)
            lines.append(
                f"Layout: one instrument, OHLCV columns ({got}); asset '{self.asset_name}'"
                + (f", price from '{self.price_columns[0]}'" if len(self.price_columns) == 1 else "")
            )
        else:
            n = len(self.columns) - (1 if self.date_column else 0)
            lines.append(f"Layout: wide ({n} price column(s))")
        if self.date_column is None:
            lines.append("Dates: no date column found")
        elif self.ambiguous_date:
            lines.append(f"Dates: column '{self.date_column}', US (MM/DD) or EU (DD/MM)? every date fits both: choose")
        elif self.date_formats:
            lines.append(f"Dates: column '{self.date_column}', {DATE_FORMATS.get(self.date_formats[0], self.date_formats[0])}")
        else:
            lines.append(f"Dates: column '{self.date_column}', format not recognised")
        return lines + list(self.notes)


@dataclass
class ImportResult:
    dataset: Dataset
    report: list[str]
    sniff: CsvSniff | None = None
    layout: str = ""
    date_format: str = ""
    encoding: str = ""
    nan_policy: str = ""


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


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


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


# ----------------------------------------------------------------------------------------------
# encoding
# ----------------------------------------------------------------------------------------------


def _bom_encoding(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF32_LE) or head.startswith(codecs.BOM_UTF32_BE):
        raise CsvImportError("the file is UTF-32 (binary data with NUL bytes), not supported: save it as UTF-8")
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    return None


def _normalise_encoding(enc: str) -> str:
    e = enc.lower().replace("_", "-").strip()
    aliases = {
        "utf8": "utf-8",
        "utf-8-bom": "utf-8-sig",
        "utf8-sig": "utf-8-sig",
        "latin1": "latin-1",
        "iso-8859-1": "latin-1",
        "iso8859-1": "latin-1",
        "l1": "latin-1",
        "utf16": "utf-16",
    }
    e = aliases.get(e, e)
    if e not in ENCODINGS:
        raise CsvImportError(f"unsupported encoding {enc!r}: use one of {', '.join(ENCODINGS)}")
    return e


def _decode_head(head: bytes, whole: bool, encoding: str | None) -> tuple[str, str, str]:
    """(text, encoding, note). text is cut at the last line break when the head is not the file."""
    bom = _bom_encoding(head)
    if encoding is None:
        if bom:
            encoding = bom
        else:
            nul = head.find(b"\x00")
            if nul >= 0:
                line = head.count(b"\n", 0, nul) + 1
                raise CsvImportError(
                    "binary data (NUL bytes): not a text file in a supported encoding (UTF-8, UTF-16 with a "
                    "byte-order mark, Latin-1); if it is UTF-16 or UTF-32 without a BOM, save it as UTF-8",
                    line,
                )
            encoding = "utf-8"
    else:
        encoding = _normalise_encoding(encoding)
    note = ""
    dec = codecs.getincrementaldecoder(encoding)()
    try:
        text = dec.decode(head, final=whole)
    except UnicodeDecodeError as e:
        line = head.count(b"\n", 0, e.start) + 1
        if encoding == "utf-8" and bom is None:
            text = head.decode("latin-1")
            encoding, note = "latin-1", f"not valid UTF-8 at line {line}"
        else:
            raise CsvImportError(
                f"not valid {ENCODINGS.get(encoding, encoding)} ({e.reason}): choose another encoding", line
            ) from None
    if encoding == "utf-8" and text.startswith("\ufeff"):
        text, encoding = text[1:], "utf-8-sig"
    elif encoding in ("utf-8-sig", "utf-16") and text.startswith("\ufeff"):
        text = text[1:]
    if not whole:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut > 0:
            text = text[: cut + 1]
    return text, encoding, note


# ----------------------------------------------------------------------------------------------
# cell classification (head only, pure Python)
# ----------------------------------------------------------------------------------------------

_NUM_DOT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_NUM_COMMA = re.compile(r"^[+-]?(\d+(,\d*)?|,\d+)([eE][+-]?\d+)?$")
_SPECIAL_NUM = {"inf", "+inf", "-inf", "infinity", "-infinity"}
_ISO_RE = re.compile(
    r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_DMY_RE = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?$")
_YMD_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_MON_FORMATS = ["%d-%b-%Y", "%d %b %Y", "%b %d, %Y", "%b %d %Y", "%d-%b-%y", "%d %B %Y", "%B %d, %Y", "%Y-%b-%d", "%d/%b/%Y"]
_INT_RE = re.compile(r"^\d{9,19}$")


def _is_number(s: str, decimal: str = ".") -> bool:
    s = s.strip()
    if s.lower() in _SPECIAL_NUM:
        return True
    if (_NUM_COMMA if decimal == "," else _NUM_DOT).match(s):
        return True
    return bool(s) and s[0] in "$€£¥+-" + "0123456789" and _plain_number(s, decimal) is not None


def _strip_currency(t: str) -> str:
    m = _CURRENCY_RE.match(t)
    return m[1] + m[2].strip() if m else t


def _valid_date(y: int, m: int, d: int) -> bool:
    try:
        _dt.date(y, m, d)
        return True
    except ValueError:
        return False


def _date_families(s: str) -> set[str]:
    """Which date formats can read the string s."""
    s = s.strip()
    out: set[str] = set()
    m = _ISO_RE.match(s)
    if m:
        if _valid_date(int(m[1]), int(m[2]), int(m[3])):
            out.add("ISO")
        return out
    m = _DMY_RE.match(s)
    if m:
        a, sep, b, y = int(m[1]), m[2], int(m[3]), int(m[4])
        if len(m[4]) == 2:
            y += 2000 if y < 69 else 1900
        if sep != "." and _valid_date(y, a, b):
            out.add("US")
        if _valid_date(y, b, a):
            out.add("EU")
        return out
    m = _YMD_RE.match(s)
    if m:
        y = int(m[1])
        if 1800 <= y <= 2200 and _valid_date(y, int(m[2]), int(m[3])):
            out.add("YMD")
        return out
    if any(c.isalpha() for c in s) and len(s) <= 40:
        for f in _MON_FORMATS:
            try:
                _dt.datetime.strptime(s, f)
                out.add("MON")
                break
            except ValueError:
                continue
    return out


def _epoch_family(values: list[str]) -> str | None:
    if not values or not all(_INT_RE.match(v.strip()) for v in values):
        return None
    x = int(values[0].strip())
    for unit, lo in (("s", 1e8), ("ms", 1e11), ("us", 1e14), ("ns", 1e17)):
        if lo <= x < lo * 1000:
            return f"unix-{unit}"
    return None


def _column_date_formats(values: list[str], name: str = "") -> list[str]:
    """Formats that read every non-empty value, best first; US and EU both listed when ambiguous."""
    vals = [v for v in values if v.strip() not in _NA_SET]
    if not vals:
        return []
    order = ["ISO", "YMD", "US", "EU", "MON"]
    counts: Counter = Counter()
    for v in vals:
        counts.update(_date_families(v))
    full = [f for f in order if counts[f] == len(vals)]
    if full:
        return full
    # a few bad dates (e.g. 2020-02-30): still that format; loading names the first bad line
    for fam, rx in (("ISO", _ISO_RE), ("YMD", _YMD_RE)):
        if counts[fam] and all(rx.match(v.strip()) for v in vals):
            return [fam]
    best = max(counts.values(), default=0)
    if best >= 0.9 * len(vals) and best >= 2:
        return [f for f in order if counts[f] == best]
    if _norm(name) in _DATE_NAMES or "date" in _norm(name) or "time" in _norm(name):
        e = _epoch_family(vals)
        if e:
            return [e]
    return []


def _cell_kind(s: str, decimal: str) -> str:
    t = s.strip()
    if t in _NA_SET:
        return "empty"
    if _is_number(t, decimal):
        return "number"
    if _date_families(t):
        return "date"
    return "text"


def _column_kind(values: list[str], decimal: str) -> str:
    kinds = Counter(_cell_kind(v, decimal) for v in values)
    kinds.pop("empty", None)
    if not kinds:
        return "empty"
    kind, n = kinds.most_common(1)[0]
    return kind


def _norm(name: object) -> str:
    return re.sub(r"[\s_.\-/()]+", "", str(name)).lower()


def column_fields(names: Iterable[str]) -> dict[str, str]:
    """The OHLCV field of each column that has a known one: "adjclose", "close", "open", "high",
    "low", "vwap" (prices) or "volume" (not a price: volume, open interest, dividends, splits ...).
    Single letters (o, h, l, c, v) count only when o, h, l and c are all there (C, V, O, L, H are
    also tickers)."""
    names = list(names)
    normed = {n: _norm(n) for n in names}
    letters = {"o", "h", "l", "c"} <= set(normed.values())
    single = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
    out: dict[str, str] = {}
    for n, k in normed.items():
        if letters and k in single:
            out[n] = single[k]
            continue
        for f, vocab in _FIELD_NAMES.items():
            if k in vocab:
                out[n] = f
                break
        else:
            if k in _NONPRICE_NAMES or "volume" in k:
                out[n] = "volume"
    return out


def asset_from_filename(path: str | os.PathLike) -> str:
    """AAPL.csv -> AAPL, "MSFT (1).csv.gz" -> MSFT (a browser's duplicate-download suffix dropped)."""
    n = default_name(Path(path))
    n = re.sub(r"\s*\(\d+\)$", "", n).strip()
    return n or Path(path).name


def _default_ohlcv_prices(cols: list[str], fields: dict[str, str]) -> list[str]:
    for want in ("adjclose", "close"):
        hit = [c for c in cols if fields.get(c) == want]
        if hit:
            return hit[:1]
    return []


# ----------------------------------------------------------------------------------------------
# sniffing
# ----------------------------------------------------------------------------------------------


def _records(text: str, delimiter: str, limit: int | None = None) -> list[tuple[int, list[str]]]:
    """(1-based first line, fields) of each non-blank record of text."""
    out = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    prev = 0
    try:
        for row in reader:
            start = prev + 1
            prev = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            out.append((start, row))
            if limit is not None and len(out) >= limit:
                break
    except csv.Error as e:
        raise CsvImportError(f"cannot split the line into fields: {e}", prev + 1) from None
    return out


def _first_lines(text: str, n: int) -> str:
    """At most about n characters of text, cut after a line break."""
    if len(text) <= n:
        return text
    cut = max(text.rfind("\n", 0, n), text.rfind("\r", 0, n))
    return text[: cut + 1] if cut > 0 else text


def _choose_delimiter(text: str) -> tuple[str, int]:
    best = None
    for d in DELIMITERS:
        recs = _records(text, d, limit=300)
        if not recs:
            continue
        counts = Counter(len(r) for _, r in recs)
        mode, n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        if mode < 2:
            continue
        score = (n / len(recs), mode)
        if best is None or score > best[0]:
            best = (score, d, mode)
    if best is None:
        raise CsvImportError(
            "only one column found: no comma, semicolon, tab or pipe separates the fields "
            "(a date column and at least one price column are needed)"
        )
    return best[1], best[2]


def _dedupe(names: list[str]) -> tuple[list[str], list[str]]:
    out: list[str] = []
    notes: list[str] = []
    seen: Counter[str] = Counter()
    for j, n in enumerate(names):
        n = n.strip()
        if not n:
            n = f"col{j + 1}"
            notes.append(f"column {j + 1} has no name in the header: called '{n}'")
        seen[n] += 1
        if seen[n] > 1:
            new = f"{n}.{seen[n]}"
            notes.append(f"column name '{n}' appears more than once: column {j + 1} called '{new}'")
            n = new
        out.append(n)
    return out, notes


def sniff(
    path: str | os.PathLike,
    *,
    delimiter: str | None = None,
    encoding: str | None = None,
    header: bool | None = None,
    decimal: str | None = None,
    date_column: str | int | None = None,
    max_bytes: int = MAX_BYTES,
) -> CsvSniff:
    """Guess how to read the file from its first MiB. Raises CsvImportError when it cannot be a
    price CSV at all (empty, binary, one column, ...). date_column: use this column for the dates
    (its format candidates are then computed from it)."""
    path = Path(path)
    compression, size = _check_file(path, max_bytes)
    head, whole = _read_head(path, compression)
    if not head.strip(b" \t\r\n\x00") or head in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise CsvImportError("the file is empty")
    text, enc, enc_note = _decode_head(head, whole, encoding)
    if not text.strip():
        raise CsvImportError("the file is empty")
    notes: list[str] = []
    small = _first_lines(text, 64 << 10)
    if delimiter is None:
        delimiter, n_fields = _choose_delimiter(small)
    else:
        if delimiter.lower() in ("tab", "\\t"):
            delimiter = "\t"
        if len(delimiter) != 1:
            raise CsvImportError(f"the delimiter must be one character, got {delimiter!r}")
        counts = Counter(len(r) for _, r in _records(small, delimiter, limit=300))
        n_fields = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
        if n_fields < 2:
            raise CsvImportError(f"with {DELIMITERS.get(delimiter, repr(delimiter))} as delimiter every line has one field")
    recs = _records(_first_lines(text, 512 << 10), delimiter, limit=SNIFF_ROWS)
    first = next(i for i, (_, r) in enumerate(recs) if len(r) == n_fields)
    top_line = recs[first][0]
    skipped = top_line - 1
    good = [(ln, r) for ln, r in recs[first:] if len(r) == n_fields]
    rows = [r for _, r in good]
    row_lines = [ln for ln, _ in good]
    # decimal comma: only with a non-comma delimiter, when numbers look like 1,5 and none like 1.5
    if decimal is None:
        decimal = "."
        if delimiter != ",":
            sample = [c.strip() for r in rows[1:2000] for c in r]
            sample = [_strip_currency(c) for c in sample]
            commas = sum(1 for c in sample if (_NUM_COMMA.match(c) and "," in c) or _THOUSANDS_COMMA_RE.match(c))
            dots = sum(1 for c in sample if (_NUM_DOT.match(c) and "." in c) or _THOUSANDS_DOT_RE.match(c))
            if commas and commas >= dots:
                decimal = ","
    elif decimal not in (".", ","):
        raise CsvImportError(f"the decimal separator must be '.' or ',', got {decimal!r}")
    if header is None:
        header = _looks_like_header(rows, decimal)
    if header:
        names, dn = _dedupe(rows[0])
        notes += dn
        data, data_lines = rows[1:], row_lines[1:]
    else:
        names = [f"col{j + 1}" for j in range(n_fields)]
        data, data_lines = rows, row_lines
    cols = list(zip(*data)) if data else [() for _ in names]
    kinds = {n: _column_kind(list(c[:1000]), decimal) for n, c in zip(names, cols)}
    # date column: by name first (if its values are dates), else the first column of dates
    date_col, formats = None, []
    by_name = [n for n in names if _norm(n) in _DATE_NAMES or "date" in _norm(n)]
    order = by_name + [n for n in names if n not in by_name]
    if date_column is not None:
        forced = _col_ref(date_column, names, "date column")
        order, by_name = [forced], [forced]
    for n in order:
        vals = list(cols[names.index(n)])
        f = _column_date_formats(vals, n)
        if f:
            date_col, formats = n, f
            break
    if date_col is None and by_name:
        date_col = by_name[0]  # named like a date but unreadable: load_prices names the bad line
    fields = column_fields([n for n in names if n != date_col])
    layout, ticker_col, price_col = _guess_layout(names, kinds, date_col, fields)
    value_cols, price_cols, asset = _value_columns(layout, names, date_col, ticker_col, price_col, fields, path)
    notes += _layout_notes(layout, value_cols, price_cols, fields)
    preview = pd.DataFrame([list(r) for r in data[:PREVIEW_ROWS]], columns=names, dtype=object)
    return CsvSniff(
        path=path,
        compression=compression,
        size_bytes=size,
        encoding=enc,
        encoding_note=enc_note,
        delimiter=delimiter,
        decimal=decimal,
        header=header,
        header_line=top_line,
        skipped_lines=skipped,
        n_fields=n_fields,
        columns=names,
        layout=layout,
        date_column=date_col,
        ticker_column=ticker_col,
        price_column=price_col,
        date_formats=formats,
        preview=preview,
        preview_lines=data_lines[:PREVIEW_ROWS],
        column_kinds=kinds,
        notes=notes,
        head_is_whole_file=whole,
        fields=fields,
        price_columns=price_cols,
        value_columns=value_cols,
        asset_name=asset,
    )


def _value_columns(layout, names, date_col, ticker_col, price_col, fields, path):
    """(columns that can be chosen as prices, the default choice, the OHLCV asset name)."""
    value_cols = [n for n in names if n not in (date_col, ticker_col)]
    if layout == "long":
        return value_cols, [price_col] if price_col else [], ""
    if layout == "ohlcv":
        return value_cols, _default_ohlcv_prices(value_cols, fields), asset_from_filename(path)
    return value_cols, [n for n in value_cols if fields.get(n) != "volume"], ""


def default_price_columns(
    sn: CsvSniff, layout: str | None = None, date_column: str | None = None, ticker_column: str | None = None
) -> list[str]:
    """The price columns load_prices takes when price_columns is None, for these choices (what
    the import dialog preselects)."""
    layout = layout or sn.layout
    date_col = date_column if date_column is not None else sn.date_column
    tick = (ticker_column if ticker_column is not None else sn.ticker_column) if layout == "long" else None
    cols = [n for n in sn.columns if n not in (date_col, tick)]
    fields = column_fields(cols)
    if layout == "long":
        pc = _pick_price_column(cols, sn.column_kinds)
        return [pc] if pc else []
    if layout == "ohlcv":
        return _default_ohlcv_prices(cols, fields)
    return [n for n in cols if fields.get(n) != "volume"]


def nonprice_message(cols: list[str]) -> str:
    return (
        f"the file has only volume-like columns ({', '.join(repr(c) for c in cols)}), no prices: "
        "choose a price column explicitly if one of them really holds prices"
    )


def _layout_notes(layout: str, value_cols: list[str], price_cols: list[str], fields: dict[str, str]) -> list[str]:
    vol = [c for c in value_cols if fields.get(c) == "volume"]
    if layout == "long" and not price_cols:
        if vol and len(vol) == len(value_cols):
            return ["long layout: " + nonprice_message(vol)]
        return ["long layout: no price column recognised (Adj Close, Close, Price, ...): choose one"]
    if layout == "ohlcv":
        if not price_cols and vol and len(vol) == len(value_cols):
            return [nonprice_message(vol)]
        if not price_cols:
            return ["OHLCV file without a Close or Adj Close column: choose the price column(s)"]
        why = "adjusted for splits and dividends" if fields.get(price_cols[0]) == "adjclose" else "no Adj Close column"
        return [f"OHLCV file: price from '{price_cols[0]}' ({why}); other columns can be chosen"]
    if layout == "wide" and vol:
        if len(vol) == len(value_cols):
            return [nonprice_message(vol)]
        return [f"not loaded by default (not prices): {', '.join(repr(c) for c in vol)}"]
    return []


def _looks_like_header(rows: list[list[str]], decimal: str) -> bool:
    first = [c.strip() for c in rows[0]]
    k0 = [_cell_kind(c, decimal) for c in first]
    if len(rows) == 1:
        return "number" not in k0 and "date" not in k0
    body = rows[1:200]
    for j, c in enumerate(first):
        col_kind = _column_kind([r[j] for r in body], decimal)
        if k0[j] == "text" and col_kind in ("number", "date"):
            return True
        if k0[j] == "text" and (_norm(c) in _TICKER_NAMES or _norm(c) in _DATE_NAMES or _norm(c) in _PRICE_NAMES):
            return True
    if all(k in ("text", "empty") for k in k0) and any(k == "text" for k in k0):
        body_kinds = {_column_kind([r[j] for r in body], decimal) for j in range(len(first))}
        return bool(body_kinds & {"number", "date"})
    return False


def _guess_layout(names: list[str], kinds: dict[str, str], date_col: str | None, fields: dict[str, str] | None = None):
    others = [n for n in names if n != date_col]
    fields = column_fields(others) if fields is None else fields
    ticker = next((n for n in others if _norm(n) in _TICKER_NAMES and (kinds.get(n) == "text" or _norm(n) in _ID_NAMES)), None)
    if ticker is None:
        ticker = next((n for n in others if kinds.get(n) == "text" and n not in fields), None)
    if ticker is None:
        # one instrument with OHLCV columns: every value column is a known field, or 3+ are OHLC fields
        ohlc = [n for n in others if fields.get(n) in ("adjclose", "close", "open", "high", "low")]
        if others and (all(n in fields for n in others) or len(ohlc) >= 3):
            return "ohlcv", None, None
        return "wide", None, None
    return "long", ticker, _pick_price_column([n for n in others if n != ticker], kinds)


def _pick_price_column(cands: list[str], kinds: dict[str, str]) -> str | None:
    normed = {_norm(n): n for n in reversed(cands)}
    for p in _PRICE_NAMES:
        if p in normed:
            return normed[p]
    fields = column_fields(cands)
    numeric = [n for n in cands if kinds.get(n) == "number" and fields.get(n) != "volume"]
    return numeric[0] if len(numeric) == 1 else None


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


# ----------------------------------------------------------------------------------------------
# dates
# ----------------------------------------------------------------------------------------------


def _resolve_date_format(fmt: str) -> str:
    if "%" in fmt:
        return fmt
    f = fmt.strip()
    up = f.upper()
    for key in DATE_FORMATS:
        if up == key.upper():
            return key
    aliases = {
        "MM/DD/YYYY": "US",
        "DD/MM/YYYY": "EU",
        "DD.MM.YYYY": "EU",
        "YYYY-MM-DD": "ISO",
        "ISO8601": "ISO",
        "YYYYMMDD": "YMD",
    }
    if up in aliases:
        return aliases[up]
    raise CsvImportError(
        f"unknown date format {fmt!r}: use ISO, US, EU, YMD, MON, unix-s/ms/us/ns, or a strftime pattern like %d.%m.%Y"
    )


def _dmy_formats(fam: str, seps: Iterable[str]) -> list[str]:
    out = []
    for s in seps:
        d = f"%m{s}%d" if fam == "US" else f"%d{s}%m"
        for y in ("%Y", "%y"):
            base = f"{d}{s}{y}"
            for t in ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", "T%H:%M", "T%H:%M:%S", "T%H:%M:%S.%f"):
                out.append(base + t)
    return out


def _parse_dates(values: pd.Series, fmt: str, chunk: int = 100_000) -> tuple[pd.DatetimeIndex, bool]:
    """Parse stripped strings to a naive DatetimeIndex with NaT where a value does not fit; the
    bool says whether time zones were converted to UTC. Long columns go in chunks (pandas holds
    the GIL while parsing; a GUI thread waiting on this worker gets to run in between)."""
    if len(values) <= chunk:
        return _parse_dates_block(values, fmt)
    parts, tz = [], False
    for i in range(0, len(values), chunk):
        d, t = _parse_dates_block(values.iloc[i : i + chunk], fmt)
        parts.append(np.asarray(d, dtype="datetime64[us]"))
        tz = tz or t
    return pd.DatetimeIndex(np.concatenate(parts)), tz


def _parse_dates_block(values: pd.Series, fmt: str) -> tuple[pd.DatetimeIndex, bool]:
    v = values  # stripped strings, no missing values
    tz = False
    if "%" in fmt:
        out = pd.to_datetime(v, format=fmt, errors="coerce")
    elif fmt == "ISO":
        sample = v.dropna().head(50)
        tz = bool(sample.astype(str).str.contains(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", regex=True).any()) and bool(
            sample.astype(str).str.contains(r"\d{4}.\d{1,2}.\d{1,2}[T ]", regex=True).any()
        )
        out = pd.to_datetime(v, format="ISO8601", errors="coerce", utc=True)
        out = out.dt.tz_convert(None) if hasattr(out, "dt") else out
    elif fmt in ("US", "EU"):
        seps = ["/", "-"] if fmt == "US" else ["/", ".", "-"]
        out = _multi_format(v, _dmy_formats(fmt, seps))
    elif fmt == "YMD":
        out = _multi_format(v, ["%Y%m%d", "%Y%m%d %H:%M:%S", "%Y%m%d %H:%M"])
    elif fmt == "MON":
        out = _multi_format(v, _MON_FORMATS + [f + " %H:%M:%S" for f in _MON_FORMATS[:4]])
    elif fmt.startswith("unix-"):
        num = pd.to_numeric(v, errors="coerce")
        ok = num.notna()
        out = pd.Series(pd.NaT, index=v.index, dtype="datetime64[ns]")
        if ok.any():
            out[ok] = pd.to_datetime(num[ok].astype("int64"), unit=fmt[5:], errors="coerce")
    else:
        raise CsvImportError(f"unknown date format {fmt!r}")
    return pd.DatetimeIndex(out), tz


def _multi_format(v: pd.Series, formats: list[str]) -> pd.Series:
    out = pd.Series(pd.NaT, index=v.index, dtype="datetime64[us]")
    todo = v.notna()
    for f in formats:
        if not todo.any():
            break
        sub = v[todo]
        got = pd.to_datetime(sub, format=f, errors="coerce")
        hit = got.notna()
        if hit.any():
            out.loc[hit[hit].index] = got[hit].astype("datetime64[us]")
            todo.loc[hit[hit].index] = False
    return out


def _first_bad(parsed: pd.DatetimeIndex) -> int | None:
    bad = np.flatnonzero(np.asarray(parsed.isna()))
    return int(bad[0]) if len(bad) else None


# ----------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------


@overload
def _col_ref(ref: None, names: list[str], what: str) -> None: ...
@overload
def _col_ref(ref: str | int, names: list[str], what: str) -> str: ...
def _col_ref(ref: str | int | None, names: list[str], what: str) -> str | None:
    if ref is None:
        return None
    if isinstance(ref, (int, np.integer)) and not isinstance(ref, bool):
        if not 0 <= int(ref) < len(names):
            raise CsvImportError(f"{what}: there is no column {int(ref) + 1} (the file has {len(names)})")
        return names[int(ref)]
    if ref in names:
        return ref
    by_norm = {_norm(n): n for n in names}
    if _norm(ref) in by_norm:
        return by_norm[_norm(ref)]
    raise CsvImportError(f"{what}: no column named {ref!r} (columns: {', '.join(names)})")


class _Lines:
    """Maps a data record's 0-based position to its 1-based line in the file."""

    def __init__(self, data_lines: np.ndarray, n_records: int):
        self.ok = len(data_lines) == n_records
        self.lines = data_lines

    def __call__(self, i: int) -> int | None:
        return int(self.lines[i]) if self.ok and 0 <= i < len(self.lines) else None


def _to_numbers(col: pd.Series, decimal: str) -> tuple[np.ndarray, np.ndarray, pd.Series | None]:
    """(values with NaN for missing and unparseable cells, mask of the unparseable ones (text that is
    not a number, or ±inf), the stripped texts when the column was read as text)."""
    clean = None
    if pd.api.types.is_float_dtype(col.dtype) or pd.api.types.is_integer_dtype(col.dtype):
        x = col.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.zeros(len(x), dtype=bool)
    else:
        s = col.astype(object)
        txt = s.where(s.notna(), None)
        clean = txt.map(lambda t: None if t is None else str(t).strip())
        clean = clean.where(~clean.isin(_NA_SET), None)
        num_in = clean.str.replace(",", ".", regex=False) if decimal == "," else clean
        num = pd.to_numeric(num_in, errors="coerce")
        retry = num.isna().to_numpy() & clean.notna().to_numpy()
        if retry.any():  # "$182.01" (nasdaq.com), "1,234.50" (quoted, thousands separators)
            alt = clean[retry].map(lambda t: _plain_number(t, decimal))
            num.loc[retry] = pd.to_numeric(alt, errors="coerce").to_numpy()
        bad = num.isna().to_numpy() & clean.notna().to_numpy()
        x = num.to_numpy(dtype=np.float64, na_value=np.nan)
    inf = np.isinf(x)
    if inf.any():
        bad = bad | inf
        x = np.where(inf, np.nan, x)
    return x, bad, clean


_CURRENCY_RE = re.compile(r"^([+-]?)\s*[$€£¥]\s*(.*)$")
_THOUSANDS_DOT_RE = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")
_THOUSANDS_COMMA_RE = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d*)?$")


def _plain_number(t: str, decimal: str) -> str | None:
    """A number written with a leading currency sign and/or thousands separators, as plain text
    pandas reads ("$1,234.50" -> "1234.50"); None when it is not one."""
    t = _strip_currency(t)
    if decimal == "." and _THOUSANDS_DOT_RE.match(t):
        t = t.replace(",", "")
    elif decimal == "," and _THOUSANDS_COMMA_RE.match(t):
        t = t.replace(".", "").replace(",", ".")
    elif decimal == ",":
        t = t.replace(",", ".")
    return t if _NUM_DOT.match(t) else None


def _numbers(
    df: pd.DataFrame, cols: list[str], decimal: str, lines: _Lines, bad_cells: str, report: list[str]
) -> dict[str, np.ndarray]:
    """The chosen columns as float64. Unparseable cells: a BadCellError naming the first one in file
    order and counting all of them (bad_cells="error"), or NaN with a report line ("missing")."""
    out: dict[str, np.ndarray] = {}
    first: tuple[int, int] | None = None  # (row, column index) of the first unparseable cell
    count = 0
    cells: list[tuple[int, int]] = []
    per_col: list[tuple[str, int, int]] = []
    texts = {}
    for j, c in enumerate(cols):
        x, bad, clean = _to_numbers(df[c], decimal)
        out[c] = x
        texts[c] = clean
        k = int(bad.sum())
        if k:
            rows = np.flatnonzero(bad)
            count += k
            per_col.append((c, k, int(rows[0])))
            cells += [(int(r), j) for r in rows[:5]]
            if first is None or int(rows[0]) < first[0]:
                first = (int(rows[0]), j)
    if not count:
        return out
    assert first is not None  # set with the first bad cell

    def text(i: int, j: int) -> str:
        c = cols[j]
        tc = texts[c]
        t = tc.iloc[i] if tc is not None else None
        return str(t) if t is not None else str(df[c].iloc[i])

    def inf(i: int, j: int) -> bool:
        try:
            return bool(np.isinf(float(text(i, j).replace(",", "."))))
        except ValueError:
            return False

    cells.sort()
    if bad_cells == "error":
        i, j = first
        msg = (
            f"{float(text(i, j).replace(',', '.'))} in column '{cols[j]}' is not a finite number"
            if inf(i, j)
            else f"{_quote(text(i, j))} in column '{cols[j]}' is not a number"
        )
        raise BadCellError(msg, lines(i), count, [(lines(r), cols[q], text(r, q)) for r, q in cells[:5]])
    i, j = first
    ln = lines(i)
    report.append(
        f"Unparseable cells treated as missing: {count:,} ("
        + "; ".join(f"'{c}' {k}" for c, k, _ in per_col[:6])
        + (" …" if len(per_col) > 6 else "")
        + f"; first {_quote(text(i, j))} in '{cols[j]}'"
        + (f" at line {ln}" if ln else "")
        + ")"
    )
    return out


def _quote(s: Any) -> str:
    s = str(s)
    return repr(s if len(s) <= 40 else s[:37] + "...")


def load_prices(
    path: str | os.PathLike | list | tuple,
    *,
    layout: str | None = None,
    date_format: str | None = None,
    nan_policy: str = "drop",
    delimiter: str | None = None,
    encoding: str | None = None,
    header: bool | None = None,
    decimal: str | None = None,
    date_column: str | int | None = None,
    ticker_column: str | int | None = None,
    price_column: str | int | None = None,
    price_columns: list[str | int] | str | int | None = None,
    asset_name: str | None = None,
    bad_cells: str = "error",
    name: str | None = None,
    sniffed: CsvSniff | None = None,
    max_bytes: int = MAX_BYTES,
) -> ImportResult:
    """Read a price file into a Dataset (DatetimeIndex ascending, float64 columns, one per asset).

    Every keyword left None is taken from `sniff()` (or from `sniffed` when given and made with
    the same delimiter/encoding/header/decimal). Raises CsvImportError (AmbiguousDateError when
    the dates fit both US and EU and date_format is None; BadCellError for a cell that is not a
    number, unless bad_cells="missing").

    Layouts: "wide" (a date column, one price column per asset), "long" (date, ticker, price rows)
    and "ohlcv" (one instrument: Date, Open, High, Low, Close, Adj Close, Volume; the asset is
    named after the file, AAPL.csv -> AAPL, or `asset_name`).
    price_columns: the columns loaded as prices (wide: a subset of the asset columns; ohlcv: e.g.
    ["Close"], several give assets "AAPL Close", "AAPL Adj Close"; long: the price column(s)).
    Default: wide, every column but volume-like ones; ohlcv, Adj Close, else Close; long, Adj
    Close, else Close, Price, ... Volume-like columns (Volume, Open Interest, Dividends, ...) are
    never taken as prices unless named in price_columns.
    bad_cells: "error" (default) or "missing" (unparseable cells become missing values, counted in
    the report, then nan_policy applies).

    `path` may be a list of files (e.g. one OHLCV file per ticker): each is read with the same
    keywords (columns matched by name, or by OHLCV field: "Adj Close" also finds "adj_close"), then
    the files are aligned on the union of their dates and nan_policy applies to the whole: "drop"
    keeps the dates every file has (an inner join), "ffill" keeps all dates and carries prices over
    the gaps (an outer join)."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return _load_many(
                list(path),
                layout=layout,
                date_format=date_format,
                nan_policy=nan_policy,
                delimiter=delimiter,
                encoding=encoding,
                header=header,
                decimal=decimal,
                date_column=date_column,
                ticker_column=ticker_column,
                price_column=price_column,
                price_columns=price_columns,
                bad_cells=bad_cells,
                name=name,
                max_bytes=max_bytes,
            )
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)  # one file given as a list of one
    if nan_policy not in NAN_POLICIES:
        raise CsvImportError(f"nan_policy must be one of {', '.join(NAN_POLICIES)}, got {nan_policy!r}")
    if bad_cells not in BAD_CELLS:
        raise CsvImportError(f"bad_cells must be one of {', '.join(BAD_CELLS)}, got {bad_cells!r}")
    if layout is not None and layout not in LAYOUTS:
        raise CsvImportError(f"layout must be 'wide', 'long' or 'ohlcv', got {layout!r}")
    sn = sniffed
    if (
        sn is None
        or Path(sn.path) != path
        or any(
            v is not None and v != getattr(sn, k) for k, v in (("delimiter", delimiter), ("header", header), ("decimal", decimal))
        )
        or (encoding is not None and _normalise_encoding(encoding) != sn.encoding)
    ):
        sn = sniff(path, delimiter=delimiter, encoding=encoding, header=header, decimal=decimal, max_bytes=max_bytes)
    report: list[str] = []
    scan = _scan(sn, sn.encoding, forced_encoding=encoding is not None, max_bytes=max_bytes)
    enc = scan.encoding
    enc_note = scan.note or sn.encoding_note
    report.append(f"Encoding: {ENCODINGS[enc]}" + (f" ({enc_note})" if enc_note else ""))
    report.append(
        f"Delimiter: {DELIMITERS.get(sn.delimiter, repr(sn.delimiter))}" + (", decimal comma" if sn.decimal == "," else "")
    )
    if sn.skipped_lines:
        report.append(f"Skipped {sn.skipped_lines} line(s) above the {'header' if sn.header else 'data'} (line {sn.header_line})")
    n_records = len(scan.data_lines)
    if n_records == 0:
        if sn.header:
            raise CsvImportError(f"no data rows: the file has only a header (line {sn.header_line})")
        raise CsvImportError("no data rows")

    names = sn.columns
    layout = layout or sn.layout
    date_col = _col_ref(date_column, names, "date column") if date_column is not None else sn.date_column
    if date_col is None:
        raise CsvImportError(
            "no date column: no column holds dates in a known format (ISO YYYY-MM-DD, US MM/DD/YYYY, "
            f"EU DD/MM/YYYY or DD.MM.YYYY, YYYYMMDD, 02-Jan-2020); columns: {', '.join(names)}"
        )
    if isinstance(price_columns, (str, int, np.integer)):
        price_columns = [price_columns]
    if price_columns is None and price_column is not None:
        price_columns = [price_column]
    if price_columns is not None and not len(price_columns):
        raise CsvImportError("no price column chosen: choose at least one")
    fields = column_fields([n for n in names if n != date_col])
    chosen = None if price_columns is None else _match_columns(price_columns, names, fields)
    tick_col = None
    if layout == "long":
        tick_col = _col_ref(ticker_column, names, "ticker column") if ticker_column is not None else sn.ticker_column
        if tick_col is None:
            raise CsvImportError("long layout needs a ticker column (e.g. Ticker or Symbol): none found, choose one")
        if chosen is None:
            pc = sn.price_column if sn.price_column not in (None, date_col, tick_col) else None
            pc = pc or _pick_price_column([n for n in names if n not in (date_col, tick_col)], sn.column_kinds)
            if pc is None:
                vol = [n for n in names if n not in (date_col, tick_col) and fields.get(n) == "volume"]
                if vol and len(vol) == len(names) - 2:
                    raise CsvImportError("long layout: " + nonprice_message(vol))
                raise CsvImportError(
                    "long layout: cannot tell which column holds the prices (no Adj Close, Close or Price column): choose one"
                )
            chosen = [pc]
        if date_col in chosen or tick_col in chosen or date_col == tick_col:
            raise CsvImportError("the date, ticker and price columns must be different columns")
    else:
        value_cols = [n for n in names if n != date_col]
        if not value_cols:
            raise CsvImportError("no price columns: the file has only a date column")
        if chosen is None:
            chosen = (
                _default_ohlcv_prices(value_cols, fields)
                if layout == "ohlcv"
                else [n for n in value_cols if fields.get(n) != "volume"]
            )
            if not chosen:
                vol = [n for n in value_cols if fields.get(n) == "volume"]
                if len(vol) == len(value_cols):
                    raise CsvImportError(nonprice_message(vol))
                raise CsvImportError(
                    "OHLCV file without a Close or Adj Close column: choose the price column(s) "
                    f"(columns: {', '.join(value_cols)})"
                )
        if date_col in chosen:
            raise CsvImportError(f"the date column '{date_col}' cannot also be a price column")
    forced_vol = [c for c in chosen if fields.get(c) == "volume"]
    use = [date_col] + ([tick_col] if tick_col else []) + chosen
    idx = [names.index(n) for n in use]

    df = _read_frame(sn, enc, idx, use, date_col, tick_col)
    lines = _Lines(scan.data_lines, len(df))
    if not lines.ok:
        report.append("Note: line numbers are approximate (the file has records spanning several lines)")

    # ---- dates
    fmt, dates, tz = _dates(df[date_col], date_format, lines, sn)
    report.append(f"Dates: column '{date_col}', {DATE_FORMATS.get(fmt, fmt)}" + ("; time zones converted to UTC" if tz else ""))
    values = _numbers(df, chosen, sn.decimal, lines, bad_cells, report)
    pos = posw = None
    if layout == "long":
        prices, posw, rep = _long_to_wide(df, dates, tick_col, values, lines)
        report.append(
            f"Layout: long: {df[tick_col].nunique()} ticker(s) from column '{tick_col}', prices from "
            + ", ".join(f"'{c}'" for c in chosen)
        )
    else:
        prices, pos, rep = _wide(values, dates, lines)
        if layout == "ohlcv":
            asset = (asset_name or "").strip() or asset_from_filename(path)
            prices.columns = [asset] if len(chosen) == 1 else [f"{asset} {c}" for c in chosen]
            report.append(
                f"Layout: one instrument (OHLCV columns): asset '{asset}', price from "
                + ", ".join(
                    f"'{c}'" + (f" ({FIELD_LABELS[fields[c]]})" if c in fields and fields[c] != "volume" else "") for c in chosen
                )
            )
        else:
            report.append(f"Layout: wide: {prices.shape[1]} price column(s)")
            left = [n for n in value_cols if n not in chosen]
            if left:
                report.append(f"Not loaded: {', '.join(repr(c) for c in left[:8])}" + (" …" if len(left) > 8 else ""))
    if forced_vol:
        report.append(
            f"Loaded as prices because chosen (they look like volume, not prices): {', '.join(repr(c) for c in forced_vol)}"
        )
    del df
    report += rep
    prices, rep = _apply_nan_policy(prices, nan_policy, lines, pos, posw)
    report += rep
    if len(prices) < 2:
        if n_records == 1:
            raise CsvImportError("only one data row: at least 2 prices per asset are needed", int(scan.data_lines[0]))
        raise CsvImportError(
            f"{len(prices)} row(s) left after handling missing values (policy: {NAN_POLICIES[nan_policy]}): "
            "at least 2 are needed; try forward-fill, or fewer columns"
        )
    _value_notes(prices, report)
    ds_name = name or default_name(path)
    prices.attrs = {}
    prices.attrs["source"] = {
        "kind": "csv",
        "path": str(path),
        "encoding": enc,
        "delimiter": sn.delimiter,
        "decimal": sn.decimal,
        "layout": layout,
        "date_column": date_col,
        "date_format": fmt,
        "nan_policy": nan_policy,
        "price_columns": list(chosen),
        "bad_cells": bad_cells,
    }
    ds = Dataset(ds_name, prices)
    report.append(f"Loaded: {ds.describe()}")
    return ImportResult(ds, report, sn, layout, fmt, enc, nan_policy)


def _value_notes(prices: pd.DataFrame, report: list[str]) -> None:
    nonpos = [(c, int((prices[c] <= 0).sum())) for c in prices.columns if (prices[c] <= 0).any()]
    if nonpos:
        report.append(
            "Values ≤ 0 (fine for spreads; returns need positive prices): "
            + ", ".join(f"'{c}' {n}" for c, n in nonpos[:5])
            + (" …" if len(nonpos) > 5 else "")
        )
    gaps = prices.index.to_series().diff().dropna()
    if len(gaps):
        k = int(np.argmax(gaps.to_numpy()))
        g = gaps.iloc[k]
        if g >= pd.Timedelta(days=5) and g > 3 * gaps.median():
            report.append(f"Largest gap between dates: {_fmt_td(g)} ({_d(prices.index[k])} → {_d(prices.index[k + 1])})")


def _match_columns(wanted: list, names: list[str], fields: dict[str, str]) -> list[str]:
    """Columns by name (case, spaces, _ . - ignored) or index; else the column with the same OHLCV
    field ("Adj Close" finds "adjusted_close" in another file)."""
    out: list[str] = []
    for w in wanted:
        try:
            c = _col_ref(w, names, "price column")
        except CsvImportError:
            f = column_fields([str(w)]).get(str(w)) if isinstance(w, str) else None
            same = [n for n in names if f is not None and fields.get(n) == f]
            if len(same) != 1:
                raise
            c = same[0]
        if c not in out:
            out.append(c)
    return out


def _load_many(paths: list, *, nan_policy: str, name: str | None, bad_cells: str, **kw) -> ImportResult:
    """Several files into one dataset: see load_prices."""
    if not paths:
        raise CsvImportError("no file given")
    if nan_policy not in NAN_POLICIES:
        raise CsvImportError(f"nan_policy must be one of {', '.join(NAN_POLICIES)}, got {nan_policy!r}")
    paths = [Path(p) for p in paths]
    dup = [p.name for p, k in Counter(paths).items() if k > 1]
    if dup:
        raise CsvImportError(f"the same file is chosen twice: {', '.join(dup)}")
    results: list[ImportResult] = []
    bad: list[tuple[Path, BadCellError]] = []
    for p in paths:
        try:
            results.append(load_prices(p, nan_policy=nan_policy, bad_cells=bad_cells, **kw))
        except BadCellError as e:
            bad.append((p, e))  # go on: the count covers every file
        except CsvImportError as e:
            raise e.in_file(p.name) from None
    if bad:
        p0, e0 = bad[0]
        total = sum(e.count for _, e in bad)
        cells = [c for _, e in bad for c in e.cells][:5]
        err = BadCellError(e0.problem, e0.line, total, cells)
        err.in_file(p0.name)
        err.files = [p.name for p, _ in bad]
        raise err
    report: list[str] = [f"{len(paths)} files, aligned on their dates:"]
    frames = []
    seen: Counter = Counter()
    for p, r in zip(paths, results):
        df = r.dataset.prices
        if not isinstance(df.index, pd.DatetimeIndex):
            raise CsvImportError("has no dates: files can only be combined by date").in_file(p.name)
        cols = []
        for c in df.columns:
            seen[c] += 1
            cols.append(c if seen[c] == 1 else f"{c} ({default_name(p)})")
        renamed = [f"'{a}' as '{b}'" for a, b in zip(df.columns, cols) if a != b]
        df = df.set_axis(cols, axis=1)
        frames.append(df)
        lay = {"ohlcv": "OHLCV", "long": "long", "wide": "wide"}.get(r.layout, r.layout)
        report.append(
            f"• {p.name} ({lay}): {', '.join(df.columns[:6])}{' …' if df.shape[1] > 6 else ''}; "
            f"{len(df):,} rows, {_d(df.index[0])} … {_d(df.index[-1])}"
            + (f"; {', '.join(renamed)} (name already taken)" if renamed else "")
        )
        for line in r.report:
            if line.startswith(("Missing values", "Unparseable", "Dates were", "Loaded as prices")) or "duplicate" in line:
                report.append(f"  {line}")
    prices = pd.concat(frames, axis=1, join="outer", sort=True).sort_index()
    prices.index.name = "date"
    n_union = len(prices)
    n_inner = int(prices.notna().all(axis=1).sum())
    report.append(f"Dates: {n_union:,} in any file, {n_inner:,} in every file")
    prices, rep = _apply_nan_policy(prices, nan_policy, None)
    for line in rep:
        if line.startswith("Missing values in"):
            line = "Dates missing from a file: " + line.split(": ", 1)[1]
        elif line.startswith("Missing values: dropped"):
            line = line.replace("dropped", "dropped (dates not in every file)", 1)
        report.append(line)
    if len(prices) < 2:
        raise CsvImportError(
            f"{len(prices)} date(s) left after aligning the files (policy: {NAN_POLICIES[nan_policy]}): "
            "the files have too few dates in common; try forward-fill"
        )
    _value_notes(prices, report)
    prices = prices.astype(np.float64)
    prices.attrs = {
        "source": {
            "kind": "csv",
            "paths": [str(p) for p in paths],
            "nan_policy": nan_policy,
            "bad_cells": bad_cells,
            "files": [r.dataset.prices.attrs.get("source") for r in results],
        }
    }
    ds_name = name or _combined_name(paths)
    ds = Dataset(ds_name, prices)
    report.append(f"Loaded: {ds.describe()}")
    r0 = results[0]
    return ImportResult(ds, report, r0.sniff, r0.layout, r0.date_format, r0.encoding, nan_policy)


def _combined_name(paths: list[Path]) -> str:
    names = [default_name(p) for p in paths]
    return " + ".join(names) if len(names) <= 4 else f"{' + '.join(names[:3])} + {len(names) - 3} more"


def default_name(path: Path) -> str:
    n = path.name
    for ext in (".gz", ".bz2", ".xz"):
        if n.lower().endswith(ext):
            n = n[: -len(ext)]
    for ext in (".csv", ".tsv", ".txt", ".dat", ".psv"):
        if n.lower().endswith(ext):
            n = n[: -len(ext)]
    return n or path.name


def _d(ts) -> str:
    ts = pd.Timestamp(ts)
    return f"{ts:%Y-%m-%d}" if ts == ts.normalize() else f"{ts:%Y-%m-%d %H:%M:%S}"


def _fmt_td(td: pd.Timedelta) -> str:
    if td >= pd.Timedelta(days=1):
        return f"{td.days} days"
    return str(td)


def _read_frame(sn: CsvSniff, enc: str, idx: list[int], use: list[str], date_col: str, tick_col: str | None) -> pd.DataFrame:
    skip = sn.header_line if sn.header else sn.header_line - 1
    dtype = {names_i: str for names_i, n in zip(idx, use) if n in (date_col, tick_col)}
    try:
        with _text_stream(sn, enc) as f:
            for _ in range(skip):
                f.readline()
            # in chunks: pandas' parser holds the GIL while it works, so a GUI thread waiting on
            # this worker would freeze for a whole big file; between chunks it gets to run
            reader = pd.read_csv(
                f,
                sep=sn.delimiter,
                header=None,
                names=list(range(sn.n_fields)),
                usecols=idx,
                dtype=dtype,
                na_values=NA_TOKENS,
                keep_default_na=False,
                decimal=sn.decimal,
                skip_blank_lines=True,
                engine="c",
                quotechar='"',
                chunksize=READ_CHUNK_ROWS,
            )
            df = pd.concat(list(reader), ignore_index=True)
    except pd.errors.ParserError as e:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if m:
            raise CsvImportError(f"{m[3]} fields, but the header has {m[1]}", int(m[2]) + skip) from None
        raise CsvImportError(f"cannot parse the file: {e}".strip()) from None
    except (UnicodeDecodeError, LookupError) as e:
        raise CsvImportError(f"cannot decode the file as {ENCODINGS.get(enc, enc)}: {e}") from None
    except MemoryError:
        raise CsvImportError("not enough memory to load the file: keep fewer columns or rows") from None
    df = df[idx]
    df.columns = use
    return df


def _dates(col: pd.Series, date_format: str | None, lines: _Lines, sn: CsvSniff) -> tuple[str, pd.DatetimeIndex, bool]:
    # in chunks: stripping 1M strings in one pandas call holds the GIL ~0.2 s (the GUI thread
    # waiting on this worker would stall); between chunks it gets to run
    parts, first_empty, step = [], None, 100_000
    for i in range(0, len(col), step):
        part = col.iloc[i : i + step].astype(object).str.strip()
        e = np.flatnonzero((part.isna() | (part == "")).to_numpy())
        if len(e) and first_empty is None:
            first_empty = i + int(e[0])
        parts.append(part)
    col = pd.concat(parts) if len(parts) > 1 else (parts[0] if parts else col.astype(object))
    if first_empty is not None:
        raise CsvImportError(f"the date in column '{col.name}' is empty", lines(first_empty))
    if date_format is not None:
        fmt = _resolve_date_format(date_format)
        parsed, tz = _parse_dates(col, fmt)
        bad = _first_bad(parsed)
        if bad is not None:
            raise CsvImportError(
                f"date {_quote(col.iloc[bad])} in column '{col.name}' does not match {DATE_FORMATS.get(fmt, fmt)}", lines(bad)
            )
        return fmt, parsed, tz
    cands = list(sn.date_formats) if col.name == sn.date_column else []
    if not cands:
        cands = _column_date_formats([str(x) for x in col.iloc[:2000]], str(col.name))
    if not cands:
        # find the first value no format reads, to name its line
        for i, v in enumerate(col.iloc[:2000]):
            if not _date_families(str(v)):
                raise CsvImportError(f"{_quote(v)} in column '{col.name}' is not a date in a known format", lines(i))
        raise CsvImportError(f"column '{col.name}' does not hold dates in one known format")
    if "US" in cands and "EU" in cands:
        us, tz = _parse_dates(col, "US")
        eu, _ = _parse_dates(col, "EU")
        bus, beu = _first_bad(us), _first_bad(eu)
        if bus is None and beu is None:
            ex = _ambiguous_example(col)
            raise AmbiguousDateError(
                f"every date in column '{col.name}' fits both US (MM/DD/YYYY) and EU (DD/MM/YYYY), e.g. {ex!r}: "
                "choose the date format",
                ("US", "EU"),
                ex,
            )
        if bus is None:
            return "US", us, tz
        if beu is None:
            return "EU", eu, tz
        i = max(bus, beu)
        raise CsvImportError(f"date {_quote(col.iloc[i])} in column '{col.name}' is neither a US nor an EU date", lines(i))
    fmt = cands[0]
    parsed, tz = _parse_dates(col, fmt)
    bad = _first_bad(parsed)
    if bad is not None:
        raise CsvImportError(
            f"date {_quote(col.iloc[bad])} in column '{col.name}' does not match {DATE_FORMATS.get(fmt, fmt)}", lines(bad)
        )
    return fmt, parsed, tz


def _ambiguous_example(col: pd.Series) -> str:
    """A date whose reading differs between US and EU (day != month), for the message."""
    for v in col.iloc[:5000]:
        m = _DMY_RE.match(v)
        if m and m[1].lstrip("0") != m[3].lstrip("0"):
            return v
    return str(col.iloc[0])


def _order_report(dates: pd.DatetimeIndex, lines_arr: np.ndarray | None) -> tuple[np.ndarray | None, list[str]]:
    """Stable sort order if the dates are not ascending (None otherwise), and a report line."""
    d = dates.asi8
    if len(d) < 2 or np.all(d[1:] >= d[:-1]):
        return None, []
    if np.all(d[1:] <= d[:-1]):
        return np.arange(len(d))[::-1].copy() if np.all(d[1:] < d[:-1]) else np.argsort(d, kind="stable"), [
            "Dates were in descending order (newest first): sorted ascending"
        ]
    k = int(np.flatnonzero(d[1:] < d[:-1])[0]) + 1
    where = f" at line {int(lines_arr[k])}" if lines_arr is not None else f" at {_d(dates[k])}"
    return np.argsort(d, kind="stable"), [f"Dates were not in order (first out of order{where}): sorted"]


def _wide(values: dict[str, np.ndarray], dates: pd.DatetimeIndex, lines: _Lines):
    report: list[str] = []
    line_arr = lines.lines if lines.ok else None
    order, rep = _order_report(dates, line_arr)
    report += rep
    mat = pd.DataFrame(values, index=dates)
    pos = np.arange(len(mat))
    if order is not None:
        mat = mat.iloc[order]
        pos = pos[order]
    dup = mat.index.duplicated(keep="last")
    if dup.any():
        dd = mat.index[dup]
        ex = []
        for t in pd.unique(dd)[:3]:
            ls = [lines(int(p)) for p in pos[mat.index == t]]
            ex.append(f"{_d(t)} (lines {', '.join(str(x) for x in ls)})" if all(ls) else _d(t))
        report.append(
            f"{int(dup.sum())} duplicate row(s) for {len(pd.unique(dd))} date(s), kept the last of each: "
            + "; ".join(ex)
            + (" …" if len(pd.unique(dd)) > 3 else "")
        )
        mat = mat[~dup]
        pos = pos[~dup]
    mat.index.name = "date"
    return mat, pos, report  # pos: the data record of each row, for the missing-value report


def _long_to_wide(df, dates, tick_col, values: dict[str, np.ndarray], lines):
    """Rows of (date, ticker, price...) to one column per ticker (per ticker and price column,
    "AAPL Close", when several price columns are chosen)."""
    report: list[str] = []
    t = df[tick_col].astype(object)
    tick = t.map(lambda s: s.strip() if isinstance(s, str) else None)
    empty = np.flatnonzero(tick.isna().to_numpy() | (tick == "").to_numpy())
    if len(empty):
        raise CsvImportError(f"the ticker in column '{tick_col}' is empty", lines(int(empty[0])))
    line_arr = lines.lines if lines.ok else None
    pcs = list(values)
    frame = pd.DataFrame({"date": dates, "ticker": tick.to_numpy(), "pos": np.arange(len(df))})
    for k, c in enumerate(pcs):
        frame[f"p{k}"] = values[c]
    order, rep = _order_report(dates, line_arr)
    if order is not None:
        frame = frame.iloc[order]
    # long files are usually sorted by ticker then date: only report disorder within a ticker
    within = frame.groupby("ticker", sort=False)["date"].apply(lambda s: s.is_monotonic_increasing) if order is not None else None
    if within is not None and not bool(within.all()):
        report += [r.replace("Dates were", "Dates of a ticker were") for r in rep]
    dup = frame.duplicated(subset=["date", "ticker"], keep="last").to_numpy()
    if dup.any():
        dd = frame[dup]
        ex = []
        for _, r in dd.head(3).iterrows():
            same = frame[(frame["date"] == r["date"]) & (frame["ticker"] == r["ticker"])]
            ls = [lines(int(p)) for p in same["pos"]]
            ex.append(f"{r['ticker']} {_d(r['date'])}" + (f" (lines {', '.join(str(x) for x in ls)})" if all(ls) else ""))
        report.append(
            f"{int(dup.sum())} duplicate row(s) for the same ticker and date, kept the last of each: "
            + "; ".join(ex)
            + (" …" if dup.sum() > 3 else "")
        )
        frame = frame[~dup]
    tickers = list(pd.unique(frame["ticker"]))
    posw = frame.pivot(index="date", columns="ticker", values="pos").reindex(columns=tickers).sort_index()
    parts, pos_parts = [], []
    for k, c in enumerate(pcs):
        w = frame.pivot(index="date", columns="ticker", values=f"p{k}").reindex(columns=tickers).sort_index()
        w.columns = [str(x) if len(pcs) == 1 else f"{x} {c}" for x in w.columns]
        parts.append(w)
        pos_parts.append(posw.to_numpy(dtype=np.float64))
    wide = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
    if len(parts) > 1:  # AAPL Close, AAPL Adj Close, MSFT Close, ...: grouped by ticker
        order_cols = [j * len(tickers) + i for i in range(len(tickers)) for j in range(len(pcs))]
        wide = wide.iloc[:, order_cols]
        pos_all = np.concatenate(pos_parts, axis=1)[:, order_cols]
    else:
        pos_all = pos_parts[0]
    wide.columns.name = None
    wide.index.name = "date"
    wide = wide.astype(np.float64)
    return wide, pos_all, report


def _apply_nan_policy(prices: pd.DataFrame, policy: str, lines: _Lines | None, pos=None, posw=None):
    """Report missing values per column (first line, or date when the long file has no row for
    it) and apply the policy. pos: data record of each row (wide); posw: of each cell (long)."""
    report: list[str] = []
    na = prices.isna().to_numpy()
    counts = na.sum(axis=0)
    if counts.any():
        parts = []
        for j in np.flatnonzero(counts):
            c = prices.columns[j]
            i = int(np.flatnonzero(na[:, j])[0])
            where = f"first on {_d(prices.index[i])}"
            if pos is not None and lines is not None and lines(int(pos[i])):
                where = f"first at line {lines(int(pos[i]))}"
            elif posw is not None:
                p = posw[i, j]
                where += f", line {lines_from(lines, p)}" if not np.isnan(p) and lines_from(lines, p) else ": no row for it"
            parts.append(f"'{c}' {int(counts[j])} ({where})")
        report.append(f"Missing values in {len(parts)} column(s): " + "; ".join(parts[:8]) + (" …" if len(parts) > 8 else ""))
    empty_cols = [c for j, c in enumerate(prices.columns) if counts[j] == len(prices)]
    if empty_cols:
        prices = prices.drop(columns=empty_cols)
        report.append(f"Column(s) without any value, dropped: {', '.join(repr(c) for c in empty_cols)}")
        if prices.shape[1] == 0:
            raise CsvImportError("no price column has any value")
    n0 = len(prices)
    if not prices.isna().to_numpy().any():
        return prices, report
    if policy == "drop":
        keep = ~prices.isna().any(axis=1)
        prices = prices[keep]
        report.append(f"Missing values: dropped {n0 - len(prices):,} of {n0:,} rows (policy: drop rows)")
    else:
        before = int(prices.isna().to_numpy().sum())
        filled = prices.ffill()
        lead = filled.isna().any(axis=1).to_numpy()
        n_lead = int(np.argmin(lead)) if not lead.all() else len(lead)
        after = int(filled.isna().to_numpy().sum())
        prices = filled.iloc[n_lead:]
        msg = f"Missing values: forward-filled {before - after:,} value(s)"
        if n_lead:
            late = (
                [c for c in filled.columns if filled[c].first_valid_index() == filled.index[n_lead]]
                if n_lead < len(filled)
                else []
            )
            who = (
                f" ({', '.join(repr(c) for c in late[:3])} start{'s' if len(late) == 1 else ''} on {_d(filled.index[n_lead])})"
                if late
                else ""
            )
            msg += f"; dropped the first {n_lead:,} row(s), before every column has a value{who}"
        report.append(msg)
    return prices, report


def lines_from(lines: _Lines | None, p: float) -> int | None:
    if lines is None or np.isnan(p):
        return None
    return lines(int(p))
