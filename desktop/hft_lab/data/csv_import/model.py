"""Price file import (hft_lab.data.csv_import): constants, errors, CsvSniff and ImportResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..samples import Dataset

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


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
