"""Price file import (hft_lab.data.csv_import): cell classification (head only, pure Python)."""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from .model import _DATE_NAMES, _FIELD_NAMES, _NA_SET, _NONPRICE_NAMES

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


def default_name(path: Path) -> str:
    n = path.name
    for ext in (".gz", ".bz2", ".xz"):
        if n.lower().endswith(ext):
            n = n[: -len(ext)]
    for ext in (".csv", ".tsv", ".txt", ".dat", ".psv"):
        if n.lower().endswith(ext):
            n = n[: -len(ext)]
    return n or path.name
