"""pyqtgraph set-up shared by the views (PySide6 binding, colours, large-series settings)."""

from __future__ import annotations

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
import PySide6  # noqa: F401,E402  (pyqtgraph must see PySide6 first)
import pyqtgraph as pg  # noqa: E402

pg.setConfigOptions(antialias=False, background="w", foreground="k")

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


def make_plot(title: str = "", left: str = "") -> pg.PlotWidget:
    w = pg.PlotWidget(title=title)
    p = w.getPlotItem()
    p.showGrid(x=True, y=True, alpha=0.2)
    if left:
        p.setLabel("left", left)
    p.setDownsampling(auto=True, mode="peak")
    p.setClipToView(True)
    p.addLegend(offset=(10, 10))
    return w


def pen(name: str, width: float = 1.0, style=None):
    kw = {"color": COLORS[name], "width": width}
    if style is not None:
        kw["style"] = style
    return pg.mkPen(**kw)
