"""calculate_mean_reversion(outputs=...): only the series asked for, identical to the full call
on both backends (one and two threads), nothing else computed or sent; bad values rejected alike."""

from __future__ import annotations

import numpy as np
import pytest

ALL = ("mean", "std", "zscore", "signals", "positions")
FIELD = {"mean": "rolling_mean", "std": "rolling_std", "zscore": "zscore", "signals": "signals", "positions": "positions"}


def prices(n, seed):
    r = np.random.default_rng(seed)
    x = 100 + np.cumsum(r.normal(0, 0.5, n))
    x[n // 3 : n // 3 + 50] = x[n // 3]  # a flat run
    x[n // 2 :] += 4.0  # a jump (a position held across the two-thread split)
    return x


@pytest.mark.parametrize("n", [3_000, 210_000])
def test_selected_outputs_equal_the_full_call(backend, backends, n):
    x = prices(n, 7)
    kw = dict(lookback=20, threshold=1.5, exit_threshold=0.2, stop_threshold=3.0)
    full = backend.calculate_mean_reversion(x, **kw)
    assert full.outputs == ALL and len(full.entries) > 3
    for outs in (["zscore", "positions"], ["positions"], ("mean", "std"), "signals", ["std", "std", "zscore"]):
        r = backend.calculate_mean_reversion(x, outputs=outs, **kw)
        want = {outs} if isinstance(outs, str) else set(outs)
        assert r.outputs == tuple(o for o in ALL if o in want)
        np.testing.assert_array_equal(r.entries, full.entries)
        np.testing.assert_array_equal(r.exits, full.exits)
        for name in ALL:
            got = getattr(r, FIELD[name])
            if name in want:
                ref = getattr(full, FIELD[name])
                assert got.dtype == ref.dtype and got.tobytes() == ref.tobytes(), (outs, name)
            else:
                assert got is None, (outs, name)
    # the other backend gives the same bytes for a selection
    other = next(b for k, b in backends.items() if b is not backend)
    a = backend.calculate_mean_reversion(x, outputs=["zscore", "positions"], **kw)
    b = other.calculate_mean_reversion(x, outputs=["zscore", "positions"], **kw)
    assert a.zscore.tobytes() == b.zscore.tobytes() and a.positions.tobytes() == b.positions.tobytes()


def test_bands_need_mean_and_std(backend):
    r = backend.calculate_mean_reversion(prices(500, 1), lookback=10, outputs=["zscore"])
    with pytest.raises(ValueError, match="the bands need mean and std"):
        _ = r.upper_band
    r = backend.calculate_mean_reversion(prices(500, 1), lookback=10, outputs=["mean", "std"])
    np.testing.assert_array_equal(r.upper_band, r.rolling_mean + 2.0 * r.rolling_std)


@pytest.mark.parametrize(
    "outs, exc, msg",
    [
        (["z"], ValueError, 'unknown output "z": outputs are names among mean, std, zscore, signals, positions'),
        (["mean", "rolling_std"], ValueError, 'unknown output "rolling_std"'),
        ([], ValueError, "outputs must name at least one of mean, std, zscore, signals, positions"),
        ([1], TypeError, "outputs must be names \\(strings\\), got int 1"),
        (3.5, TypeError, "outputs must be a list of names"),
    ],
)
def test_bad_outputs_are_rejected_alike(backends, outs, exc, msg):
    texts = set()
    for b in backends.values():
        with pytest.raises(exc, match=msg) as ei:
            b.calculate_mean_reversion(prices(100, 2), lookback=10, outputs=outs)
        texts.add(str(ei.value))
    assert len(texts) == 1, texts


# ---- issue 16 (rolling): the argument fast path and the one-step result construction ----
def test_fast_argument_path_equals_the_checked_path(backend):
    """Plain types (float64 ndarray, int, float) skip the generic checks; other accepted types
    (lists, int64/float32 arrays, NumPy scalars, a strided view) go through them: same result,
    a complete frozen MeanReversionResult either way."""
    import dataclasses

    from hft_lab.backends.results import MeanReversionResult

    x = prices(600, 3)
    ref = backend.calculate_mean_reversion(x, lookback=15, threshold=1.5, exit_threshold=0.25)
    names = {f.name for f in dataclasses.fields(MeanReversionResult)}
    assert type(ref) is MeanReversionResult and set(vars(ref)) == names
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.lookback = 3  # type: ignore[misc]
    assert dataclasses.replace(ref).lookback == 15 and ref.threshold == 1.5 and ref.stop_threshold is None
    wide = np.repeat(x, 2)[::2]  # not contiguous: copied by the checked path
    for args in (
        (x.tolist(), np.int64(15), np.float64(1.5), 0.25),
        (wide, 15, 1.5, np.float32(0.25)),
        (x, 15.0, 3 / 2, 0.25),
    ):
        r = backend.calculate_mean_reversion(args[0], lookback=args[1], threshold=args[2], exit_threshold=args[3])
        assert set(vars(r)) == names and r.lookback == 15 and type(r.lookback) is int and type(r.threshold) is float
        for f in ("rolling_mean", "rolling_std", "zscore", "signals", "positions", "entries", "exits"):
            assert getattr(r, f).tobytes() == getattr(ref, f).tobytes(), f
    for bad, exc in ((True, TypeError), (-1, ValueError), (2**31, ValueError), (15.5, ValueError)):
        with pytest.raises(exc):
            backend.calculate_mean_reversion(x, lookback=bad)
    with pytest.raises(TypeError):
        backend.calculate_mean_reversion(x, lookback=15, threshold="2")
