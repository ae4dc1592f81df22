"""Price file import (hft_lab.data.csv_import): loading."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ..samples import Dataset
from .cells import (
    _DMY_RE,
    _column_date_formats,
    _date_families,
    _default_ohlcv_prices,
    asset_from_filename,
    column_fields,
    default_name,
)
from .dates import _first_bad, _parse_dates, _resolve_date_format
from .encoding import _normalise_encoding
from .model import (
    BAD_CELLS,
    DATE_FORMATS,
    DELIMITERS,
    ENCODINGS,
    FIELD_LABELS,
    LAYOUTS,
    MAX_BYTES,
    NA_TOKENS,
    NAN_POLICIES,
    READ_CHUNK_ROWS,
    AmbiguousDateError,
    BadCellError,
    CsvImportError,
    CsvSniff,
    ImportResult,
)
from .numbers import _col_ref, _Lines, _numbers, _quote
from .scan import _scan, _text_stream
from .sniffing import _pick_price_column, nonprice_message, sniff


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
