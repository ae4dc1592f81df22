"""Scan tab: the universe (the active dataset, or the bundled sample without a store, and the
assets chosen from it) and the exports (CSV tables, a JSON record)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem

from hft_lab.analysis.pairs import curves_frame, ranking_columns, selections_frame, walk_forward_flat, window_columns
from hft_lab.data import load_sample_prices
from hft_lab.data.export import SessionItem, export_result_json
from hft_lab.ui.views.base import ExportError

log = logging.getLogger("hft_lab.ui.scan")


def asset_list() -> QListWidget:
    """The universe's assets, each with a check box."""
    w = QListWidget()
    w.setMinimumHeight(120)
    w.setToolTip("The assets of the active dataset in the universe (every pair of the checked ones is scanned)")
    return w


class ScanData:
    """Part of ScanView (mixed in): self.store, self.assets (asset_list()), self.scan_result,
    self.wf, self.detail are set by the view."""

    # set by ScanView
    store: Any
    assets: QListWidget
    universe_label: QLabel
    scan_result: Any
    wf: Any
    heat: Any
    equity_plot: Any
    dd_plot: Any
    _last: Any
    _wf_params: dict
    _wf_backend: str
    _wf_dates: Any
    filters: Callable[[], dict]

    # ---- universe ----
    def frame(self) -> pd.DataFrame:
        """All prices of the active dataset (its selection in File ▸ Select range and assets), or
        the bundled S&P 500 sample without a store."""
        return self.store.selected_prices() if self.store is not None else load_sample_prices().prices

    def dataset_name(self) -> str:
        return self.store.dataset.name if self.store is not None else load_sample_prices().name

    def fill_assets(self) -> None:
        """The asset list of the current dataset (checked state kept by name; new names checked)."""
        before = {self.assets.item(k).text(): self.assets.item(k).checkState() for k in range(self.assets.count())}
        self.assets.blockSignals(True)
        self.assets.clear()
        try:
            names = [str(c) for c in self.frame().columns]
        except (OSError, ValueError) as e:
            log.warning("dataset unavailable: %s", e)
            names = []
        for n in names:
            it = QListWidgetItem(n)
            it.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(before.get(n, Qt.CheckState.Checked))
            self.assets.addItem(it)
        self.assets.blockSignals(False)
        self.update_universe_label()

    def checked_assets(self) -> list[str]:
        return [
            self.assets.item(k).text()
            for k in range(self.assets.count())
            if self.assets.item(k).checkState() == Qt.CheckState.Checked
        ]

    def set_checked(self, names, checked: bool = True) -> None:
        """Check (or uncheck) the named assets; `names` None: all of them."""
        want = None if names is None else set(names)
        for k in range(self.assets.count()):
            it = self.assets.item(k)
            if want is None or it.text() in want:
                it.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def universe(self) -> tuple[np.ndarray, list[str], np.ndarray | None]:
        """(prices time × assets, names, dates or None) of the checked assets, rows where any of
        them is missing dropped (a pairs scan needs aligned prices)."""
        names = self.checked_assets()
        if len(names) < 2:
            raise ValueError(f"check at least 2 assets for a pairs scan ({len(names)} checked)")
        df = self.frame()[names].dropna(how="any")
        if len(df) < 3:
            raise ValueError(f"the checked assets have only {len(df)} rows with a price for every asset")
        dates = df.index.to_numpy() if isinstance(df.index, pd.DatetimeIndex) else None
        return np.ascontiguousarray(df.to_numpy(dtype=np.float64)), names, dates

    def update_universe_label(self) -> None:
        n = len(self.checked_assets())
        self.universe_label.setText(f"{self.dataset_name()}: {n} of {self.assets.count()} assets, {n * (n - 1) // 2:,} pairs")

    # ---- session and export ----
    def session_items(self) -> list[SessionItem]:
        items = []
        backend = self._last.backend_name if self._last is not None else ""
        if self.scan_result is not None:
            s = self.scan_result
            items.append(
                SessionItem(
                    "pairs_scan",
                    s.result,
                    parameters={**s.options, **self.filters(), "executor": s.executor, "shards": s.shards},
                    inputs={"dataset": self.dataset_name(), "assets": list(s.asset_names), "n": int(s.prices.shape[0])},
                    backend=backend,
                    plots={"pvalue_heatmap": self.heat},
                )
            )
        if self.wf is not None:
            items.append(
                SessionItem(
                    "walk_forward",
                    walk_forward_flat(self.wf),
                    parameters=dict(self._wf_params),
                    inputs={"dataset": self.dataset_name(), "assets": list(self.wf.asset_names)},
                    backend=self._wf_backend,
                    plots={"equity": self.equity_plot, "drawdown": self.dd_plot},
                    index=pd.DatetimeIndex(self._wf_dates) if self._wf_dates is not None else None,
                )
            )
        return items

    def export_csv(self, path) -> list[Path]:
        """`<stem>.csv` the ranking table; `<stem>.pvalues.csv` the p-value matrix (asset names on
        both axes); with a walk-forward: `<stem>.walk_forward.csv` (per bar: equity and drawdown
        out of sample and in sample), `<stem>.windows.csv` (per window), `<stem>.selections.csv`
        (the pairs chosen per window and in sample). Floats at full precision, NaN as empty."""
        if self.scan_result is None and self.wf is None:
            raise ExportError("no result to export: run a scan or a walk-forward first")
        path = Path(path)
        if path.suffix.lower() != ".csv":
            path = path.with_name(path.name + ".csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        stem = path.with_suffix("")
        out: list[Path] = []

        def write(df: pd.DataFrame, p: Path, index: bool = False) -> None:
            df.to_csv(p, index=index, float_format="%.17g", na_rep="")
            out.append(p)

        if self.scan_result is not None:
            r = self.scan_result.result
            write(pd.DataFrame(ranking_columns(r)), path)
            names = list(r.asset_names)
            write(
                pd.DataFrame(r.pvalue_matrix, index=pd.Index(names, name="asset"), columns=names),
                Path(f"{stem}.pvalues.csv"),
                True,
            )
        if self.wf is not None:
            first = path if self.scan_result is None else Path(f"{stem}.walk_forward.csv")
            write(curves_frame(self.wf, self._wf_dates), first)
            write(pd.DataFrame(window_columns(self.wf, self._wf_dates)), Path(f"{stem}.windows.csv"))
            write(selections_frame(self.wf), Path(f"{stem}.selections.csv"))
        return out

    def export_json(self, path) -> Path:
        """The scan result and the walk-forward (whichever exist) with their parameters and inputs."""
        items = self.session_items()
        if not items:
            raise ExportError("no result to export: run a scan or a walk-forward first")
        # the result dataclasses themselves (result_from_document rebuilds them)
        result = {it.name: (self.wf if it.name == "walk_forward" else it.result) for it in items}
        params = {it.name: it.parameters for it in items}
        inputs = {it.name: it.inputs for it in items}
        return export_result_json(result, path, inputs=inputs, parameters=params, backend=items[0].backend)
