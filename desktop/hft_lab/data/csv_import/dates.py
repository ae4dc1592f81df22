"""Price file import (hft_lab.data.csv_import): dates."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from .cells import _MON_FORMATS
from .model import DATE_FORMATS, CsvImportError

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
