"""Results out: plots (PNG/SVG), result tables (CSV), reproducible runs (JSON), whole sessions.

CSV layout (decision: sidecar files, so every file is one plain rectangular table that Excel,
pandas or R open directly). `export_result_csv(result, "run.csv")` writes:

* ``run.csv`` - the main table: the result's arrays that share one length, for the group of
  equal-length arrays holding the most values (for per-bar results: one row per bar). A 2-D
  array (e.g. HMM posteriors, T x K) gives one column per column: ``posteriors[0]``, ...
  With ``index=`` (dates or bar numbers of the input) it is the first column ("date" or "bar").
* ``run.summary.csv`` - columns ``name,value,type``: the result type, every scalar field
  (type int/float/bool/str/none), and one ``table`` row per further table.
* ``run.<field>.csv`` - one more table per other group of equal-length arrays, named after the
  group's first field: e.g. ``hmm.means.csv`` (means, variances, stds, transition_matrix[...],
  start_probabilities) or ``backtest.trade_entries.csv`` (the trades).

`read_result_csv("run.csv")` reads the three kinds back into a dict (arrays as NumPy arrays).
Floats are written with full precision (repr), so a round trip is exact; NaN is an empty cell.

JSON (`export_result_json`) holds everything needed to reproduce a run: app version, time (UTC),
backend, the parameters, a description of the inputs (dataset name, assets, date range, length,
source file or generator with its parameters, a SHA-256 of the price matrix, and the prices
themselves when small), and the full result (`result.to_dict()`: arrays as lists, NaN as null,
infinities as "inf"/"-inf"). Standard JSON: no NaN literals.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import json
import math
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hft_lab.lazy_import import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")  # imported on first use (issue 16: start-up)

SMALL_INPUT_VALUES = 10_000  # prices are embedded in the JSON up to this many values
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


# ----------------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------------


def export_plot(target: Any, path: str | os.PathLike, width: int | None = None) -> Path:
    """Save a plot as PNG (or another image format) or SVG, chosen by the file extension.

    target: a pyqtgraph PlotWidget, GraphicsLayoutWidget, PlotItem (or any GraphicsItem or
    scene); or any other QWidget (a panel of several plots), saved as an image of the widget
    (PNG/JPEG only). width: image width in pixels (default: the plot's size on screen)."""
    import pyqtgraph as pg
    import pyqtgraph.exporters as pgx
    from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QWidget

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS + (".svg",):
        raise ValueError(f"cannot tell the format from {path.name!r}: use .png or .svg")
    item = None
    if isinstance(target, pg.PlotWidget):
        item = target.getPlotItem()
    elif isinstance(target, pg.GraphicsLayoutWidget):
        item = target.ci
    elif isinstance(target, pg.GraphicsView):
        item = target.scene()
    elif isinstance(target, (QGraphicsItem, QGraphicsScene)):
        item = target
    elif isinstance(target, QWidget):
        if ext == ".svg":
            raise ValueError("SVG export needs a single plot; a whole panel can be saved as PNG")
        path.parent.mkdir(parents=True, exist_ok=True)
        pix = target.grab()
        if pix.isNull() or not pix.save(str(path)):
            raise OSError(f"could not write {path}")
        return path
    else:
        raise TypeError(f"cannot export a {type(target).__name__}: pass a plot widget or plot item")
    rect = item.sceneRect() if isinstance(item, QGraphicsScene) else item.sceneBoundingRect()
    if rect.width() < 1 or rect.height() < 1:
        raise ValueError("the plot has no size yet (it was never shown): nothing to export")
    path.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".svg":
        _patch_svg_exporter()
        pgx.SVGExporter(item).export(str(path))
    else:
        ex = pgx.ImageExporter(item)
        w = int(width) if width else int(round(rect.width()))
        ex.parameters()["width"] = max(w, 16)
        ex.export(str(path))
    if not path.exists() or path.stat().st_size == 0:
        raise OSError(f"could not write {path}")
    return path


def _patch_svg_exporter() -> None:
    """pyqtgraph 0.14's SVG clean-up (correctCoordinates) reads path data as "x,y" pairs and fails
    on the close-path command "Z" that recent Qt writes (ValueError: not enough values to unpack;
    pyqtgraph issue #3485). Drop the "Z" before it runs: Qt's closed paths already end on their
    first point, and SVG fills close open paths by themselves, so the drawing is the same."""
    import importlib

    svgmod = importlib.import_module("pyqtgraph.exporters.SVGExporter")  # the module, not the class

    orig = svgmod.correctCoordinates
    if getattr(orig, "_hft_lab_patched", False):
        return

    def correct(node, defs, item, options):
        for p in node.getElementsByTagName("path"):
            d = p.getAttribute("d")
            if "Z" in d or "z" in d:
                p.setAttribute("d", re.sub(r"\s*[Zz]\s*", " ", d).strip())
        return orig(node, defs, item, options)

    # dynamic attributes (a marker on the function, a module-level function replaced): setattr says so
    setattr(correct, "_hft_lab_patched", True)
    setattr(svgmod, "correctCoordinates", correct)


# ----------------------------------------------------------------------------------------------
# results as plain values
# ----------------------------------------------------------------------------------------------


def result_fields(result: Any) -> dict[str, Any]:
    """The fields of a result dataclass (NumPy arrays kept), or a flat mapping as given."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    if isinstance(result, Mapping):
        return dict(result)
    raise TypeError(f"expected a result dataclass or a mapping, got {type(result).__name__}")


def _is_result(v: Any) -> bool:
    return dataclasses.is_dataclass(v) and not isinstance(v, type)


def _result_type(result: Any) -> Any:
    if _is_result(result):
        return type(result).__name__
    if isinstance(result, Mapping) and result and all(_is_result(v) or v is None for v in result.values()):
        return {k: (type(v).__name__ if v is not None else None) for k, v in result.items()}
    return type(result).__name__


def to_jsonable(v: Any, *, small: int = SMALL_INPUT_VALUES) -> Any:
    """JSON-safe form: arrays as lists, NaN as None, ±inf as "inf"/"-inf", dates as ISO strings,
    datasets and DataFrames described by describe_prices()."""
    from .samples import Dataset

    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if isinstance(v, np.ndarray):
        if v.dtype.kind in "fc":
            return _float_list(v)
        if v.dtype.kind == "M":
            return [None if pd.isna(x) else pd.Timestamp(x).isoformat() for x in v.ravel()]
        return v.tolist()
    if isinstance(v, Dataset):
        return describe_prices(v.prices, name=v.name, small=small)
    if isinstance(v, pd.DataFrame):
        return describe_prices(v, small=small)
    if isinstance(v, pd.Series):
        return describe_prices(v.to_frame(), small=small)
    if isinstance(v, pd.Index):
        return to_jsonable(np.asarray(v), small=small)
    if isinstance(v, (pd.Timestamp, _dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (pd.Timedelta, _dt.timedelta)):
        return pd.Timedelta(v).isoformat()
    if isinstance(v, enum.Enum):
        return to_jsonable(v.value, small=small)
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if _is_result(v):
        d = v.to_dict() if hasattr(v, "to_dict") else result_fields(v)
        return {k: to_jsonable(x, small=small) for k, x in d.items()}
    if isinstance(v, Mapping):
        return {str(k): to_jsonable(x, small=small) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [to_jsonable(x, small=small) for x in v]
    return repr(v)


def _float_list(a: np.ndarray) -> list:
    a = np.asarray(a, dtype=np.float64)
    if np.isfinite(a).all():
        return a.tolist()
    obj = a.astype(object)
    obj[np.isnan(a)] = None
    obj[np.isposinf(a)] = "inf"
    obj[np.isneginf(a)] = "-inf"
    return obj.tolist()


def describe_prices(df: pd.DataFrame, *, name: str | None = None, small: int = SMALL_INPUT_VALUES) -> dict[str, Any]:
    """What a run's input prices were, compactly: name, assets, range, length, source, SHA-256 of
    the values (float64, row-major) and of the index; the values themselves when at most `small`."""
    idx = df.index
    vals = np.ascontiguousarray(df.to_numpy(dtype=np.float64))
    h = hashlib.sha256(vals.tobytes())
    if isinstance(idx, pd.DatetimeIndex):
        h.update(np.ascontiguousarray(idx.asi8).tobytes())
        start, end, kind = idx[0].isoformat() if len(idx) else None, idx[-1].isoformat() if len(idx) else None, "dates"
    else:
        h.update(np.ascontiguousarray(np.asarray(idx, dtype=np.int64)).tobytes())
        start, end, kind = (int(idx[0]), int(idx[-1]), "bars") if len(idx) else (None, None, "bars")
    out: dict[str, Any] = {
        "name": name if name is not None else df.attrs.get("name", ""),
        "assets": [str(c) for c in df.columns],
        "rows": int(len(df)),
        "start": start,
        "end": end,
        "index": kind,
        "missing_values": int(np.isnan(vals).sum()),
        "sha256": h.hexdigest(),
    }
    src = df.attrs.get("source")
    if src:
        out["source"] = to_jsonable(src)
    if vals.size <= small:
        out["prices"] = {
            "index": to_jsonable(np.asarray(idx)) if kind == "bars" else [t.isoformat() for t in idx],
            "columns": {str(c): _float_list(vals[:, j]) for j, c in enumerate(df.columns)},
        }
    return out


# ----------------------------------------------------------------------------------------------
# CSV
# ----------------------------------------------------------------------------------------------


def _arrays_and_scalars(fields: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays, scalars = {}, {}
    for k, v in fields.items():
        if isinstance(v, np.ndarray) or (isinstance(v, (list, tuple)) and not _is_result(v)):
            a = np.asarray(v)
            if a.ndim == 0:
                scalars[k] = a.item()
                continue
            if a.ndim > 2:
                a = a.reshape(a.shape[0], -1)
            arrays[k] = a
        elif _is_result(v) or isinstance(v, Mapping):
            raise TypeError(f"field {k!r} is a nested result: export it separately")
        else:
            scalars[k] = v
    return arrays, scalars


def _groups(arrays: dict[str, np.ndarray]) -> list[list[str]]:
    """Fields grouped by length; the main table (most values, then longest) first."""
    by_len: dict[int, list[str]] = {}
    for k, a in arrays.items():
        by_len.setdefault(int(a.shape[0]), []).append(k)
    ordered = sorted(by_len.items(), key=lambda kv: (-sum(arrays[k].size for k in kv[1]), -kv[0]))
    return [ks for _, ks in ordered]


def _table(arrays: dict[str, np.ndarray], keys: list[str]) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    for k in keys:
        a = arrays[k]
        if a.ndim == 1:
            cols[k] = a
        else:
            for j in range(a.shape[1]):
                cols[f"{k}[{j}]"] = a[:, j]
    return pd.DataFrame(cols)


def _scalar_row(name: str, v: Any) -> tuple[str, str, str]:
    if v is None:
        return name, "", "none"
    if isinstance(v, (bool, np.bool_)):
        return name, str(bool(v)), "bool"
    if isinstance(v, (int, np.integer)):
        return name, str(int(v)), "int"
    if isinstance(v, (float, np.floating)):
        return name, repr(float(v)), "float"
    if isinstance(v, enum.Enum):
        v = v.value
    return name, str(v), "str"


def export_result_csv(result: Any, path: str | os.PathLike, index: Any = None, main_field: str | None = None) -> list[Path]:
    """Write a result as CSV tables (see the module docstring); returns the files written.

    result: a result dataclass (or a flat mapping of arrays and scalars); a mapping of several
    results (e.g. {"mr": ..., "bt": ...}) writes each to <stem>.<key>.csv. index: the dates (or
    bar numbers) of the main table's rows, written as its first column. main_field: a field whose
    group of equal-length arrays is the main table (default: the group with the most values)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path.with_name(path.name + ".csv")
    if isinstance(result, Mapping) and result and all(_is_result(v) or v is None for v in result.values()):
        out: list[Path] = []
        for k, r in result.items():
            if r is not None:
                out += export_result_csv(r, path.with_name(f"{path.stem}.{_slug(k)}.csv"), index=index)
        return out
    arrays, scalars = _arrays_and_scalars(result_fields(result))
    groups = _groups(arrays)
    if main_field is not None:
        groups.sort(key=lambda ks: main_field not in ks)  # stable: the others keep their order
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path]
    summary = [("result_type", type(result).__name__ if _is_result(result) else "mapping", "type")]
    summary += [_scalar_row(k, v) for k, v in scalars.items()]
    main = _table(arrays, groups[0]) if groups else pd.DataFrame()
    if index is not None and groups:
        ix = pd.Index(index)
        if len(ix) != len(main):
            raise ValueError(f"index has {len(ix)} entries but the main table has {len(main)} rows")
        col = "date" if isinstance(ix, pd.DatetimeIndex) else "bar"
        main.insert(0, col, ix.to_numpy())
        summary.append(("__index__", col, "index"))
    _write_table(main, path)
    for keys in groups[1:]:
        p = path.with_name(f"{path.stem}.{_slug(keys[0])}.csv")
        _write_table(_table(arrays, keys), p)
        summary.append((keys[0], p.name, "table"))
        written.append(p)
    sp = path.with_name(f"{path.stem}.summary.csv")
    pd.DataFrame(summary, columns=["name", "value", "type"]).to_csv(sp, index=False)
    written.insert(1, sp)
    return written


def _write_table(df: pd.DataFrame, path: Path) -> None:
    # repr-precision floats (exact round trip); NaN as an empty cell
    df.to_csv(path, index=False, float_format=None, na_rep="", date_format="%Y-%m-%dT%H:%M:%S")


def _slug(s: Any) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(s)).strip("._")
    return s or "item"


def read_result_csv(path: str | os.PathLike) -> dict[str, Any]:
    """Read back what export_result_csv wrote: {field: value} with NumPy arrays (2-D arrays
    rebuilt from their name[j] columns), typed scalars, and "__index__" if an index was written."""
    path = Path(path)
    sp = path.with_name(f"{path.stem}.summary.csv")
    summary = pd.read_csv(sp, dtype=str, keep_default_na=False)
    out: dict[str, Any] = {}
    index_col = None
    tables = [path]
    for name, value, typ in summary.itertuples(index=False):
        if typ == "type":
            continue
        if typ == "index":
            index_col = value
        elif typ == "table":
            tables.append(path.with_name(value))
        elif typ == "none":
            out[name] = None
        elif typ == "bool":
            out[name] = value == "True"
        elif typ == "int":
            out[name] = int(value)
        elif typ == "float":
            out[name] = float(value)
        else:
            out[name] = value
    for t in tables:
        try:
            df = pd.read_csv(t, keep_default_na=False, na_values=[""])
        except pd.errors.EmptyDataError:
            continue
        if t == path and index_col and index_col in df.columns:
            ix = df.pop(index_col)
            out["__index__"] = pd.DatetimeIndex(pd.to_datetime(ix)) if index_col == "date" else ix.to_numpy()
        multi: dict[str, dict[int, np.ndarray]] = {}
        for c in df.columns:
            m = re.match(r"^(.*)\[(\d+)\]$", c)
            if m:
                multi.setdefault(m[1], {})[int(m[2])] = df[c].to_numpy()
            else:
                out[c] = _column_values(df[c])
        for k, cols in multi.items():
            out[k] = np.column_stack([cols[j] for j in sorted(cols)]) if len(df) else np.empty((0, len(cols)))
    return out


def _column_values(s: pd.Series) -> np.ndarray:
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        return s.astype(object).to_numpy()
    return s.to_numpy()


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------


def _environment() -> dict[str, str]:
    env = {"python": sys.version.split()[0], "platform": platform.platform(), "numpy": np.__version__, "pandas": pd.__version__}
    try:
        from importlib.metadata import version

        env["PySide6"] = version("PySide6-Essentials")
    except Exception:  # not installed as a distribution (bundled app)
        pass
    return env


def _header(kind: str) -> dict[str, Any]:
    import hft_lab

    return {
        "format": f"hft-lab/{kind}",
        "format_version": 1,
        "app": "HFT Arbitrage Lab",
        "app_version": hft_lab.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def result_document(result: Any, inputs: dict | None = None, parameters: dict | None = None, backend: str = "") -> dict[str, Any]:
    """The JSON document export_result_json writes (a dict)."""
    doc = _header("result")
    doc.update(
        environment=_environment(),
        backend=str(backend),
        result_type=_result_type(result),
        parameters=to_jsonable(parameters or {}),
        inputs=to_jsonable(inputs or {}),
        result=to_jsonable(result),
    )
    return doc


def export_result_json(
    result: Any,
    path: str | os.PathLike,
    inputs: dict | None = None,
    parameters: dict | None = None,
    backend: str = "",
) -> Path:
    """Write a reproducible record of one run (see the module docstring). inputs may hold a
    Dataset or DataFrame (described, with the prices embedded only when small), names, dates..."""
    path = Path(path)
    doc = result_document(result, inputs, parameters, backend)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, allow_nan=False, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_result_json(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def result_from_document(doc: dict[str, Any]) -> Any:
    """Rebuild the result dataclass(es) of a JSON document (arrays as NumPy arrays; null in a
    float array is NaN)."""
    from hft_lab.backends import results as R

    def build(type_name: str, d: dict[str, Any]) -> Any:
        cls = getattr(R, type_name, None)
        if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
            raise ValueError(f"unknown result type {type_name!r}")
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            v = d.get(f.name)
            t = str(f.type)
            if "ndarray" in t:
                kw[f.name] = _array_from_json(v)
            elif t.startswith("tuple"):
                kw[f.name] = tuple(v or ())
            elif t.startswith("float"):
                kw[f.name] = (None if "None" in t else float("nan")) if v is None else float(v)
            else:
                kw[f.name] = v
        return cls(**kw)

    rt = doc["result_type"]
    if isinstance(rt, dict):
        return {k: (build(t, doc["result"][k]) if t else None) for k, t in rt.items()}
    return build(rt, doc["result"])


def _array_from_json(v: Any) -> np.ndarray:
    if v is None:
        return np.empty(0)
    a = np.asarray(v, dtype=object)
    flat = a.ravel().tolist()
    if any(x is None or isinstance(x, (float, str)) for x in flat):
        return np.array(v, dtype=np.float64) if a.size else np.empty(a.shape)
    return np.asarray(v)


# ----------------------------------------------------------------------------------------------
# sessions
# ----------------------------------------------------------------------------------------------


@dataclass
class SessionItem:
    """One result of a session: its name (file names derive from it), the result (a dataclass or
    a mapping of them), what produced it, and plots to save alongside (name -> plot widget)."""

    name: str
    result: Any
    parameters: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    backend: str = ""
    plots: dict = field(default_factory=dict)
    index: Any = None  # dates of the main CSV table's rows (optional)


def export_session(folder: str | os.PathLike, items: Iterable[SessionItem | dict], plot_format: str = "png") -> Path:
    """Write each item as <name>.json, <name>.csv (+ sidecars) and <name>.<plot>.png into folder,
    plus index.json listing them. Returns the path of index.json. Existing files of the same
    names are replaced."""
    folder = Path(folder)
    its = [it if isinstance(it, SessionItem) else SessionItem(**it) for it in items]
    if not its:
        raise ValueError("nothing to export: no results yet")
    for it in its:
        if it.result is None:
            raise ValueError(f"{it.name}: no result to export")
    if plot_format not in ("png", "svg"):
        raise ValueError("plot_format must be 'png' or 'svg'")
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    index = _header("session")
    index["items"] = []
    for it in its:
        base = _slug(it.name)
        k = 2
        while base.lower() in used:
            base = f"{_slug(it.name)}-{k}"
            k += 1
        used.add(base.lower())
        files = [export_result_json(it.result, folder / f"{base}.json", it.inputs, it.parameters, it.backend)]
        files += export_result_csv(it.result, folder / f"{base}.csv", index=it.index)
        for pname, widget in (it.plots or {}).items():
            files.append(export_plot(widget, folder / f"{base}.{_slug(pname)}.{plot_format}"))
        inputs = to_jsonable(it.inputs or {})
        _strip_prices(inputs)
        index["items"].append(
            {
                "name": it.name,
                "result_type": _result_type(it.result),
                "backend": it.backend,
                "parameters": to_jsonable(it.parameters or {}),
                "inputs": inputs,
                "files": [p.name for p in files],
            }
        )
    p = folder / "index.json"
    with open(p, "w", encoding="utf-8") as f:
        json.dump(index, f, allow_nan=False, ensure_ascii=False, indent=1)
        f.write("\n")
    return p


def _strip_prices(d: Any) -> None:
    """The index lists inputs without embedded price values (they are in each item's JSON)."""
    if isinstance(d, dict):
        if "sha256" in d and "prices" in d:
            d.pop("prices")
        for v in d.values():
            _strip_prices(v)
    elif isinstance(d, list):
        for v in d:
            _strip_prices(v)
