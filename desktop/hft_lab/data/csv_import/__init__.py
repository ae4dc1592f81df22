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

The package: `model` (constants, errors, CsvSniff, ImportResult), `opening` (size check,
compression), `encoding`, `cells` (number/date classification of the head), `sniffing` (sniff),
`scan` (the streaming pass: size, encoding, field counts with line numbers), `dates` (date
formats, US/EU), `numbers` (cells to numbers with line references), `loading` (load_prices).
Every name is importable from hft_lab.data.csv_import as before.
"""

from __future__ import annotations

from .cells import (
    _CURRENCY_RE,
    _DMY_RE,
    _INT_RE,
    _ISO_RE,
    _MON_FORMATS,
    _NUM_COMMA,
    _NUM_DOT,
    _SPECIAL_NUM,
    _THOUSANDS_COMMA_RE,
    _THOUSANDS_DOT_RE,
    _YMD_RE,
    _cell_kind,
    _column_date_formats,
    _column_kind,
    _date_families,
    _default_ohlcv_prices,
    _epoch_family,
    _is_number,
    _norm,
    _plain_number,
    _strip_currency,
    _valid_date,
    asset_from_filename,
    column_fields,
    default_name,
)
from .dates import _dmy_formats, _first_bad, _multi_format, _parse_dates, _parse_dates_block, _resolve_date_format
from .encoding import _bom_encoding, _decode_head, _normalise_encoding
from .loading import (
    _ambiguous_example,
    _apply_nan_policy,
    _combined_name,
    _d,
    _dates,
    _fmt_td,
    _load_many,
    _long_to_wide,
    _match_columns,
    _order_report,
    _read_frame,
    _value_notes,
    _wide,
    lines_from,
    load_prices,
)
from .model import (
    _DATE_NAMES,
    _FIELD_NAMES,
    _ID_NAMES,
    _NA_SET,
    _NONPRICE_NAMES,
    _PRICE_NAMES,
    _TICKER_NAMES,
    BAD_CELLS,
    CHUNK,
    DATE_FORMATS,
    DELIMITERS,
    ENCODINGS,
    FIELD_LABELS,
    LAYOUTS,
    MAX_BYTES,
    NA_TOKENS,
    NAN_POLICIES,
    PREVIEW_ROWS,
    READ_CHUNK_ROWS,
    SNIFF_BYTES,
    SNIFF_ROWS,
    AmbiguousDateError,
    BadCellError,
    CsvImportError,
    CsvSniff,
    ImportResult,
    _human_bytes,
)
from .numbers import _col_ref, _Lines, _numbers, _quote, _to_numbers
from .opening import _MAGIC, _NOT_CSV, _check_file, _open_binary, _read_chunks, _read_head
from .scan import _cr_only, _ragged, _Scan, _scan, _scan_quoted, _text_stream
from .sniffing import (
    _choose_delimiter,
    _dedupe,
    _first_lines,
    _guess_layout,
    _layout_notes,
    _looks_like_header,
    _pick_price_column,
    _records,
    _value_columns,
    default_price_columns,
    nonprice_message,
    sniff,
)

__all__ = [
    "AmbiguousDateError",
    "BAD_CELLS",
    "BadCellError",
    "CHUNK",
    "CsvImportError",
    "CsvSniff",
    "DATE_FORMATS",
    "DELIMITERS",
    "ENCODINGS",
    "FIELD_LABELS",
    "ImportResult",
    "LAYOUTS",
    "MAX_BYTES",
    "NAN_POLICIES",
    "NA_TOKENS",
    "PREVIEW_ROWS",
    "READ_CHUNK_ROWS",
    "SNIFF_BYTES",
    "SNIFF_ROWS",
    "_DATE_NAMES",
    "_FIELD_NAMES",
    "_ID_NAMES",
    "_NA_SET",
    "_NONPRICE_NAMES",
    "_PRICE_NAMES",
    "_TICKER_NAMES",
    "_human_bytes",
    "_MAGIC",
    "_NOT_CSV",
    "_check_file",
    "_open_binary",
    "_read_chunks",
    "_read_head",
    "_bom_encoding",
    "_decode_head",
    "_normalise_encoding",
    "_CURRENCY_RE",
    "_DMY_RE",
    "_INT_RE",
    "_ISO_RE",
    "_MON_FORMATS",
    "_NUM_COMMA",
    "_NUM_DOT",
    "_SPECIAL_NUM",
    "_THOUSANDS_COMMA_RE",
    "_THOUSANDS_DOT_RE",
    "_YMD_RE",
    "_cell_kind",
    "_column_date_formats",
    "_column_kind",
    "_date_families",
    "_default_ohlcv_prices",
    "_epoch_family",
    "_is_number",
    "_norm",
    "_plain_number",
    "_strip_currency",
    "_valid_date",
    "asset_from_filename",
    "column_fields",
    "default_name",
    "_choose_delimiter",
    "_dedupe",
    "_first_lines",
    "_guess_layout",
    "_layout_notes",
    "_looks_like_header",
    "_pick_price_column",
    "_records",
    "_value_columns",
    "default_price_columns",
    "nonprice_message",
    "sniff",
    "_Scan",
    "_cr_only",
    "_ragged",
    "_scan",
    "_scan_quoted",
    "_text_stream",
    "_dmy_formats",
    "_first_bad",
    "_multi_format",
    "_parse_dates",
    "_parse_dates_block",
    "_resolve_date_format",
    "_Lines",
    "_col_ref",
    "_numbers",
    "_quote",
    "_to_numbers",
    "_ambiguous_example",
    "_apply_nan_policy",
    "_combined_name",
    "_d",
    "_dates",
    "_fmt_td",
    "_load_many",
    "_long_to_wide",
    "_match_columns",
    "_order_report",
    "_read_frame",
    "_value_notes",
    "_wide",
    "lines_from",
    "load_prices",
]
