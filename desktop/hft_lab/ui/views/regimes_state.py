"""Regimes tab: what the parts of RegimesView (regimes_data, regimes_plots, regimes_walk,
regimes_live) share, declared once for the type checker. `RegimesState` is the base of each part:
at run time an empty class (annotations only, no attributes, no methods), for mypy the view's
base, `AnalysisView`, plus the widgets and state that RegimesView builds and the methods one part
calls on another (declared under TYPE_CHECKING, so at run time the real ones are the only ones)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QListWidget,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTabWidget,
)

from hft_lab.ui.views.base import ViewMixin

if TYPE_CHECKING:
    from hft_lab.ui.plots import BarAxis, LabPlot
    from hft_lab.ui.widgets import StatsTable


class RegimesState(ViewMixin):
    SHADE_ALPHA: int
    LIVE_REFRESH_MS: int

    # ---- data (regimes_data) ----
    source: QComboBox
    asset_list: QListWidget
    dataset_label: QLabel
    n_points: QSpinBox
    data_seed: QSpinBox
    ann: QDoubleSpinBox
    vol_window: QSpinBox
    feature_boxes: dict[str, QCheckBox]
    _store_dataset: Any
    prices: np.ndarray | None
    observations: np.ndarray | None
    series_returns: np.ndarray | None
    series_names: list[str]
    dates: np.ndarray | None
    intraday: bool
    true_states: np.ndarray | None
    _series_inputs: Callable[[], dict]
    _run_inputs: Callable[[], dict]
    _result_inputs: Callable[[], dict]

    # ---- the model and the fit on show ----
    covariance: QComboBox
    result_params: dict
    result_offset: int
    result_features: list[str]
    result_x: np.ndarray | None
    result_seconds: float
    result_backend: str
    total_iterations: int
    live_probs: np.ndarray | None

    # ---- plots and tables (regimes_plots) ----
    view_tabs: QTabWidget
    price_plot: LabPlot
    post_plot: LabPlot
    ll_plot: LabPlot
    heat: LabPlot
    axis: BarAxis
    post_axis: BarAxis
    regime_table: QTableWidget
    stats: StatsTable
    diff_label: QLabel
    log_scale: QCheckBox
    show_filtered: QRadioButton
    show_smoothed: QRadioButton
    _shade: pg.ImageItem | None
    _post_img: pg.ImageItem | None
    _diff_img: pg.ImageItem | None

    if TYPE_CHECKING:  # methods one part calls on another (defined in the part named)

        def _describe_features(self, *_) -> None: ...  # regimes.py

        def features(self) -> tuple[np.ndarray, list[str], int]: ...  # regimes_data

        def features_for(self, action: str) -> tuple[np.ndarray, list[str], int]: ...  # regimes_data

        def readout_head(self, bar: int) -> list[str] | None: ...  # regimes_plots

        def feature_description(self, names: list[str], offset: int) -> str: ...  # regimes_data

        def shown_path(self) -> np.ndarray: ...  # regimes_plots

        def _draw_prices(self, r, colors) -> None: ...  # regimes_plots

        def _fit_shading(self, *_) -> None: ...  # regimes_plots

        def _draw_posteriors(self, r, colors) -> None: ...  # regimes_plots

        def _render_posteriors(self) -> None: ...  # regimes_plots

        def _clear_results(self) -> None: ...  # regimes_plots

        def _clear_walk(self) -> None: ...  # regimes_walk

        def stop_replay(self, state: str = "stopped") -> None: ...  # regimes_live

        @property
        def replaying(self) -> bool: ...  # regimes_live
