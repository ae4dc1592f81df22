"""`lazy_module(name)`: a stand-in for a module that is imported on first attribute access
(issue 16: start-up). A module that only needs pandas inside its functions writes

    if TYPE_CHECKING:
        import pandas as pd
    else:
        pd = lazy_module("pandas")

and `pd.DataFrame(...)`, `isinstance(x, pd.Series)` work as before, but pandas is imported only
when one of them first runs, not when the module is imported (type checkers see the real module).
Nothing is put in sys.modules until then, so `"pandas" in sys.modules` still tells whether pandas
was imported."""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:  # only for names not in __slots__: the module's
        mod = self._module
        if mod is None:
            mod = self._module = importlib.import_module(self._name)
        return getattr(mod, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    return LazyModule(name)
