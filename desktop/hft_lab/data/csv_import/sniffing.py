"""Price file import (hft_lab.data.csv_import): sniffing."""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from .cells import (
    _NUM_COMMA,
    _NUM_DOT,
    _THOUSANDS_COMMA_RE,
    _THOUSANDS_DOT_RE,
    _cell_kind,
    _column_date_formats,
    _column_kind,
    _default_ohlcv_prices,
    _norm,
    _strip_currency,
    asset_from_filename,
    column_fields,
)
from .encoding import _decode_head
from .model import (
    _DATE_NAMES,
    _ID_NAMES,
    _PRICE_NAMES,
    _TICKER_NAMES,
    DELIMITERS,
    MAX_BYTES,
    PREVIEW_ROWS,
    SNIFF_ROWS,
    CsvImportError,
    CsvSniff,
)
from .numbers import _col_ref
from .opening import _check_file, _read_head

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
