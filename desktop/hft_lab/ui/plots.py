"""pyqtgraph set-up shared by the views: the PySide6 binding, colours, and `LabPlot`, the one plot
widget every tab uses.

Every `LabPlot` has the same right-click menu (on the plot area and on its axes): View all,
Export PNG…, Export SVG…, Export data (CSV)…, Copy image. Export failures are shown to the user
(a message box) and logged, never only on stderr. An empty plot shows a message instead of
placeholder axes. Axes: `NumberAxis` (plain numbers with thousands separators, never "1e+06" or a
"(x0.001)" scale), `PercentAxis` (fractions as %), `BarAxis` (x in bars, labelled with dates when
the series has them), `LogAxis`/`PriceAxis` (log mode labelled with plain numbers)."""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
import PySide6  # noqa: F401,E402  (pyqtgraph must see PySide6 first)
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel, QMenu, QMessageBox  # noqa: E402

pg.setConfigOptions(antialias=False, background="w", foreground="k")

log = logging.getLogger("hft_lab.ui.plots")

COLORS = {
    "price": (30, 30, 30),
    "mean": (31, 119, 180),
    "band": (31, 119, 180, 90),
    "z": (44, 44, 44),
    "threshold": (214, 39, 40),
    "exit": (120, 120, 120),
    "long": (44, 160, 44),
    "short": (214, 39, 40),
}

EMPTY_TEXT = "No data yet: press Run."


def pen(name: str, width: float = 1.0, style=None):
    kw = {"color": COLORS[name], "width": width}
    if style is not None:
        kw["style"] = style
    return pg.mkPen(**kw)


# ----------------------------------------------------------------------------------------------
# axes
# ----------------------------------------------------------------------------------------------


def plain_number(x: float, spacing: float | None = None) -> str:
    """A tick label: thousands separators, as many decimals as the tick spacing needs, no
    exponent unless the number is astronomically large or tiny."""
    if not math.isfinite(x):
        return ""
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1e15 or ax < 1e-6:
        return f"{x:.3g}"
    if spacing is not None and spacing > 0:
        dec = max(0, min(8, -int(math.floor(math.log10(spacing) + 1e-9))))
    else:
        dec = max(0, min(8, 3 - int(math.floor(math.log10(ax)))))
    return f"{x:,.{dec}f}"


class NumberAxis(pg.AxisItem):
    """Plain numbers: no SI-prefix scale factor, no exponent."""

    def __init__(self, orientation: str = "left", *a, **kw):
        super().__init__(orientation, *a, **kw)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values, scale, spacing):
        if self.logMode:
            return self.logTickStrings(values, scale, spacing)
        return [plain_number(v * scale, spacing * scale) for v in values]


class PercentAxis(NumberAxis):
    """Fractions shown as percentages (0.05 → 5%); plain numbers when `percent` is False."""

    percent = True

    def tickStrings(self, values, scale, spacing):
        if not self.percent:
            return super().tickStrings(values, scale, spacing)
        sp = spacing * scale * 100
        dec = max(0, min(4, -int(math.floor(math.log10(sp) + 1e-9)))) if sp > 0 else 0
        return [f"{v * scale * 100:,.{dec}f}%" for v in values]


class LogAxis(NumberAxis):
    """Log-mode axis labelled with plain numbers at 1, 2 and 5 × 10^k (only 10^k when that is too
    many), instead of pyqtgraph's crowded 2·10¹ 3·10¹ … labels."""

    def logTickStrings(self, values, scale, spacing):
        xs = [10.0 ** float(v) * scale for v in values]

        def mantissa(x: float) -> float:
            return x / 10.0 ** math.floor(math.log10(x) + 1e-9)

        def nice(x: float, ms) -> bool:
            return x > 0 and any(abs(mantissa(x) - m) < 1e-6 * m for m in ms)

        ms = (1.0, 2.0, 5.0)
        if sum(nice(x, ms) for x in xs) > 8:
            ms = (1.0,)
        return [
            (f"{x:,.{max(0, -int(math.floor(math.log10(x))))}f}" if 1e-4 <= x < 1e12 else f"{x:.0e}") if nice(x, ms) else ""
            for x in xs
        ]


class PriceAxis(NumberAxis):
    """Left axis whose log-mode labels read as prices (250, 1,000) rather than 2.5·10²."""

    def __init__(self, *a, **kw):
        super().__init__("left", *a, **kw)

    def logTickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            x = 10.0**v * scale
            out.append(f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}")
        return out


def intraday(dates: np.ndarray) -> bool:
    """True when some date has a time of day (not all at midnight)."""
    s = dates.astype("datetime64[s]")
    return bool(np.any(s != s.astype("datetime64[D]")))


def date_of(dates, i: int, is_intraday: bool = False) -> str:
    if dates is None or not 0 <= i < len(dates):
        return ""
    if is_intraday:
        return str(dates[i].astype("datetime64[s]")).replace("T", " ")
    return str(dates[i].astype("datetime64[D]"))


class BarAxis(NumberAxis):
    """Bottom axis in bars that shows dates (and times, for intraday bars) when the series has them."""

    def __init__(self, *a, **kw):
        super().__init__("bottom", *a, **kw)
        self._dates: np.ndarray | None = None
        self.bar_days = 1.0  # typical bar length in days (median spacing of the dates)
        self.intraday = False

    @property
    def dates(self) -> np.ndarray | None:
        return self._dates

    @dates.setter
    def dates(self, d) -> None:
        if d is not None:
            d = np.asarray(d)
            if not np.issubdtype(d.dtype, np.datetime64):
                d = None  # bar numbers only
        self._dates = d
        self.bar_days, self.intraday = 1.0, False
        if d is not None and len(d) > 1:
            sec = np.diff(d.astype("datetime64[s]").astype(np.int64))
            self.bar_days = max(float(np.median(sec)), 1.0) / 86400.0
            self.intraday = intraday(d)
        self.picture = None
        self.update()

    def tickStrings(self, values, scale, spacing):
        if self._dates is None or len(self._dates) == 0:
            return super().tickStrings(values, scale, spacing)
        days = spacing * self.bar_days  # daily bars: the same thresholds as in bars
        unit = "Y" if days >= 500 else ("M" if days >= 40 else ("D" if days >= 1 or not self.intraday else "m"))
        out = []
        for v in values:
            i = int(round(v))
            if not 0 <= i < len(self._dates):
                out.append("")
            elif unit == "m":
                out.append(str(self._dates[i].astype("datetime64[m]"))[5:].replace("T", " "))
            else:
                out.append(str(self._dates[i].astype(f"datetime64[{unit}]")))
        return out


# ----------------------------------------------------------------------------------------------
# the plot widget
# ----------------------------------------------------------------------------------------------


class LabLegend(pg.LegendItem):
    """A legend with a background (readable over the data) that draws nothing while empty."""

    def paint(self, p, *args):
        if self.items:
            super().paint(p, *args)


class LabViewBox(pg.ViewBox):
    """A ViewBox whose right-click menu is the plot's export menu (always enabled)."""

    # No QTimer or other Python-owned QObject here: such an object in a reference cycle is
    # destroyed by Python's garbage collector, which can run inside a Qt call that holds the
    # signal-slot mutex (e.g. a disconnect) and deadlock in ~QObject (seen in the test suite).

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.owner: LabPlot | None = None

    def setMenuEnabled(self, enableMenu=True):  # noqa: N802 (Qt naming)
        super().setMenuEnabled(True)  # our menu (export) is always there

    def raiseContextMenu(self, ev):  # noqa: N802
        if self.owner is None:
            return
        menu = self.owner.context_menu()
        menu.popup(ev.screenPos().toPoint())

    def addItem(self, item, *a, **kw):  # noqa: N802
        super().addItem(item, *a, **kw)
        if self.owner is not None:
            if isinstance(item, pg.PlotDataItem):  # data may come later (setData), e.g. the live replay
                item.sigPlotChanged.connect(self.owner.update_empty)
            elif isinstance(item, pg.ImageItem):  # e.g. the posteriors, rendered after the item is added
                item.sigImageChanged.connect(self.owner.update_empty)
            self.owner.update_empty()

    def removeItem(self, item):  # noqa: N802
        super().removeItem(item)
        if self.owner is not None:
            self.owner.update_empty()


def _has_data(item) -> bool:
    if isinstance(item, pg.PlotDataItem):
        x = item.xData  # the raw data (getData() would compute the downsampled view: slow on 1M points)
        return x is not None and len(x) > 0
    if isinstance(item, pg.ScatterPlotItem):
        return len(item.data) > 0
    if isinstance(item, pg.ImageItem):
        return item.image is not None
    if isinstance(item, pg.BarGraphItem):
        r = item.boundingRect()
        return r.width() > 0 or r.height() > 0
    return False


class LabPlot(pg.PlotWidget):
    """The plot of every tab: right-click export menu, empty-state message, plain-number axes."""

    def __init__(
        self,
        title: str = "",
        left: str = "",
        axisItems: dict | None = None,
        legend: bool = True,
        empty_text: str = EMPTY_TEXT,
        parent=None,
    ):
        axes = {"left": NumberAxis("left"), "bottom": NumberAxis("bottom")}
        axes.update(axisItems or {})
        vb = LabViewBox()
        super().__init__(parent=parent, title=title, viewBox=vb, axisItems=axes)
        vb.owner = self
        self.export_name = _slug(title) or "plot"
        # a plot drawn as a picture (e.g. stacked posteriors rendered as an image) gives its data here
        self.table_provider: Callable[[], Any] | None = None  # -> pandas.DataFrame, the data behind the plot
        p = self.getPlotItem()
        if left:
            p.setLabel("left", left)
        self.legend = None
        if legend:
            self.legend = LabLegend(offset=(10, 10), brush=pg.mkBrush(255, 255, 255, 215), pen=pg.mkPen(170, 170, 170))
            self.legend.setParentItem(p.vb)
            p.legend = self.legend
        self._empty = QLabel(empty_text, self)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self._empty.setStyleSheet("color: #777; background: transparent;")
        self._empty.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._axes_hidden: list[str] = []
        self.update_empty()

    # ---- empty state ----
    def set_empty_text(self, text: str) -> None:
        self._empty.setText(text)

    def data_items(self) -> list:
        return [it for it in self.getPlotItem().vb.addedItems if _has_data(it)]

    def is_empty(self) -> bool:
        return not self.data_items()

    def update_empty(self, *_) -> None:
        empty = self.is_empty()
        p = self.getPlotItem()
        if empty and not self._axes_hidden:
            self._axes_hidden = [a for a in ("left", "bottom") if p.getAxis(a).isVisible()]
            for a in self._axes_hidden:
                p.hideAxis(a)
        elif not empty and self._axes_hidden:
            for a in self._axes_hidden:
                p.showAxis(a)
            self._axes_hidden = []
        self._empty.setVisible(empty)
        self._place_empty()

    def _place_empty(self) -> None:
        r = self.rect()
        self._empty.setGeometry(10, 30, max(r.width() - 20, 10), max(r.height() - 40, 10))

    def resizeEvent(self, ev):  # noqa: N802
        super().resizeEvent(ev)
        if hasattr(self, "_empty"):
            self._place_empty()

    # ---- the right-click menu ----
    def context_menu(self) -> QMenu:
        """The menu right-click shows (tests drive the same actions)."""
        m = QMenu(self)
        m.setObjectName("plot-context-menu")
        m.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)  # one menu per right-click, freed when closed
        m.addAction("View all", self.getPlotItem().vb.autoRange)
        m.addSeparator()
        has = not self.is_empty()
        for text, kind in (("Export PNG…", "png"), ("Export SVG…", "svg"), ("Export data (CSV)…", "csv")):
            a = m.addAction(text, functools.partial(self.export_dialog, kind))
            a.setEnabled(has)
        a = m.addAction("Copy image", self.copy_image)
        a.setEnabled(has)
        return m

    def export(self, path) -> Path:
        """Write the plot to `path` (.png/.svg: the picture; .csv: the plotted data)."""
        from hft_lab.data.export import export_plot

        path = Path(path)
        if path.suffix.lower() == ".csv":
            return self.export_data_csv(path)
        return export_plot(self, path)

    def export_dialog(self, kind: str) -> str:
        from hft_lab.ui.files import save_file_name

        filters = {"png": "PNG image (*.png)", "svg": "SVG image (*.svg)", "csv": "CSV (*.csv)"}[kind]
        path = save_file_name(self, "Export plot", f"{self.export_name}.{kind}", filters)
        if not path:
            return ""
        try:
            out = self.export(path)
        except Exception as e:  # any failure reaches the user, with its reason
            log.warning("plot export to %s failed: %s", path, e)
            QMessageBox.warning(self, "Export failed", f"Could not export the plot to {path}:\n{e}")
            return ""
        log.info("plot exported: %s", out)
        return str(out)

    def copy_image(self) -> None:
        QApplication.clipboard().setPixmap(self.grab())

    def export_data_csv(self, path) -> Path:
        """The plotted data: one row per x when every series shares the same x (a `date` column
        too when the axis has dates), else one row per point (series, x, y)."""
        import pandas as pd

        if self.table_provider is not None:
            df = self.table_provider()
            if df is None or len(df) == 0:
                raise ValueError("the plot has no data to export as a table")
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(path, float_format="%.17g")
            return path
        series: list[tuple[str, np.ndarray, np.ndarray]] = []  # (name, x, y) of each curve / bar set
        images: list[tuple[str, np.ndarray]] = []  # (name, values) of each heat map
        for k, it in enumerate(self.data_items()):
            name = _item_name(it) or f"series {k + 1}"
            if isinstance(it, pg.ImageItem):
                img = np.asarray(it.image)
                if img.ndim == 2:  # a heat map (RGB(A) images are shading, not data)
                    images.append((name, img.astype(np.float64)))
                continue
            if isinstance(it, pg.BarGraphItem):
                o = it.opts
                xs = o.get("x") if o.get("x") is not None else o.get("x0")
                top = next((o.get(k) for k in ("height", "y1", "y") if o.get(k) is not None), np.nan)
                y = np.atleast_1d(np.asarray(top, dtype=np.float64))
                x = np.arange(len(y), dtype=np.float64) if xs is None else np.atleast_1d(np.asarray(xs, dtype=np.float64))
                n = max(len(x), len(y))
                x, y = np.broadcast_to(x, (n,)), np.broadcast_to(y, (n,))
            elif isinstance(it, pg.PlotDataItem):
                x, y = it.xData, it.yData  # all the data, not the downsampled/clipped view
            else:
                x, y = it.getData()
            series.append((name, np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)))
        if not series and not images:
            raise ValueError("the plot has no data to export as a table")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if images and not series:
            name, img = images[0]
            pd.DataFrame(img).to_csv(path, index_label="row")
            return path
        axis = self.getPlotItem().getAxis("bottom")
        dates = getattr(axis, "dates", None)
        same_x = all(len(s[1]) == len(series[0][1]) and np.array_equal(s[1], series[0][1]) for s in series)
        if same_x:
            x = series[0][1]
            df = pd.DataFrame({"x": x})
            names = _unique([s[0] for s in series])
            for nm, s in zip(names, series):
                df[nm] = s[2]
        else:
            rows = [pd.DataFrame({"series": s[0], "x": s[1], "y": s[2]}) for s in series]
            df = pd.concat(rows, ignore_index=True)
        if dates is not None and len(dates):
            i = np.round(df["x"].to_numpy()).astype(np.int64)
            ok = (i >= 0) & (i < len(dates)) & np.isclose(df["x"].to_numpy(), i)
            d = np.full(len(df), np.datetime64("NaT"), dtype=dates.dtype)
            d[ok] = dates[i[ok]]
            df.insert(df.columns.get_loc("x"), "date", d)
            df = df.rename(columns={"x": "bar"})
        df.to_csv(path, index=False, float_format="%.17g")
        return path


def _item_name(it) -> str:
    try:
        n = it.name()
    except Exception:
        n = None
    if not n:
        n = getattr(it, "opts", {}).get("name") if isinstance(getattr(it, "opts", None), dict) else None
    return str(n) if n else ""


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n} ({seen[n]})")
        else:
            seen[n] = 1
            out.append(n)
    return out


def _slug(s: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-").lower()[:40]


def make_plot(
    title: str = "", left: str = "", axisItems: dict | None = None, legend: bool = True, empty_text: str = EMPTY_TEXT
) -> LabPlot:
    w = LabPlot(title, left, axisItems=axisItems, legend=legend, empty_text=empty_text)
    p = w.getPlotItem()
    p.showGrid(x=True, y=True, alpha=0.2)
    p.setDownsampling(auto=True, mode="peak")
    p.setClipToView(True)
    return w
