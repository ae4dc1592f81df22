"""Price file import (hft_lab.data.csv_import): column references, line numbers, cells to numbers."""

from __future__ import annotations

from typing import Any, overload

import numpy as np
import pandas as pd

from .cells import _norm, _plain_number
from .model import _NA_SET, BadCellError, CsvImportError

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
