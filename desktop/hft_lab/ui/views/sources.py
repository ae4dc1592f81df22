"""The data-source choice shared by the tabs that work on a whole price table (Portfolio, Sparse
Portfolio): the store's active dataset (or, without a store, the bundled S&P 500 sample), or a
seeded synthetic universe."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox

from hft_lab.data import load_sample_prices
from hft_lab.ui.views.base import ViewMixin

log = logging.getLogger("hft_lab.ui.views")


def active_label(name: str) -> str:
    """The source entry of the store's active dataset."""
    return f"Active dataset ({name})"


class DatasetSource(ViewMixin):
    """Mixin of an AnalysisView (uses self.store; sets self.source, self._sample, self._active).

    A store change reloads the data when the view uses the store, cancels a running task and clears
    the result (it belongs to the old data); the view supplies `has_shown_result()`,
    `clear_for_new_data(replaced)` and `reload()`."""

    STORE_TASK = "computation"  # "the running <STORE_TASK> was cancelled"
    PRESS_RUN = "Press Run."

    if TYPE_CHECKING:  # what the view supplies

        def has_shown_result(self) -> bool: ...
        def clear_for_new_data(self, replaced: bool) -> None: ...
        def reload(self) -> None: ...

    def make_source(self, sample_label: str, synthetic_label: str) -> QComboBox:
        """The source combo box: "active" (with a store) or "sample", then "synthetic"."""
        self._active: pd.DataFrame | None = None  # store.selected_prices(), kept until the store changes
        self._sample: pd.DataFrame | None = None
        self._store_dataset = self.store.dataset if self.store is not None else None
        if self.store is not None:
            self.store.changed.connect(self._on_store_changed)
        self.source = src = QComboBox()
        src.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        src.setMinimumContentsLength(16)
        if self.store is not None:
            src.addItem(active_label(self.store.dataset.name), "active")
            src.setItemData(0, self.store.describe(), Qt.ItemDataRole.ToolTipRole)
        else:
            try:
                self._sample = load_sample_prices().prices
                src.addItem(sample_label, "sample")
            except OSError as e:  # broken install: the synthetic data still works
                log.warning("sample data unavailable: %s", e)
        src.addItem(synthetic_label, "synthetic")
        return src

    @property
    def synthetic(self) -> bool:
        return self.source.currentData() == "synthetic"

    @property
    def uses_store(self) -> bool:
        """The prices come from the active dataset of the store."""
        return self.source.currentData() == "active"

    def source_frame(self) -> pd.DataFrame | None:
        """All prices of the chosen non-synthetic source (the store's selection, or the sample);
        None for synthetic data."""
        if self.uses_store:
            if self._active is None:
                self._active = self.store.selected_prices()
            return self._active
        if self.source.currentData() == "sample":
            return self._sample
        return None

    def _frame(self) -> pd.DataFrame:
        """All prices of the chosen dataset or sample (not synthetic)."""
        frame = self.source_frame()
        if frame is None:
            raise ValueError("no price data: the bundled sample is unavailable")
        return frame

    def _on_store_changed(self) -> None:
        """The active dataset or its selection changed: if this view uses it, reload and clear the
        result, which belongs to the old data (nothing is recomputed), and say so."""
        replaced = self.store.dataset is not self._store_dataset
        self._store_dataset = self.store.dataset
        self._active = None
        i = self.source.findData("active")
        if i >= 0:
            self.source.setItemText(i, active_label(self.store.dataset.name))
            self.source.setItemData(i, self.store.describe(), Qt.ItemDataRole.ToolTipRole)
        if not self.uses_store:
            return
        gone = []
        if self.running:
            self.abandon()
            gone.append(f"the running {self.STORE_TASK} was cancelled")
        if self.has_shown_result():
            gone.append("the previous result was cleared (it belongs to the old data)")
        self.clear_for_new_data(replaced)
        self.reload()
        what = "Active dataset replaced" if replaced else "Active dataset selection changed"
        tail = f"; {' and '.join(gone)}" if gone else ""
        self.set_status(f"{what}: {self.store.describe()}{tail}. {self.PRESS_RUN}")
