"""`AnalysisView`: the base of every analysis tab (after Orange3's ConcurrentWidgetMixin and
PyMeasure's declared parameters).

It owns what every tab has: the left panel (input groups in a scroll area, then the Run/Cancel
row, the busy bar, the status line and the export row, via `widgets.side_panel`), the task
lifecycle on the view's `TaskRunner` (start, cancel, stale results dropped, progress and partial
results of the current task only, the error/cancel status line), CSV/JSON export through the one
writer of `hft_lab.data.export` (so `read_result_csv` / `result_from_document` read it back),
the parameters saved in QSettings, and the hover readout line under the plots.

A tab declares each parameter once with `Param` (its `params()` key, its widget, its form row,
its QSettings key), writes its task function (hft_lab.analysis, Qt-free, gets a `TaskContext` as
`ctx`), and how to show a result (the `done` callback of `start`).

Export errors are `ExportError` (a ValueError) everywhere.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, SignalInstance
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hft_lab.data.export import SessionItem, export_result_csv, export_result_json
from hft_lab.ui.widgets import busy_bar, export_buttons, side_panel, status_label
from hft_lab.ui.worker import TaskOutcome, TaskRunner

log = logging.getLogger("hft_lab.ui.views")

ERROR_COLOR = "#c62828"


class Refused(Exception):
    """A run step refusing to start: `str(e)` goes on the status line (red when `error`)."""

    def __init__(self, message: str, error: bool = True):
        super().__init__(message)
        self.error = error


_P = ParamSpec("_P")
_R = TypeVar("_R")
_V = TypeVar("_V", bound="AnalysisView")


def refusable(method: Callable[Concatenate[_V, _P], _R]) -> Callable[Concatenate[_V, _P], _R | None]:
    """A view method (a run) that may raise `Refused`: the reason goes on the status line and the
    method returns None (nothing started)."""

    @functools.wraps(method)
    def wrapper(self: _V, *args: _P.args, **kwargs: _P.kwargs) -> _R | None:
        try:
            return method(self, *args, **kwargs)
        except Refused as e:
            self.set_status(str(e), error=e.error)
            return None

    return wrapper


class ExportError(ValueError):
    """Nothing to export (no result yet) or an export that cannot be written: the one export
    error of every tab."""


def via(out: TaskOutcome) -> str:
    """' on <backend>' of an outcome ('' when unknown)."""
    return f" on {out.backend_name}" if out.backend_name else ""


def note(out: TaskOutcome) -> str:
    """' (<fallback note>)' of an outcome ('' without one)."""
    return f" ({out.note})" if out.note else ""


@dataclass
class Param:
    """One parameter, declared once.

    key: its name in `params()` (and the QSettings key unless `setting` says otherwise);
    widget: the input; label: its form row label ("" for a row of its own, None when the view
    places the widget itself); setting: the QSettings key ("" = not saved: data-source widgets,
    whose restoring would regenerate or reload data); read: how `params()` reads it (default:
    a spin box's value, a check box's state, a combo box's item data or text); in_params: False
    for a saved setting that is not a task parameter (a display option)."""

    key: str
    widget: QWidget
    label: str | None = ""
    setting: str | None = None
    read: Callable[[], Any] | None = None
    in_params: bool = True

    def value(self) -> Any:
        if self.read is not None:
            return self.read()
        w = self.widget
        if isinstance(w, (QAbstractSpinBox, QAbstractSlider)) and hasattr(w, "value"):
            return w.value()
        if isinstance(w, QAbstractButton):
            return w.isChecked()
        if isinstance(w, QComboBox):
            d = w.currentData()
            return d if d is not None else w.currentText()
        raise TypeError(f"parameter {self.key!r}: give `read` for a {type(w).__name__}")

    @property
    def settings_key(self) -> str:
        return self.key if self.setting is None else self.setting


class AnalysisView(QWidget):
    result_shown = Signal(object)  # the TaskOutcome that was drawn or reported (GUI thread)

    TASK_NAME = "analysis"  # for log lines ("<TASK_NAME> failed: …")
    EXPORT_NAME = "result"  # default export file stem
    CSV_TIP = "The result as CSV tables (read back by hft_lab.data.export.read_result_csv)"
    JSON_TIP = "The full result with the data and parameters that produced it (reproducible)"
    KEEP_NOTE = "\n(The previous result is still shown.)"
    CSV_MAIN: str | None = None  # the result field whose table is the main CSV file (default: the largest)

    def __init__(self, runner: TaskRunner, store=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.store = store  # the shared DatasetStore (None: the bundled sample instead)
        self.result: Any = None  # the result on show (None: none)
        self._params: list[Param] = []
        self._tasks: dict[int, tuple[Callable[[TaskOutcome], None], SignalInstance]] = {}
        self._hover_proxies: list[pg.SignalProxy] = []
        runner.finished.connect(self._on_finished)
        runner.busy_changed.connect(self._set_busy)
        runner.progress.connect(self._on_progress)
        runner.partial.connect(self._on_partial)

    # ------------------------------------------------------------------ parameters
    def declare(self, form: QFormLayout | None, *params: Param) -> None:
        """Register parameters (in order) and add their form rows."""
        for p in params:
            self._params.append(p)
            if form is None or p.label is None:
                continue
            if p.label:
                form.addRow(p.label, p.widget)
            else:
                form.addRow(p.widget)

    def params(self) -> dict[str, Any]:
        """The task parameters, read from the widgets."""
        return {p.key: p.value() for p in self._params if p.in_params}

    def settings_widgets(self) -> dict[str, QWidget]:
        """The widgets saved and restored with the window (QSettings key -> widget)."""
        return {p.settings_key: p.widget for p in self._params if p.settings_key}

    # ------------------------------------------------------------------ layout
    def build_panel(
        self,
        inputs: list,
        *,
        extra_buttons: tuple[QPushButton, ...] = (),
        more_actions: list | None = None,
        csv_tip: str | None = None,
        json_tip: str | None = None,
        width: int = 350,
        margins: tuple[int, int, int, int] | None = None,
    ) -> QWidget:
        """The left panel: `inputs` in the scroll area; below it Run / Cancel (and extra_buttons),
        the busy bar, the status line, the export row and `more_actions`."""
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        for b in (self.run_button, *extra_buttons, self.cancel_button):
            buttons.addWidget(b)
        self.busy_bar = busy_bar()
        self.status = status_label()
        self.export_csv_button, self.export_json_button, export_row = export_buttons(
            self.CSV_TIP if csv_tip is None else csv_tip, self.JSON_TIP if json_tip is None else json_tip
        )
        actions = [buttons, self.busy_bar, self.status, export_row, *(more_actions or [])]
        self.left_panel = side_panel(inputs, actions, width=width, margins=margins)
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(self.cancel)
        self.export_csv_button.clicked.connect(lambda: self.export_dialog("csv"))
        self.export_json_button.clicked.connect(lambda: self.export_dialog("json"))
        return self.left_panel

    def hover_line(self) -> QLabel:
        """The selectable readout line under the plots (`self.hover`)."""
        self.hover = QLabel(" ")
        self.hover.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return self.hover

    def set_main(self, main: QWidget, *, above: tuple[QWidget, ...] = (), margins=None, hover: bool = True) -> None:
        """The tab's layout: the left panel, then a column taking the rest: `above` widgets, `main`
        (stretching), the hover readout line."""
        if above or hover:
            col = QVBoxLayout()
            if margins is not None:
                col.setContentsMargins(*margins)
            for w in above:
                col.addWidget(w)
            col.addWidget(main, 1)
            if hover:
                col.addWidget(self.hover_line())
            main = QWidget()
            main.setLayout(col)
        lay = QHBoxLayout(self)
        lay.addWidget(self.left_panel)
        lay.addWidget(main, 1)

    def track_hover(self, plot, readout: Callable[[float], str | None]) -> None:
        """Mouse moves over `plot` (rate-limited) show `readout(x in data coordinates)` in the
        hover line (nothing changes when it returns None)."""

        def moved(ev) -> None:
            pos = ev[0]
            if plot.sceneBoundingRect().contains(pos):
                text = readout(plot.getPlotItem().vb.mapSceneToView(pos).x())
                if text is not None:
                    self.hover.setText(text)

        self._hover_proxies.append(pg.SignalProxy(plot.scene().sigMouseMoved, rateLimit=30, slot=moved))

    # ------------------------------------------------------------------ status
    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {ERROR_COLOR};" if error else "")

    # ------------------------------------------------------------------ task lifecycle
    def run(self) -> int | None:  # pragma: no cover - every tab defines it
        raise NotImplementedError

    def start(
        self,
        fn: Callable[..., Any],
        *args: Any,
        done: Callable[[TaskOutcome], None],
        signal: SignalInstance | None = None,
        status: str | None = None,
        **kwargs: Any,
    ) -> int:
        """Run `fn(backend, *args, **kwargs, ctx=TaskContext)` off the GUI thread (a running task
        is cancelled: its result will never arrive). On success `done(outcome)` draws it; a
        failure or a cancel is shown in the status line; then `signal` (default result_shown)
        is emitted with the outcome."""
        if status is not None:
            self.set_status(status)
        tid = self.runner.start(fn, *args, **kwargs)
        self._tasks = {tid: (done, signal if signal is not None else self.result_shown)}
        self.update_buttons()
        return tid

    @property
    def running(self) -> bool:
        """A task of this view is running."""
        return bool(self._tasks) and self.runner.busy

    def cancel(self) -> None:
        """The user's Cancel: the running task stops and its result will never arrive."""
        if self.running:
            self.abandon()
            self.set_status("Cancelled.")
            self.on_cancelled()
        self._tasks = {}
        self.update_buttons()

    def abandon(self) -> None:
        """Stop the running task without a word (its data is gone, e.g. a new dataset)."""
        if self.running:
            self.runner.cancel()
        self._tasks = {}
        self.update_buttons()

    def on_cancelled(self) -> None:
        """Hook: the user cancelled the running task."""

    def on_failed(self, out: TaskOutcome) -> None:
        """Hook: the task failed or was cancelled (after the status line says so)."""

    def on_progress(self, payload: Any) -> None:
        """Hook: `ctx.progress(payload)` of the running task (GUI thread)."""

    def on_partial(self, value: Any) -> None:
        """Hook: `ctx.partial(value)` of the running task (GUI thread)."""

    def update_buttons(self) -> None:
        """Enable the actions for the current state (override to add conditions)."""
        busy = self.running
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def show_busy(self, busy: bool) -> None:
        """The busy bar runs (indeterminate) while a task runs (override for a real progress bar)."""
        self.busy_bar.setRange(0, 0 if busy else 1)

    def _set_busy(self, busy: bool) -> None:
        self.show_busy(busy)
        self.update_buttons()

    def _on_progress(self, payload: Any) -> None:
        if self._tasks:
            self.on_progress(payload)

    def _on_partial(self, value: Any) -> None:
        if self._tasks:
            self.on_partial(value)

    def _on_finished(self, out: TaskOutcome) -> None:
        entry = self._tasks.pop(out.task_id, None)
        if entry is None:
            return  # not this view's current task
        done, signal = entry
        if out.ok:
            done(out)
        else:
            self.show_failure(out)
        self.update_buttons()
        signal.emit(out)

    def show_failure(self, out: TaskOutcome) -> None:
        if out.cancelled:
            self.set_status("Cancelled.")
        else:
            kept = self.KEEP_NOTE if self.result is not None else ""
            self.set_status(f"Error{via(out)}: {out.value}{note(out)}{kept}", error=True)
            log.warning("%s failed: %s", self.TASK_NAME, out.value)
        self.on_failed(out)

    def enable_export(self, on: bool = True) -> None:
        for b in (self.export_csv_button, self.export_json_button):
            b.setEnabled(on)

    # ------------------------------------------------------------------ session and export
    def session_items(self) -> list[SessionItem]:
        """What File ▸ Export session saves of this tab ([] without a result)."""
        return []

    def result_item(
        self,
        name: str,
        *,
        parameters: dict,
        inputs: dict,
        outcome: TaskOutcome | None,
        plots: dict,
        index: Any = None,
    ) -> list[SessionItem]:
        """`session_items` of a tab with one result: [the shown result as `name`, with what
        produced it and its plots] ([] without a result)."""
        if self.result is None:
            return []
        backend = outcome.backend_name if outcome is not None else ""
        return [SessionItem(name, self.result, parameters, inputs, backend=backend, plots=plots, index=index)]

    def export_item(self) -> SessionItem:
        items = self.session_items()
        if not items:
            raise ExportError("no result to export: run a computation first")
        return items[0]

    def export_csv(self, path) -> list[Path]:
        """The result as CSV tables (hft_lab.data.export.export_result_csv); returns the files."""
        it = self.export_item()
        return export_result_csv(it.result, path, index=it.index, main_field=self.CSV_MAIN)

    def export_json(self, path) -> Path:
        """The result with its parameters and a description of its data: enough to reproduce it."""
        it = self.export_item()
        return export_result_json(it.result, path, inputs=it.inputs, parameters=it.parameters, backend=it.backend)

    def default_export_name(self, kind: str) -> str:
        return f"{self.EXPORT_NAME}.{kind}"

    def export_dialog(self, kind: str) -> None:
        from hft_lab.ui.files import save_file_name

        if not self.session_items():
            return
        up = kind.upper()
        path = save_file_name(self, f"Export {up}", self.default_export_name(kind), f"{up} files (*.{kind})")
        if not path:
            return
        try:
            out = (self.export_csv if kind == "csv" else self.export_json)(path)
        except (OSError, ValueError) as e:
            self.set_status(f"Export failed: {e}", error=True)
            return
        files = out if isinstance(out, list) else [out]
        more = f" (+ {len(files) - 1} more file{'s' if len(files) > 2 else ''})" if len(files) > 1 else ""
        self.set_status(f"Saved {files[0]}{more}.")


# The base of the parts a view is split into (mixins such as `sparse_plots.SparsePlots`): for the
# type checker it is `AnalysisView`, so a part sees the view's attributes and methods; at run time
# it is `object`, so the view's MRO has one QWidget, the view's own `AnalysisView` base.
if TYPE_CHECKING:
    ViewMixin = AnalysisView
else:
    ViewMixin = object
