"""File dialogs that start where the user last saved (or in the home folder), never in the
program's own folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

KEY = "files/last_dir"


def _settings() -> QSettings:
    return QSettings("HFT Arbitrage Lab", "hft-lab")


def last_dir() -> Path:
    d = _settings().value(KEY)
    if d:
        p = Path(str(d))
        if p.is_dir():
            return p
    return Path.home()


def remember_dir(path: str | Path) -> None:
    p = Path(path)
    _settings().setValue(KEY, str(p if p.is_dir() else p.parent))


def save_file_name(parent: QWidget | None, title: str, default_name: str, filters: str) -> str:
    """The save dialog: starts in the last used folder (or home) with `default_name`; the chosen
    folder is remembered. Adds the first filter's extension when the user typed none."""
    start = str(last_dir() / default_name)
    path, chosen = QFileDialog.getSaveFileName(parent, title, start, filters)
    if not path:
        return ""
    if not Path(path).suffix:
        import re

        m = re.search(r"\*(\.[A-Za-z0-9]+)", chosen or filters)
        if m:
            path += m.group(1)
    remember_dir(path)
    return path


def existing_dir(parent: QWidget | None, title: str) -> str:
    folder = QFileDialog.getExistingDirectory(parent, title, str(last_dir()))
    if folder:
        remember_dir(folder)
    return folder
