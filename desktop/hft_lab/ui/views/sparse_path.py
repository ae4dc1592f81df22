"""Sparse Portfolio tab: the λ path (basket size and half-life along a grid of λ for lasso /
elastic net with a chosen target), its plots with the draggable current-λ line, and the λ
controls kept in step (spin box, log slider, path line)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from hft_lab.analysis.sparse import lambda_path, round_sig
from hft_lab.ui.plots import LogAxis
from hft_lab.ui.views.base import Param, ViewMixin, via
from hft_lab.ui.views.sparse_plots import REGRESSION, SLIDER_STEPS_PER_DECADE, LogSpinBox, _pg_plot
from hft_lab.ui.widgets import fmt
from hft_lab.ui.worker import TaskOutcome

PATH_HINT = "Choose lasso or elastic net with a target asset and press “λ path”."


class SparsePath(ViewMixin):
    """Part of SparseView (mixed in): see sparse.py."""

    # the view's state and widgets this part uses (SparseView.__init__ / _build make them)
    path: Any
    path_params: dict
    path_outcome: TaskOutcome | None
    path_shown: Any  # Signal(object)
    _pending_path: dict
    _hl_index: np.ndarray
    lam: LogSpinBox
    lam_slider: QSlider
    alpha: QDoubleSpinBox
    result_tabs: QTabWidget

    if TYPE_CHECKING:  # the view's and the other parts'

        def run(self, from_path: bool = False) -> int | None: ...
        def method_name(self) -> str: ...
        def set_method(self, method: str) -> None: ...
        def target_name(self) -> str | None: ...
        def set_target(self, name: str | None) -> None: ...
        def _prices_for_run(self) -> Any: ...
        def _draw_path(self) -> None: ...
        @staticmethod
        def _half_life_text(h: float) -> str: ...

    # ---- layout ----
    def _build_path_tab(self) -> QWidget:
        self.path_info = QLabel(PATH_HINT)
        self.path_info.setWordWrap(True)
        self.run_on_click = QCheckBox("Run when a point is clicked")
        self.run_on_click.setChecked(True)
        self.declare(None, Param("run_on_click", self.run_on_click, None, in_params=False))
        head = QHBoxLayout()
        head.addWidget(self.path_info, 1)
        head.addWidget(self.run_on_click)
        self.nonzero_plot = _pg_plot("Assets in the basket", "assets", axis=LogAxis("bottom"))
        self.half_life_plot = _pg_plot(
            "Half-life of the spread (bars; not shown where it does not mean-revert)",
            "half-life",
            "λ",
            axis=LogAxis("bottom"),
            log_y=True,
        )
        self.half_life_plot.setXLink(self.nonzero_plot)
        for p in (self.nonzero_plot, self.half_life_plot):
            p.getPlotItem().getAxis("left").setWidth(56)  # same width: the linked x axes line up
        self.nonzero_plot.getPlotItem().setLogMode(x=True)
        self.half_life_plot.getPlotItem().setLogMode(x=True, y=True)
        self.lam_lines = []
        for p in (self.nonzero_plot, self.half_life_plot):
            line = pg.InfiniteLine(
                angle=90,
                movable=True,
                pen=pg.mkPen(214, 39, 40, width=1.5, style=Qt.PenStyle.DashLine),
                hoverPen=pg.mkPen(214, 39, 40, width=3),
            )
            line.setToolTip("Current λ: drag to change it")
            line.setVisible(False)
            p.addItem(line, ignoreBounds=True)
            line.sigPositionChangeFinished.connect(self._lam_line_moved)
            self.lam_lines.append(line)
        path_split = QSplitter(Qt.Orientation.Vertical)
        path_split.addWidget(self.nonzero_plot)
        path_split.addWidget(self.half_life_plot)
        path_w = QWidget()
        pl = QVBoxLayout(path_w)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addLayout(head)
        pl.addWidget(path_split, 1)
        return path_w

    def clear_path(self) -> None:
        self.path = self.path_outcome = None
        self.path_params = {}
        for p in (self.nonzero_plot, self.half_life_plot):
            for item in list(p.getPlotItem().listDataItems()):
                p.getPlotItem().removeItem(item)
        self.path_nonzero_item = self.path_half_life_item = None
        for line in self.lam_lines:
            line.setVisible(False)
        self.path_info.setText(PATH_HINT)

    def path_parameters(self) -> dict:
        """The keyword arguments of sparse_lambda_path for the next path."""
        p = self.params()
        return {
            "target": p["target"],
            "n_lambdas": p["n_lambdas"],
            "alpha": p["alpha"] if self.method_name() == "elastic_net" else 1.0,
            "tolerance": p["tolerance"],
            "max_iterations": p["max_iterations"],
        }

    def _lam_changed(self, v: float) -> None:
        self.lam_slider.blockSignals(True)
        if v > 0:
            self.lam_slider.setValue(int(round(math.log10(v) * SLIDER_STEPS_PER_DECADE)))
        else:
            self.lam_slider.setValue(self.lam_slider.minimum())
        self.lam_slider.blockSignals(False)
        for line in self.lam_lines:
            line.setVisible(v > 0 and self.path is not None)
            if v > 0:
                line.setValue(math.log10(v))

    def _slider_moved(self, s: int) -> None:
        self.lam.setValue(round_sig(10.0 ** (s / SLIDER_STEPS_PER_DECADE), 3))

    def _lam_line_moved(self, line) -> None:
        self.lam.setValue(round_sig(10.0 ** line.value(), 3))

    # ---- run ----
    def run_path(self) -> int | None:
        if self.method_name() not in REGRESSION or self.target_name() is None:
            self.set_status("The λ path needs lasso or elastic net with a target asset (not Auto).", error=True)
            return None
        params = self.path_parameters()
        self._pending_path = {"params": params, "method": self.method_name()}
        return self.start(
            lambda_path,
            self._prices_for_run(),
            params,
            done=self._path_finished,
            signal=self.path_shown,
            status=f"Computing the λ path for {params['target']} ({params['n_lambdas']} values of λ)…",
        )

    def _path_finished(self, out: TaskOutcome) -> None:
        self.path_outcome = out
        self.path = out.value["path"]
        self.path_params = dict(self._pending_path["params"], method=self._pending_path["method"])
        self._draw_path()
        lp = self.path
        self.set_status(
            f"λ path{via(out)} in {out.seconds * 1e3:.1f} ms: {len(lp.lambdas)} values of λ, "
            f"{int(lp.nonzero.min())}–{int(lp.nonzero.max())} assets. Click a point to use its λ."
        )
        self.result_tabs.setCurrentIndex(1)

    def _nonzero_clicked(self, item, points, ev=None) -> None:
        if len(points):
            self.select_path_point(int(points[0].index()))

    def _half_life_clicked(self, item, points, ev=None) -> None:
        if len(points):
            self.select_path_point(int(self._hl_index[int(points[0].index())]))

    def select_path_point(self, i: int) -> None:
        """Use the i-th λ of the path (with the path's method, target and α); runs if asked."""
        if self.path is None or not 0 <= i < len(self.path.lambdas):
            return
        pp = self.path_params
        self.set_method(pp["method"])
        self.set_target(pp["target"])
        if pp["method"] == "elastic_net":
            self.alpha.setValue(pp["alpha"])
        self.lam.setValue(float(self.path.lambdas[i]))
        lp = self.path
        self.set_status(
            f"λ = {fmt(float(lp.lambdas[i]), 6)}: {int(lp.nonzero[i])} assets, half-life "
            f"{self._half_life_text(float(lp.half_life[i]))}, ADF {fmt(float(lp.adf_statistic[i]), 4)}."
        )
        if self.run_on_click.isChecked() and not self.running:
            self.run(from_path=True)
