"""Rolling z-score and signals: exact references, both backends, identical results, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hft_lab.backends import Cancelled, CancelToken


def walk(n, level, seed, step=1.0):
    r = np.random.default_rng(seed)
    return level + np.cumsum(r.normal(0, step, n))


def exact_reference(x, w):
    """Two-pass rolling statistics in long double-free float64, window by window (sliding view)."""
    v = np.lib.stride_tricks.sliding_window_view(x, w)
    m0 = v.mean(axis=1)
    mean = m0 + (v - m0[:, None]).mean(axis=1)  # corrected two-pass mean
    std = np.sqrt(((v - mean[:, None]) ** 2).sum(axis=1) / (w - 1))
    pad = np.full(w - 1, np.nan)
    mean, std = np.concatenate([pad, mean]), np.concatenate([pad, std])
    z = (x - mean) / std
    return mean, std, z


@pytest.mark.parametrize("level", [100.0, 1e6])
def test_matches_exact_two_pass_on_1m_prices(backend, level):
    x = walk(1_000_000, level, seed=1)
    w = 50
    r = backend.calculate_mean_reversion(x, lookback=w, threshold=2.0)
    mean, std, z = exact_reference(x, w)
    assert np.isnan(r.zscore[: w - 1]).all() and np.isnan(r.rolling_mean[: w - 1]).all()
    np.testing.assert_allclose(r.rolling_mean[w - 1 :], mean[w - 1 :], rtol=1e-12)
    np.testing.assert_allclose(r.rolling_std[w - 1 :], std[w - 1 :], rtol=1e-9)
    zz = z[w - 1 :]
    assert np.max(np.abs(r.zscore[w - 1 :] - zz) / (1 + np.abs(zz))) < 1e-9


def test_matches_pandas_rolling(backend):
    x = walk(5000, 100.0, seed=2)
    s = pd.Series(x)
    r = backend.calculate_mean_reversion(x, lookback=30, threshold=1.5)
    m, sd = s.rolling(30).mean().to_numpy(), s.rolling(30).std().to_numpy()
    np.testing.assert_allclose(r.rolling_mean, m, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(r.rolling_std, sd, rtol=1e-8, equal_nan=True)
    np.testing.assert_allclose(r.zscore, (x - m) / sd, rtol=1e-7, atol=1e-9, equal_nan=True)


def reference_signals(z, entry, exit_, stop=None):
    """Plain-Python state machine written from the documented rules."""
    state, blocked, sig = 0, False, []
    for v in z:
        if np.isnan(v):
            state = 0
        else:
            if blocked and abs(v) < entry:
                blocked = False
            if state == 1 and stop is not None and v <= -stop:
                state, blocked = 0, True
            elif state == 1 and v >= -exit_:
                state = 0
            elif state == -1 and stop is not None and v >= stop:
                state, blocked = 0, True
            elif state == -1 and v <= exit_:
                state = 0
            if state == 0 and not blocked:
                if stop is not None and abs(v) >= stop:
                    blocked = True
                elif v > entry:
                    state = -1
                elif v < -entry:
                    state = 1
        sig.append(state)
    return np.array(sig, dtype=np.int8)


@pytest.mark.parametrize("entry,exit_,stop", [(2.0, 0.0, None), (1.5, 0.5, 3.0), (1.0, -0.25, None)])
def test_signals_follow_the_documented_rules_without_lookahead(backend, entry, exit_, stop):
    x = walk(20_000, 50.0, seed=3)
    r = backend.calculate_mean_reversion(x, lookback=20, threshold=entry, exit_threshold=exit_, stop_threshold=stop)
    expected = reference_signals(r.zscore, entry, exit_, stop)
    np.testing.assert_array_equal(r.signals, expected)
    # position[t] = signal[t-1]: a signal from bar t's close trades from bar t+1 on
    np.testing.assert_array_equal(r.positions[1:], r.signals[:-1])
    assert r.positions[0] == 0
    changes = np.flatnonzero(np.diff(np.concatenate([[0], r.signals])) != 0)
    assert set(r.entries) | set(r.exits) == set(changes)
    assert len(r.entries) > 10  # the series does trade


def test_backends_give_identical_results(backends):
    x = walk(100_000, 100.0, seed=4)
    a = backends["pyo3"].calculate_mean_reversion(x, lookback=25, threshold=1.8, stop_threshold=3.5)
    b = backends["grpc"].calculate_mean_reversion(x, lookback=25, threshold=1.8, stop_threshold=3.5)
    for f in ("rolling_mean", "rolling_std", "zscore", "signals", "positions", "entries", "exits"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def test_streaming_equals_batch_exactly(backend):
    x = walk(10_000, 100.0, seed=5)
    batch = backend.calculate_mean_reversion(x, lookback=20, threshold=1.5)
    with backend.mean_reversion_stream(lookback=20, threshold=1.5) as s:
        parts = [s.push_many(x[:1]), s.push_many(x[1:777]), s.push_many(x[777:])]
    assert [p.first_tick for p in parts] == [0, 1, 777]
    z = np.concatenate([p.zscore for p in parts])
    np.testing.assert_array_equal(z, batch.zscore)
    np.testing.assert_array_equal(np.concatenate([p.positions for p in parts]), batch.positions)


BAD = [
    (dict(prices=[]), "prices is empty"),
    (dict(prices=[1.0, np.nan, 2.0, 3.0]), "prices contains NaN at index 1"),
    (dict(prices=[1.0, 2.0, np.inf, 3.0]), "prices contains an infinite value at index 2"),
    (dict(prices=[1.0, 2.0, 3.0], lookback=1), r"lookback must be between 2 and the number of prices \(3\), got 1"),
    (dict(prices=[1.0, 2.0, 3.0], lookback=4), r"lookback must be between 2 and the number of prices \(3\), got 4"),
    (dict(prices=[1.0, 2.0, 3.0], lookback=2, threshold=0.0), "threshold .* must be a positive finite number, got 0"),
    (dict(prices=[1.0, 2.0, 3.0], lookback=2, threshold=-1.0), "must be a positive finite number, got -1"),
    (dict(prices=[1.0, 2.0, 3.0], lookback=2, threshold=np.nan), "must be a positive finite number, got NaN"),
    (dict(prices=[5.0] * 10, lookback=3), "prices is constant"),
    (dict(prices=[[1.0, 2.0]], lookback=2), r"prices must be a 1-D array, got shape \(1, 2\)"),
    (dict(prices=[1.0, 2.0, 3.0], lookback=-2), "lookback must be a non-negative integer"),
]


@pytest.mark.parametrize("kwargs,message", BAD)
def test_bad_input_gives_the_same_clear_error(backends, kwargs, message):
    kwargs = dict(kwargs)
    prices = kwargs.pop("prices")
    texts = []
    for b in backends.values():
        with pytest.raises(ValueError, match=message) as ei:
            b.calculate_mean_reversion(prices, **kwargs)
        texts.append(str(ei.value))
    assert texts[0] == texts[1]


def test_cancel_stops_a_long_run(backend):
    x = walk(3_000_000, 100.0, seed=6)
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        backend.calculate_mean_reversion(x, lookback=20, cancel=tok)


def test_large_payload_over_4_mib(backend):
    """2M prices: 16 MB in, ~52 MB out, far above gRPC's 4 MiB default."""
    x = walk(2_000_000, 100.0, seed=7, step=0.1)
    r = backend.calculate_mean_reversion(x, lookback=100)
    assert r.zscore.shape == (2_000_000,) and np.isfinite(r.zscore[99:]).all()


def test_a_bad_tick_gives_the_same_error_and_keeps_the_stream(backends):
    texts = []
    for b in backends.values():
        with b.mean_reversion_stream(lookback=3, threshold=1.0) as s:
            s.push_many([1.0, 2.0])
            with pytest.raises(ValueError, match="ticks contains NaN at index 1") as ei:
                s.push_many([3.0, np.nan])
            texts.append(str(ei.value))
            if b is backends["pyo3"]:  # the in-process object keeps its state after the error
                assert s.push_many([3.0, 4.0]).first_tick == 2
    assert texts[0] == texts[1]
