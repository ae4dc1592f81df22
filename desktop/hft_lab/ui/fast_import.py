"""Faster imports of the Qt layer (issue 16: start-up). `install()` does two things, each only
where it is known to give the same result, before the app imports pyqtgraph and its own modules:

1. PySide6 checks every module imported after it (for its `from __feature__ import ...` switch)
   by reading the module's whole source with `inspect.getsource` and looking for "PySide6": ~15 %
   of the app's import time. `_mod_uses_pyside` below makes the same test on the file's bytes;
   a module without a .py file goes to PySide6's own check.

2. pyqtgraph without every Qt class created up front. PySide6 creates its Python classes lazily,
   on first use; `pyqtgraph.Qt` defeats that: it mirrors PySide6.QtCore/QtGui/QtWidgets into its
   own `pyqtgraph.Qt.QtCore`/`QtGui`/`QtWidgets` modules by copying *every* attribute
   (`_copy_attrs`: `for o in dir(src): setattr(dst, o, getattr(src, o))`), which creates all
   ~700 classes of the three modules. Here pyqtgraph gets the same three mirror modules, but
   lazy: each forwards a name it does not hold to the PySide6 module (PEP 562 module
   `__getattr__`), and while `pyqtgraph.Qt` runs the PySide6 modules list no names, so nothing
   is copied. `pg.QtCore.X` and `from pyqtgraph.Qt.QtWidgets import X` still give the PySide6
   object, and what pyqtgraph sets on its mirrors (e.g. `QtWidgets.QOpenGLWidget`) stays there.
   Only pyqtgraph 0.13/0.14 on PySide6 is handled (their mirrors are empty modules); otherwise,
   or once pyqtgraph is imported, pyqtgraph imports as usual.

`install()` runs from `hft_lab/ui/__init__.py`, i.e. before any app module imports pyqtgraph.
HFT_LAB_PLAIN_IMPORTS=1 turns both off.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import re
import sys
import types
from pathlib import Path

_MIRRORS = ("QtCore", "QtGui", "QtWidgets")
_SUPPORTED = ("0.13.", "0.14.")


def _mirror(name: str, real: types.ModuleType) -> types.ModuleType:
    mod = types.ModuleType(f"pyqtgraph.Qt.{name}", f"Lazy mirror of {real.__name__} (hft_lab.ui.fast_pyqtgraph).")

    def __getattr__(attr: str):  # noqa: N807 (PEP 562 module __getattr__)
        if attr.startswith("__") and attr.endswith("__") and attr not in ("__version__", "__version_info__"):
            raise AttributeError(attr)
        return getattr(real, attr)

    mod.__getattr__ = __getattr__  # type: ignore[method-assign]
    mod.__dir__ = lambda: sorted(set(dir(real)) | set(mod.__dict__))  # type: ignore[method-assign]
    return mod


class _Loader(importlib.abc.Loader):
    """Wraps the loader of `pyqtgraph.Qt`: while it runs, the PySide6 modules list no names."""

    def __init__(self, real: importlib.abc.Loader):
        self._real = real

    def create_module(self, spec):
        return self._real.create_module(spec)

    def exec_module(self, module) -> None:
        mods = [sys.modules[f"PySide6.{n}"] for n in _MIRRORS]
        saved = [m.__dict__.get("__dir__") for m in mods]
        try:
            for m in mods:
                m.__dict__["__dir__"] = list  # dir(module) -> []
            self._real.exec_module(module)
        finally:
            for m, d in zip(mods, saved, strict=True):
                if d is None:
                    m.__dict__.pop("__dir__", None)
                else:
                    m.__dict__["__dir__"] = d

    def __getattr__(self, name):  # anything else (resource readers, get_code…): the real loader
        return getattr(self._real, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds `pyqtgraph.Qt` once, with the real finders, and wraps its loader."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "pyqtgraph.Qt":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def _supported() -> bool:
    """pyqtgraph 0.13/0.14 whose Qt mirror modules are empty files (read, not imported)."""
    try:
        spec = importlib.util.find_spec("pyqtgraph")
        if spec is None or spec.origin is None:
            return False
        root = Path(spec.origin).parent
        m = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", (root / "__init__.py").read_text("utf-8"), re.MULTILINE)
        if m is None or not m.group(1).startswith(_SUPPORTED):
            return False
        return all((root / "Qt" / n / "__init__.py").read_text("utf-8").strip() == "" for n in _MIRRORS)
    except (OSError, ValueError, ImportError):
        return False


def _fast_feature_check() -> bool:
    """Replace PySide6's per-import source check by the same test on the file's bytes."""
    feature = sys.modules.get("PySide6.support.feature")
    original = getattr(feature, "_mod_uses_pyside", None)
    if feature is None or original is None or getattr(original, "_hft_lab_fast", False):
        return False

    def _mod_uses_pyside(module) -> bool:
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.endswith(".py"):
            return original(module)  # extension, frozen, namespace…: PySide6's own answer
        try:
            with open(path, "rb") as f:
                return b"PySide6" in f.read()
        except OSError:
            return original(module)

    _mod_uses_pyside._hft_lab_fast = True  # type: ignore[attr-defined]
    setattr(feature, "_mod_uses_pyside", _mod_uses_pyside)  # (PySide6 looks it up at each import)
    return True


def install() -> dict[str, bool]:
    """Both speed-ups (before pyqtgraph is first imported); says which were set up."""
    if os.environ.get("HFT_LAB_PLAIN_IMPORTS") == "1":
        return {"feature_check": False, "pyqtgraph": False}
    import PySide6.QtCore  # noqa: F401  (PySide6's import hook exists from here on)

    return {"feature_check": _fast_feature_check(), "pyqtgraph": _lazy_pyqtgraph_mirrors()}


def _lazy_pyqtgraph_mirrors() -> bool:
    """Set up the lazy mirrors before pyqtgraph is first imported. True if it did."""
    if "pyqtgraph" in sys.modules:
        return False
    if os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6") != "PySide6":
        return False
    if not getattr(sys, "frozen", False) and not _supported():  # a bundle: the pyqtgraph it was tested with
        return False

    real = {n: importlib.import_module(f"PySide6.{n}") for n in _MIRRORS}
    for n in _MIRRORS:
        sys.modules[f"pyqtgraph.Qt.{n}"] = _mirror(n, real[n])
    sys.meta_path.insert(0, _Finder())
    return True
