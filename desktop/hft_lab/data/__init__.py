"""Data for the views: the bundled sample prices, seeded synthetic generators, CSV import and
result export. (The Qt-side shared dataset, DatasetStore, is in hft_lab.data.store.)"""

from typing import TYPE_CHECKING

from .samples import Dataset, load_sample_prices, resources_dir
from .synthetic import (
    SYNTHETIC_DEFAULTS,
    SYNTHETIC_KINDS,
    cointegrated_basket,
    correlated_gbm,
    ou_series,
    regime_switching_returns,
    synthetic_dataset,
)

__all__ = [
    "Dataset",
    "load_sample_prices",
    "resources_dir",
    "ou_series",
    "cointegrated_basket",
    "regime_switching_returns",
    "correlated_gbm",
    "synthetic_dataset",
    "SYNTHETIC_KINDS",
    "SYNTHETIC_DEFAULTS",
    "sniff",
    "load_prices",
    "CsvSniff",
    "ImportResult",
    "CsvImportError",
    "AmbiguousDateError",
    "BadCellError",
]

# ---- start-up (issue 16): the CSV importer is loaded when first used (File ▸ Import), not with the
# package: `from hft_lab.data import load_prices` still works, through this module __getattr__.
_CSV_IMPORT_NAMES = ("sniff", "load_prices", "CsvSniff", "ImportResult", "CsvImportError", "AmbiguousDateError", "BadCellError")

if TYPE_CHECKING:
    from .csv_import import AmbiguousDateError, BadCellError, CsvImportError, CsvSniff, ImportResult, load_prices, sniff


def __getattr__(name: str):
    if name in _CSV_IMPORT_NAMES:
        from . import csv_import

        return getattr(csv_import, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
