"""Tabs built when first shown (issue 16: start-up).

`LazyTabs` owns the pages of a QTabWidget that are registered with `add(key, label, factory)`:
each starts as an empty placeholder page (the tab and its label are there at once), and the real
widget is constructed by `factory()` the first time its tab becomes current, or the first time
code asks for it with `get(key)`. The built widget then *replaces* the placeholder in the same
position, so afterwards the tab widget holds the real view exactly as if it had been added
eagerly: `tabs.setCurrentWidget(view)`, `tabs.currentWidget() is view`, `tabs.indexOf(view)`
all behave as before. The current tab is never left as a placeholder.

Factories import their view module themselves, so a tab nobody opens costs neither its
construction nor its imports (pyqtgraph exporters, the benchmark runner, pandas-heavy helpers…).
This module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication, QTabWidget, QWidget


class _Placeholder(QWidget):
    """The blank page a lazy tab shows until its view exists. If it is ever shown as the current
    page (e.g. the tab widget's signals were blocked when the tab changed), it asks for the build
    on the next turn of the event loop."""

    def __init__(self, on_shown: Callable[[_Placeholder], None]):
        super().__init__()
        self._on_shown = on_shown

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self, lambda: self._on_shown(self))


@dataclass
class _Spec:
    key: str
    label: str
    factory: Callable[[], QWidget]
    placeholder: _Placeholder
    widget: QWidget | None = None
    building: bool = False
    extra: dict = field(default_factory=dict)


class LazyTabs(QObject):
    """Lazily built pages of one QTabWidget. `on_built(key, widget)` runs once per tab, right
    after its widget replaced the placeholder (e.g. to restore its saved settings)."""

    def __init__(self, tabs: QTabWidget, on_built: Callable[[str, QWidget], None] | None = None):
        super().__init__(tabs)
        self.tabs = tabs
        self.on_built = on_built
        self._specs: dict[str, _Spec] = {}
        self._active = False

    # ---- registration ----
    def add(self, key: str, label: str, factory: Callable[[], QWidget], **extra) -> None:
        """A tab labelled `label` whose widget `factory()` builds on first show or first `get(key)`.
        `extra` is kept with the tab (see `keys(**match)`)."""
        if key in self._specs:
            raise ValueError(f"a tab named {key!r} is already registered")
        ph = _Placeholder(self._placeholder_shown)
        ph.setObjectName(f"lazy-tab-{key}")
        self._specs[key] = _Spec(key, label, factory, ph, extra=extra)
        self.tabs.addTab(ph, label)
        if self._active:
            self._build_current()

    def activate(self) -> None:
        """From now on the current tab is always built: build it now, and each tab as it becomes current."""
        if not self._active:
            self._active = True
            self.tabs.currentChanged.connect(self._build_current)
        self._build_current()

    # ---- queries ----
    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def keys(self, **match) -> list[str]:
        """Registered keys in tab order of registration, optionally only those whose `extra`
        values equal `match` (e.g. `keys(session=True)`)."""
        return [k for k, s in self._specs.items() if all(s.extra.get(m) == v for m, v in match.items())]

    def is_built(self, key: str) -> bool:
        return self._specs[key].widget is not None

    def built(self, **match) -> dict[str, QWidget]:
        """The tabs built so far (key -> widget), optionally filtered as in `keys()`."""
        return {k: w for k in self.keys(**match) if (w := self._specs[k].widget) is not None}

    def get(self, key: str) -> QWidget:
        """The tab's widget, built now if it was not yet."""
        spec = self._specs[key]
        if spec.widget is not None:
            return spec.widget
        if spec.building:
            raise RuntimeError(f"the {spec.label!r} tab was asked for while it is being built")
        spec.building = True
        busy = self.tabs.isVisible()  # the user opened it: a wait cursor while it is built
        if busy:
            QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            widget = spec.factory()
        finally:
            spec.building = False
            if busy:
                QApplication.restoreOverrideCursor()
        spec.widget = widget
        self._swap_in(spec, widget)
        if self.on_built is not None:
            self.on_built(key, widget)
        return widget

    # ---- internals ----
    def _swap_in(self, spec: _Spec, widget: QWidget) -> None:
        """Put `widget` where the placeholder is, keeping the current tab and emitting no
        currentChanged (nothing changed for the user)."""
        tabs = self.tabs
        ph = spec.placeholder
        was_current = tabs.currentWidget() is ph
        blocked = tabs.blockSignals(True)
        updates = tabs.updatesEnabled()
        tabs.setUpdatesEnabled(False)
        try:
            i = tabs.indexOf(ph)
            tooltip, enabled = tabs.tabToolTip(i), tabs.isTabEnabled(i)
            current = widget if was_current else tabs.currentWidget()
            tabs.insertTab(i, widget, spec.label)
            tabs.removeTab(tabs.indexOf(ph))
            tabs.setTabToolTip(i, tooltip)
            tabs.setTabEnabled(i, enabled)
            if current is not None:
                tabs.setCurrentWidget(current)
        finally:
            tabs.setUpdatesEnabled(updates)
            tabs.blockSignals(blocked)
        ph.deleteLater()

    def _spec_of(self, page: QWidget | None) -> _Spec | None:
        if isinstance(page, _Placeholder):
            for s in self._specs.values():
                if s.placeholder is page:
                    return s
        return None

    def _build_current(self, *_) -> None:
        spec = self._spec_of(self.tabs.currentWidget())
        if spec is not None and not spec.building:
            self.get(spec.key)

    def _placeholder_shown(self, ph: _Placeholder) -> None:
        if self._active and self.tabs.currentWidget() is ph:
            self._build_current()
