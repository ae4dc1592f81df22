"""Data for the views: the bundled sample prices, seeded synthetic generators, CSV import and
result export. (The Qt-side shared dataset, DatasetStore, is in hft_lab.data.store.)"""

from .csv_import import AmbiguousDateError, BadCellError, CsvImportError, CsvSniff, ImportResult, load_prices, sniff
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
