"""The benchmark (hft_lab.bench.runner): configuration; sizes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------

FAMILIES = ("echo", "mean_reversion", "portfolio", "hmm", "sparse")

DEFAULT_SIZES = {
    "echo": ["16", "100k", "1M"],
    "mean_reversion": ["1k", "100k", "1M"],
    "portfolio": ["20", "50", "500"],
    "hmm": ["10k", "100k"],
    "sparse": ["500x20", "2000x100", "10000x500"],
}
QUICK_SIZES = {
    "echo": ["16"],
    "mean_reversion": ["1k"],
    "portfolio": ["20"],
    "hmm": ["10k"],
    "sparse": ["500x20"],
}
SIZE_HELP = {
    "echo": "values (float64)",
    "mean_reversion": "prices",
    "portfolio": "assets (or TxN: observations x assets; default T = max(500, 2N))",
    "hmm": "observations (x n_states)",
    "sparse": "TxN: observations x assets (lasso of asset 0 on the others)",
}


@dataclass
class BenchConfig:
    operations: list[str] = field(default_factory=lambda: list(FAMILIES))
    sizes: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_SIZES.items()})
    backends: list[str] = field(default_factory=lambda: ["pyo3", "grpc"])
    calls: int = 1000  # at most, per cell; the time budget usually stops fast cells earlier
    min_calls: int = 5
    warmup: int = 3
    cell_seconds: float = 2.0  # time budget of a timed cell (once min_calls succeeded)
    concurrency: list[int] = field(default_factory=lambda: [1, 2, 4])
    concurrency_seconds: float = 1.0  # per concurrency level
    references: bool = True
    reference_min_calls: int = 3
    sections: list[str] = field(default_factory=lambda: ["transport", "stream"])  # extra (CLI) sections
    quick: bool = False
    hmm_states: int = 3
    hmm_iterations: int = 20
    sparse_lambda: float = 10.0
    sparse_tolerance: float = 1e-4
    sparse_max_iterations: int = 10_000
    seed: int = 42

    @classmethod
    def full(cls, **kw) -> BenchConfig:
        return cls(**kw)

    @classmethod
    def quick_config(cls, **kw) -> BenchConfig:
        base: dict[str, Any] = dict(
            sizes={k: list(v) for k, v in QUICK_SIZES.items()},
            calls=300,
            min_calls=3,
            warmup=2,
            cell_seconds=0.25,
            concurrency=[1, 2],
            concurrency_seconds=0.2,
            reference_min_calls=2,
            quick=True,
            hmm_iterations=10,
        )
        base.update(kw)
        return cls(**base)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BenchConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------------------------------------
# sizes
# ---------------------------------------------------------------------------------------------

_SUFFIX = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_count(s: str) -> int:
    """'16', '1k', '100k', '1M', '1.5M', '1_000' -> int."""
    t = str(s).strip().lower().replace("_", "").replace(",", "")
    if not t:
        raise ValueError("empty size")
    mult = 1
    if t[-1] in _SUFFIX:
        mult = _SUFFIX[t[-1]]
        t = t[:-1]
    try:
        v = float(t) * mult
    except ValueError:
        raise ValueError(f"size {s!r} is not a number like 16, 1k, 100k or 1M") from None
    if v < 1 or v != int(v):
        raise ValueError(f"size {s!r} must be a positive whole number")
    return int(v)


def human(n: int) -> str:
    for suf, m in (("M", 1_000_000), ("k", 1_000)):
        if n >= m and n % m == 0:
            return f"{n // m}{suf}"
    return str(n)


def parse_size(family: str, spec: str) -> tuple[int, ...]:
    s = str(spec).strip().lower().replace("×", "x").replace(" ", "")
    if family in ("portfolio", "sparse"):
        if "x" in s:
            a, b = s.split("x", 1)
            t, n = parse_count(a), parse_count(b)
        elif family == "portfolio":
            n = parse_count(s)
            t = max(500, 2 * n)
        else:
            raise ValueError(f"sparse size {spec!r} must be TxN (observations x assets), e.g. 10000x500")
        if n < 2:
            raise ValueError(f"{family} size {spec!r} needs at least 2 assets")
        if t < 10:
            raise ValueError(f"{family} size {spec!r} needs at least 10 observations")
        return (t, n)
    n = parse_count(s)
    if family == "hmm" and n < 100:
        raise ValueError(f"hmm size {spec!r}: at least 100 observations")
    if family == "mean_reversion" and n < 30:
        raise ValueError(f"mean_reversion size {spec!r}: at least 30 prices (lookback 20)")
    return (n,)


def parse_sizes(family: str, text: str | Iterable[str]) -> list[str]:
    """'1k, 100k 1M' -> ['1k', '100k', '1M'] (validated)."""
    items = text.replace(";", ",").replace(" ", ",").split(",") if isinstance(text, str) else list(text)
    out = [i.strip() for i in items if str(i).strip()]
    for i in out:
        parse_size(family, i)
    if not out:
        raise ValueError(f"{family}: no size given")
    return out


def parse_int_list(text: str, name: str = "concurrency") -> list[int]:
    items = [i for i in text.replace(";", ",").replace(" ", ",").split(",") if i.strip()]
    try:
        out = [int(i) for i in items]
    except ValueError:
        raise ValueError(f"{name} must be a list of whole numbers like 1, 2, 4; got {text!r}") from None
    if not out or any(v < 1 or v > 256 for v in out):
        raise ValueError(f"{name} values must be between 1 and 256; got {text!r}")
    return sorted(set(out))
