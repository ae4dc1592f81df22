"""Data for the views: the bundled sample prices and seeded synthetic generators."""

from .samples import Dataset, load_sample_prices, resources_dir
from .synthetic import cointegrated_basket, ou_series, regime_switching_returns

__all__ = [
    "Dataset",
    "load_sample_prices",
    "resources_dir",
    "ou_series",
    "cointegrated_basket",
    "regime_switching_returns",
]
