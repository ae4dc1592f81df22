"""Regimes tab: the live regime filter. A replay feeds the fitted result's observations tick by tick
to the current backend's online filter (backend.hmm_online_filter: the PyO3 incremental object, or
the gRPC StreamHmmFilter stream) with the fitted parameters fixed; the price shading and the stacked
probabilities follow the filter as it goes. When the replay ends its probabilities are compared with
the batch filtered probabilities of the fit (they are the same numbers)."""

from __future__ import annotations

import logging
import time

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSpinBox

from hft_lab.ui.views.base import Param
from hft_lab.ui.views.regimes_plots import regime_colors
from hft_lab.ui.views.regimes_state import RegimesState
from hft_lab.ui.widgets import spin

log = logging.getLogger("hft_lab.ui.regimes")


class RegimesLive(RegimesState):
    """Part of RegimesView (mixed in): see regimes.py."""

    _live = None  # the backend's online filter while a replay runs
    replay_state = "idle"  # "running", "stopped", "finished" or "error: …"

    def _build_live_group(self) -> QGroupBox:
        box = QGroupBox("Live regime filter (replay)")
        f = QFormLayout(box)
        self.replay_speed = spin(QSpinBox(), 1, 10_000_000, 500, step=100)
        self.replay_speed.setSuffix(" ticks/s")
        self.replay_start = QPushButton("Start")
        self.replay_start.setToolTip(
            "Replay the fitted observations tick by tick through the backend's online filter (fixed parameters)"
        )
        self.replay_stop = QPushButton("Stop")
        self.replay_start.setEnabled(False)
        self.replay_stop.setEnabled(False)
        row = QHBoxLayout()
        row.addWidget(self.replay_start)
        row.addWidget(self.replay_stop)
        self.replay_label = QLabel("Fit first: the replay filters with the fitted parameters.")
        self.replay_label.setWordWrap(True)
        self.declare(f, Param("replay_speed", self.replay_speed, "Speed", in_params=False))
        f.addRow(row)
        f.addRow(self.replay_label)
        self._replay_timer = QTimer(self)
        self._replay_timer.setInterval(16)
        self._replay_timer.timeout.connect(self._replay_step)
        self.replay_start.clicked.connect(self.start_replay)
        self.replay_stop.clicked.connect(lambda: self.stop_replay())
        return box

    @property
    def replaying(self) -> bool:
        return self._live is not None

    def start_replay(self) -> None:
        """Open the current backend's online filter with the fitted parameters and start feeding it."""
        if self.result is None or self.result_x is None or self.replaying or self.running:
            return
        try:
            res = self.runner.router.resolve(wait=False)  # GUI thread: no health wait
            self._live = res.backend.hmm_online_filter(self.result.model)
            self._live_backend = res.backend.name
        except Exception as e:  # the reason reaches the user
            self._live = None
            self.replay_state = f"error: {e}"
            self.replay_label.setText(f"Error: {e}")
            return
        k = self.result.n_states
        self._replay_parts: list[np.ndarray] = []
        self.live_probs = np.empty((0, k))
        self._replay_pos = 0
        self._replay_t0 = time.perf_counter()
        self._draw_live(full=True)
        self._replay_timer.start()
        self.replay_state = "running"
        self.update_buttons()
        self.replay_stop.setEnabled(True)

    def stop_replay(self, state: str = "stopped") -> None:
        """Stop the replay (Stop, new data, a new run): the filter is closed; what it produced stays
        on show until the view changes."""
        if not hasattr(self, "_replay_timer"):
            return
        self._replay_timer.stop()
        if self._live is None:
            return
        try:
            self._live.close()
        except Exception as e:  # a stream already gone: nothing left to close
            log.debug("closing the live filter: %s", e)
        self._live = None
        self.replay_state = state
        self.replay_stop.setEnabled(False)
        self.update_buttons()
        if self.result is not None and self.live_probs is not None:
            self._draw_prices(self.result, regime_colors(self.result.n_states))  # the legend's shares too
        n = len(self.live_probs) if self.live_probs is not None else 0
        total = len(self.result_x) if self.result_x is not None else 0
        self._replay_status(state, n, total)

    def _replay_status(self, state: str, n: int, total: int) -> None:
        """The replay label (and the status line) once the replay has ended."""
        live = self.live_probs
        if state == "finished" and self.result is not None and live is not None:
            batch = np.asarray(self.result.filtered)
            same = batch.shape == live.shape and bool(np.array_equal(batch, live))
            diff = float(np.max(np.abs(batch - live))) if batch.shape == live.shape else float("nan")
            verdict = "identical to the batch filtered probabilities" if same else f"max |Δ| vs the batch filter {diff:.3g}"
            self.replay_label.setText(f"Finished: {n:,} ticks filtered via {self._live_backend}, {verdict}.")
        elif state == "stopped":
            self.replay_label.setText(f"Stopped at tick {n:,} of {total:,} (via {self._live_backend}).")
        else:
            self.replay_label.setText(f"Replay {state}.")
        self.set_status(f"Live regime filter: {self.replay_label.text()[:1].lower()}{self.replay_label.text()[1:]}")

    def _replay_step(self) -> None:
        """One frame: every tick due at the requested speed since the start goes to the filter."""
        x, live = self.result_x, self._live
        if x is None or live is None:  # the timer runs only while a replay is open
            return
        n = len(x)
        due = int((time.perf_counter() - self._replay_t0) * self.replay_speed.value() + 1e-6) + 1
        lo = self._replay_pos
        hi = min(n, max(due, lo))
        if hi <= lo:
            return
        try:
            probs = np.asarray(live.update(x[lo:hi]))
        except Exception as e:
            log.warning("live regime filter failed: %s", e)
            self.replay_label.setText(f"Error: {e}")
            self.stop_replay(f"error: {e}")
            return
        self._replay_parts.append(probs)
        self.live_probs = np.concatenate(self._replay_parts) if len(self._replay_parts) > 1 else probs
        self._replay_parts = [self.live_probs]
        self._replay_pos = hi
        self._draw_live()
        p = probs[-1]
        k = int(np.argmax(p))
        rate = hi / max(time.perf_counter() - self._replay_t0, 1e-9)
        text = f"Tick {hi:,}/{n:,} via {self._live_backend} ({rate:,.0f} ticks/s): regime {k + 1}, P = {p[k]:.2f}"
        self.replay_label.setText(text)
        self.set_status(f"Live regime filter: {text[:1].lower()}{text[1:]}")
        if hi >= n:
            self.stop_replay("finished")

    def _draw_live(self, full: bool = False) -> None:
        """The shading and the probabilities of the ticks filtered so far."""
        colors = regime_colors(self.result.n_states)
        if full or self._shade is None:
            self._draw_prices(self.result, colors)
            self._draw_posteriors(self.result, colors)
            return
        path = self.shown_path()
        if self._shade is not None and len(path):
            lut = np.array([(*c, self.SHADE_ALPHA) for c in colors], dtype=np.uint8)
            self._shade.setImage(lut[path][None, :, :], autoLevels=False)
            self._fit_shading()
        self._render_posteriors()
