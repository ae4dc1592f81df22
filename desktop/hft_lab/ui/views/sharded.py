"""The executor rows and the shard progress bar of the tabs that run on shards (issue 18: Sweep,
Scan): which executor runs the shards (the app's backend, this process, the app's gRPC server or
a Ray cluster), a note saying what that means (or why Ray is not available), and a progress bar
counting finished shards."""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QProgressBar, QSpinBox

from hft_lab.cluster import ray_available
from hft_lab.ui.views.base import ERROR_COLOR, Param, Refused, ViewMixin
from hft_lab.ui.widgets import spin
from hft_lab.ui.worker import TaskOutcome

EXECUTOR_NOTES = {
    "backend": "Shards run on the backend chosen in the toolbar (PyO3 here, or its gRPC server).",
    "inprocess": "Shards run in this process on the Rust core (PyO3).",
    "grpc": "Shards go to the app's gRPC server (choose gRPC in the toolbar).",
}


class ShardedRun(ViewMixin):
    executor_note: QLabel
    progress_bar: QProgressBar

    def declare_executor(self, form: QFormLayout, executors: dict[str, str], what: str) -> None:
        """`self.executor` (a combo of `executors`), `self.address` (the Ray address, RAY_ADDRESS by
        default), `self.shards` (0 = auto) and `self.executor_note`; `what` names what is cut into
        shards."""
        self.executor = QComboBox()
        for k, label in executors.items():
            self.executor.addItem(label, k)
        self.address = QLineEdit(os.environ.get("RAY_ADDRESS", ""))
        self.address.setPlaceholderText("RAY_ADDRESS, host:6379, ray://host:10001, auto or local")
        self.shards = spin(QSpinBox(), 0, 1_000_000, 0)
        self.shards.setSpecialValueText("auto")
        self.shards.setToolTip(f"Shards {what} cut into (auto: 4 per worker)")
        self.declare(
            form,
            Param("executor", self.executor, "Run on"),
            Param("address", self.address, "Ray address", read=lambda: self.address.text().strip()),
            Param("shards", self.shards, "Shards"),
        )
        self.executor_note = QLabel("")
        self.executor_note.setWordWrap(True)
        form.addRow(self.executor_note)
        self.executor.currentIndexChanged.connect(self.update_executor_note)

    def add_shard_progress(self) -> None:
        """The shard progress bar, under the left panel's status line (hidden until a run starts)."""
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v / %m shards")
        self.progress_bar.setVisible(False)
        self.left_panel.layout().addWidget(self.progress_bar)
        self.update_executor_note()

    def update_executor_note(self) -> None:
        kind = self.executor.currentData()
        self.address.setEnabled(kind == "ray")
        ok, text = True, EXECUTOR_NOTES.get(kind, "")
        if kind == "ray":
            ok, why = ray_available()
            text = f"Ray {why}: shards run as Ray tasks on the cluster." if ok else why
        self.executor_note.setText(text)
        self.executor_note.setStyleSheet("" if ok else f"color: {ERROR_COLOR};")

    def executor_args(self, p: dict[str, Any]) -> dict[str, Any]:
        """The executor keywords of a run (executor, address, shards); `Refused` saying why the
        chosen executor cannot run (Ray not installed or not reachable)."""
        if p["executor"] == "ray":
            ok, why = ray_available()
            if not ok:
                raise Refused(why)
        self.show_shard_progress(0, 0)
        return {"executor": p["executor"], "address": p["address"], "shards": p["shards"]}

    def show_shard_progress(self, done: int, total: int) -> None:
        bar = self.progress_bar
        bar.setFormat("%v / %m shards")
        bar.setRange(0, total)
        bar.setValue(done)
        bar.setVisible(True)

    def hide_progress(self) -> None:
        self.progress_bar.setVisible(False)

    def on_failed(self, out: TaskOutcome) -> None:
        self.hide_progress()

    def on_cancelled(self) -> None:
        self.hide_progress()
