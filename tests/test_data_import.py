"""CSV import (layouts, delimiters, compression, encodings, date formats, sorting, duplicates,
missing values, malformed files with the line they fail on, a 1M-row file), synthetic datasets,
and result export round trips (CSV and JSON), one of them on real results of the PyO3 backend."""

from __future__ import annotations

import bz2
import gzip
import json
import math

import numpy as np
import pandas as pd
import pytest
from hft_lab.backends.results import BacktestResult, HmmResult, MeanReversionResult, PortfolioResult
from hft_lab.data import (
    AmbiguousDateError,
    CsvImportError,
    correlated_gbm,
    load_prices,
    load_sample_prices,
    sniff,
    synthetic_dataset,
)
from hft_lab.data.export import (
    SessionItem,
    describe_prices,
    export_result_csv,
    export_result_json,
    export_session,
    read_result_csv,
    read_result_json,
    result_from_document,
)

WIDE = """Date,AAPL,MSFT,XOM
2020-01-02,75.09,160.62,70.90
2020-01-03,74.36,158.62,70.33
2020-01-06,74.95,159.03,70.87
2020-01-07,74.60,157.58,70.29
"""
EXPECTED = pd.DataFrame(
    {"AAPL": [75.09, 74.36, 74.95, 74.60], "MSFT": [160.62, 158.62, 159.03, 157.58], "XOM": [70.90, 70.33, 70.87, 70.29]},
    index=pd.DatetimeIndex(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"], name="date"),
)


def write(tmp_path, name, content, encoding="utf-8", compress=None):
    data = content.encode(encoding) if isinstance(content, str) else content
    if compress == "gzip":
        data = gzip.compress(data)
    elif compress == "bz2":
        data = bz2.compress(data)
    p = tmp_path / name
    p.write_bytes(data)
    return p


def long_text(adj=True, price_name="Close"):
    rows = ["Date,Ticker,Open," + price_name + (",Adj Close" if adj else "") + ",Volume"]
    for t in ("AAPL", "MSFT", "XOM"):
        for d in EXPECTED.index:
            v = EXPECTED.loc[d, t]
            close = v + 1.0 if adj else v
            rows.append(f"{d:%Y-%m-%d},{t},1.0,{close}" + (f",{v}" if adj else "") + ",1000")
    return "\n".join(rows) + "\n"


def load(tmp_path, text, name="f.csv", **kw):
    return load_prices(write(tmp_path, name, text), **kw)


def assert_expected(ds):
    pd.testing.assert_frame_equal(ds.prices, EXPECTED, check_freq=False, check_names=True)
    assert all(dt == np.float64 for dt in ds.prices.dtypes)
    assert ds.prices.index.is_monotonic_increasing


# ---------------------------------------------------------------------------------------------
# layouts, delimiters, compression, encodings
# ---------------------------------------------------------------------------------------------


def test_wide_layout(tmp_path):
    p = write(tmp_path, "prices.csv", WIDE)
    sn = sniff(p)
    assert (sn.layout, sn.delimiter, sn.encoding, sn.date_column, sn.header) == ("wide", ",", "utf-8", "Date", True)
    assert sn.date_formats == ["ISO"] and not sn.ambiguous_date
    assert list(sn.preview.columns) == ["Date", "AAPL", "MSFT", "XOM"] and len(sn.preview) == 4
    r = load_prices(p)
    assert r.dataset.name == "prices" and r.layout == "wide" and r.date_format == "ISO"
    assert_expected(r.dataset)
    assert r.dataset.prices.attrs["source"]["path"] == str(p)


def test_long_layout_prefers_adj_close(tmp_path):
    p = write(tmp_path, "long.csv", long_text(adj=True))
    sn = sniff(p)
    assert (sn.layout, sn.ticker_column, sn.price_column) == ("long", "Ticker", "Adj Close")
    r = load_prices(p)
    assert_expected(r.dataset)  # Adj Close values, not Close (which are +1)
    assert any("prices from 'Adj Close'" in line for line in r.report)


@pytest.mark.parametrize("price_name", ["Close", "Price", "adj_close"])
def test_long_layout_without_adj_close(tmp_path, price_name):
    r = load(tmp_path, long_text(adj=False, price_name=price_name))
    assert r.layout == "long"
    assert_expected(r.dataset)


def test_layout_and_columns_can_be_overridden(tmp_path):
    p = write(tmp_path, "long.csv", long_text(adj=True))
    r = load_prices(p, price_column="Close")
    np.testing.assert_allclose(r.dataset.prices.to_numpy(), EXPECTED.to_numpy() + 1.0)
    with pytest.raises(CsvImportError, match="'AAPL' in column 'Ticker' is not a number") as e:
        load_prices(p, layout="wide")
    assert e.value.line == 2


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
def test_each_delimiter(tmp_path, delim):
    p = write(tmp_path, "d.csv", WIDE.replace(",", delim))
    assert sniff(p).delimiter == delim
    assert_expected(load_prices(p).dataset)


def test_semicolon_with_decimal_comma(tmp_path):
    text = WIDE.replace(",", ";").replace(".", ",")
    p = write(tmp_path, "eu.csv", text)
    sn = sniff(p)
    assert (sn.delimiter, sn.decimal) == (";", ",")
    assert_expected(load_prices(p).dataset)


@pytest.mark.parametrize("name", ["prices.csv.gz", "prices.csv", "prices.dat"])
def test_gzip_is_detected_by_magic_bytes(tmp_path, name):
    p = write(tmp_path, name, WIDE, compress="gzip")
    assert sniff(p).compression == "gzip"
    assert_expected(load_prices(p).dataset)


def test_bz2(tmp_path):
    assert_expected(load_prices(write(tmp_path, "p.csv.bz2", WIDE, compress="bz2")).dataset)


def test_utf8_bom(tmp_path):
    p = write(tmp_path, "bom.csv", "\ufeff" + WIDE)
    sn = sniff(p)
    assert sn.encoding == "utf-8-sig" and sn.columns[0] == "Date"
    r = load_prices(p)
    assert r.encoding == "utf-8-sig" and any("UTF-8 with BOM" in line for line in r.report)
    assert_expected(r.dataset)


def test_utf16_with_bom(tmp_path):
    p = write(tmp_path, "u16.csv", WIDE.replace(",", "\t"), encoding="utf-16")
    assert sniff(p).encoding == "utf-16"
    assert_expected(load_prices(p).dataset)


def test_latin1_fallback_is_reported(tmp_path):
    p = write(tmp_path, "l1.csv", WIDE.replace("XOM", "Société"), encoding="latin-1")
    r = load_prices(p)
    assert r.encoding == "latin-1"
    assert list(r.dataset.prices.columns) == ["AAPL", "MSFT", "Société"]
    assert any("Latin-1" in line and "not valid UTF-8 at line 1" in line for line in r.report)


def test_latin1_byte_far_beyond_the_sniffed_head(tmp_path):
    # the first MiB is plain ASCII (valid UTF-8); the loader still finds the Latin-1 byte, says where
    rows = ["date,ticker,close"]
    days = pd.bdate_range("1990-01-01", periods=60_000)
    rows += [f"{d:%Y-%m-%d},ABC,{100 + i % 7}" for i, d in enumerate(days)]
    rows += [f"{d:%Y-%m-%d},Nestlé,{50 + i % 5}" for i, d in enumerate(days)]
    p = write(tmp_path, "late.csv", "\n".join(rows) + "\n", encoding="latin-1")
    assert p.stat().st_size > (1 << 20)
    assert sniff(p).encoding == "utf-8"
    r = load_prices(p)
    assert r.encoding == "latin-1" and list(r.dataset.prices.columns) == ["ABC", "Nestlé"]
    assert any("not valid UTF-8 at line 60002" in line for line in r.report)
    # forcing UTF-8 is an error naming that line
    with pytest.raises(CsvImportError, match="not valid UTF-8") as e:
        load_prices(p, encoding="utf-8")
    assert e.value.line == 60002


# ---------------------------------------------------------------------------------------------
# dates
# ---------------------------------------------------------------------------------------------


def test_iso_dates_with_times(tmp_path):
    text = "time,X\n2020-01-02 09:30:00,1\n2020-01-02T09:31:00,2\n2020-01-02 09:32,3\n"
    r = load(tmp_path, text)
    assert list(r.dataset.prices.index) == [
        pd.Timestamp("2020-01-02 09:30"),
        pd.Timestamp("2020-01-02 09:31"),
        pd.Timestamp("2020-01-02 09:32"),
    ]


def test_iso_dates_with_offsets_become_utc(tmp_path):
    text = "Date,X\n2020-01-02T10:00:00+02:00,1\n2020-01-02T10:00:00Z,2\n"
    r = load(tmp_path, text)
    assert list(r.dataset.prices.index) == [pd.Timestamp("2020-01-02 08:00"), pd.Timestamp("2020-01-02 10:00")]
    assert r.dataset.prices.index.tz is None
    assert any("UTC" in line for line in r.report)


@pytest.mark.parametrize(
    "dates, fmt",
    [
        (["01/02/2020", "01/03/2020", "01/06/2020", "1/7/2020"], "US"),
        (["02/01/2020", "03/01/2020", "06/01/2020", "7/1/2020"], "EU"),
        (["02.01.2020", "03.01.2020", "06.01.2020", "07.01.2020"], "EU"),
        (["20200102", "20200103", "20200106", "20200107"], "YMD"),
        (["02-Jan-2020", "03-Jan-2020", "06-Jan-2020", "07-Jan-2020"], "MON"),
    ],
)
def test_us_eu_and_other_date_formats(tmp_path, dates, fmt):
    lines = WIDE.splitlines()
    text = "\n".join([lines[0]] + [f"{d},{line.split(',', 1)[1]}" for d, line in zip(dates, lines[1:])]) + "\n"
    p = write(tmp_path, "d.csv", text)
    sn = sniff(p)
    if fmt in ("US", "EU") and sn.ambiguous_date:  # slashes, all days <= 12: the caller chooses
        r = load_prices(p, date_format=fmt)
    else:
        assert sn.date_formats[0] == fmt
        r = load_prices(p)
    assert r.date_format == fmt
    assert_expected(r.dataset)


def test_ambiguous_dates_require_a_choice(tmp_path):
    p = write(tmp_path, "amb.csv", "Date,X\n01/02/2020,1\n03/04/2020,2\n05/06/2020,3\n")
    sn = sniff(p)
    assert sn.ambiguous_date and set(sn.date_formats) == {"US", "EU"} and sn.date_format is None
    with pytest.raises(AmbiguousDateError, match="fits both US") as e:
        load_prices(p)
    assert e.value.candidates == ("US", "EU")
    us = load_prices(p, date_format="US").dataset.prices.index
    eu = load_prices(p, date_format="EU").dataset.prices.index
    assert us[0] == pd.Timestamp("2020-01-02") and eu[0] == pd.Timestamp("2020-02-01")


def test_a_day_above_12_resolves_us_vs_eu(tmp_path):
    r = load(tmp_path, "Date,X\n01/02/2020,1\n03/04/2020,2\n12/25/2020,3\n")
    assert r.date_format == "US" and r.dataset.prices.index[-1] == pd.Timestamp("2020-12-25")


def test_the_wrong_date_choice_names_the_line(tmp_path):
    p = write(tmp_path, "d.csv", "Date,X\n01/02/2020,1\n03/04/2020,2\n12/25/2020,3\n")
    with pytest.raises(CsvImportError, match=r"'12/25/2020' in column 'Date' does not match EU") as e:
        load_prices(p, date_format="EU")
    assert e.value.line == 4 and str(e.value).startswith("line 4: ")


# ---------------------------------------------------------------------------------------------
# order, duplicates, missing values
# ---------------------------------------------------------------------------------------------


def test_unsorted_dates_are_sorted(tmp_path):
    lines = WIDE.splitlines()
    r = load(tmp_path, "\n".join([lines[0], lines[3], lines[1], lines[4], lines[2]]) + "\n")
    assert_expected(r.dataset)
    assert any("not in order (first out of order at line 3)" in line for line in r.report)


def test_descending_dates_are_reversed(tmp_path):
    lines = WIDE.splitlines()
    r = load(tmp_path, "\n".join([lines[0]] + lines[1:][::-1]) + "\n")
    assert_expected(r.dataset)
    assert any("descending" in line for line in r.report)


def test_duplicate_dates_keep_the_last(tmp_path):
    lines = WIDE.splitlines()
    text = "\n".join([lines[0], lines[1], "2020-01-03,1,1,1", lines[2], lines[3], lines[4]]) + "\n"
    r = load(tmp_path, text)
    assert_expected(r.dataset)  # line 4 (the real 2020-01-03 row) comes last and wins
    dup = [line for line in r.report if "duplicate" in line]
    assert dup and "2020-01-03 (lines 3, 4)" in dup[0]


def test_long_duplicates_are_per_ticker(tmp_path):
    text = long_text(adj=False).rstrip("\n").splitlines()
    # the same date for another ticker is not a duplicate; the same (date, ticker) is
    text.insert(2, "2020-01-02,AAPL,1.0,999.0,1000")
    r = load(tmp_path, "\n".join(text) + "\n")
    assert r.dataset.prices.loc["2020-01-02", "AAPL"] == 999.0  # the later row (line 3) wins
    assert r.dataset.prices.loc["2020-01-02", "MSFT"] == 160.62
    assert any("AAPL 2020-01-02 (lines 2, 3)" in line for line in r.report)


def nan_text():
    return (
        "Date,A,B,C\n"
        "2020-01-01,1,,10\n"  # line 2: B missing (leading)
        "2020-01-02,2,20,NA\n"  # line 3: C missing
        "2020-01-03,3,21,12\n"
        "2020-01-06,,22,13\n"  # line 5: A missing
        "2020-01-07,5,23,14\n"
    )


def test_missing_values_drop_rows(tmp_path):
    r = load(tmp_path, nan_text(), nan_policy="drop")
    assert list(r.dataset.prices.index.strftime("%m-%d")) == ["01-03", "01-07"]
    rep = " ".join(r.report)
    assert "'A' 1 (first at line 5)" in rep and "'B' 1 (first at line 2)" in rep and "'C' 1 (first at line 3)" in rep
    assert "dropped 3 of 5 rows" in rep


def test_missing_values_forward_fill_drops_leading_rows(tmp_path):
    r = load(tmp_path, nan_text(), nan_policy="ffill")
    px = r.dataset.prices
    assert list(px.index.strftime("%m-%d")) == ["01-02", "01-03", "01-06", "01-07"]
    assert px.loc["2020-01-02", "C"] == 10.0 and px.loc["2020-01-06", "A"] == 3.0
    assert not px.isna().any().any()
    rep = " ".join(r.report)
    assert "forward-filled 2 value(s)" in rep and "dropped the first 1 row(s)" in rep and "'B'" in rep


def test_a_column_without_values_is_dropped(tmp_path):
    r = load(tmp_path, "Date,A,B,\n2020-01-01,1,2,\n2020-01-02,2,3,\n")
    assert list(r.dataset.prices.columns) == ["A", "B"]
    assert any("without any value" in line for line in r.report)


def test_preamble_lines_and_quoted_names(tmp_path):
    text = 'Exported from somewhere\n\n"Date","Berkshire, Inc","X"\n2020-01-02,"1.5",2\n2020-01-03,1.6,"3"\n'
    p = write(tmp_path, "q.csv", text)
    sn = sniff(p)
    assert sn.header_line == 3 and sn.skipped_lines == 2
    r = load_prices(p)
    assert list(r.dataset.prices.columns) == ["Berkshire, Inc", "X"]
    assert r.dataset.prices.iloc[1, 0] == 1.6


def test_no_header_row(tmp_path):
    body = "".join(WIDE.splitlines(keepends=True)[1:])
    p = write(tmp_path, "nh.csv", body)
    sn = sniff(p)
    assert not sn.header and sn.columns == ["col1", "col2", "col3", "col4"]
    px = load_prices(p).dataset.prices
    np.testing.assert_array_equal(px.to_numpy(), EXPECTED.to_numpy())


# ---------------------------------------------------------------------------------------------
# malformed files: the message names the line and the problem
# ---------------------------------------------------------------------------------------------


def messy(newline="\n", quoted=False):
    h = '"Date","AAPL","MSFT"' if quoted else "Date,AAPL,MSFT"
    lines = ["Price export", "", h]  # lines 1-3
    lines += ["2020-01-02,1,2", "", "   "]  # lines 4-6 (blank and whitespace-only lines are skipped)
    days = pd.bdate_range("2020-01-03", periods=10)
    lines += [f"{d:%Y-%m-%d},{i + 1},{i + 2}" for i, d in enumerate(days)]  # lines 7-16
    lines += ["2020-01-17,3,abc", "2020-01-20,4,5"]  # line 17 is bad
    return newline.join(lines) + newline


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("quoted", [False, True])
def test_non_numeric_cell_names_its_line(tmp_path, newline, quoted):
    p = write(tmp_path, "m.csv", messy(newline, quoted))
    sn = sniff(p)
    assert (sn.header_line, sn.skipped_lines) == (3, 2) and sn.preview_lines[:3] == [4, 7, 8]
    assert sn.preview_lines[-2:] == [17, 18] and sn.preview.iloc[-2].tolist() == ["2020-01-17", "3", "abc"]
    with pytest.raises(CsvImportError) as e:
        load_prices(p)
    assert e.value.line == 17
    assert str(e.value) == "line 17: 'abc' in column 'MSFT' is not a number"


def test_gzip_file_errors_name_the_line_too(tmp_path):
    p = write(tmp_path, "m.csv.gz", messy(), compress="gzip")
    with pytest.raises(CsvImportError, match="^line 17: 'abc'"):
        load_prices(p)


@pytest.mark.parametrize("quoted", [False, True])
def test_extra_field_is_reported(tmp_path, quoted):
    text = messy(quoted=quoted).replace("2020-01-09,5,6", "2020-01-09,5,6,")
    with pytest.raises(CsvImportError) as e:
        load(tmp_path, text)
    assert e.value.line == 11
    assert "4 fields, but the header (line 3) has 3" in str(e.value) and "extra comma" in str(e.value)


def test_hidden_field_in_the_middle_is_reported(tmp_path):
    text = WIDE.replace("2020-01-06,74.95,159.03,70.87", "2020-01-06,74.95,159.03,70.87,12")
    with pytest.raises(CsvImportError, match="^line 4: 5 fields, but the header"):
        load(tmp_path, text)


def test_short_row_is_reported(tmp_path):
    text = WIDE.replace("2020-01-06,74.95,159.03,70.87", "2020-01-06,74.95,159.03")
    with pytest.raises(CsvImportError, match="^line 4: 3 fields, but the header \\(line 1\\) has 4"):
        load(tmp_path, text)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "the file is empty"),
        ("\n\n  \n", "the file is empty"),
        ("Date,AAPL,MSFT\n", "no data rows: the file has only a header (line 1)"),
        ("Date,AAPL,MSFT\n2020-01-02,1,2\n", "line 2: only one data row"),
        ("A,B\n1,2\n3,4\n", "no date column"),
        ("Date\n2020-01-01\n2020-01-02\n", "only one column found"),
        ("Date,X\n2020-01-02,1\n,2\n", "line 3: the date in column 'Date' is empty"),
        ("Date,X\n2020-01-02,1\n2020-02-30,2\n", "line 3: date '2020-02-30' in column 'Date' does not match ISO"),
        ("Date,X\n2020-01-02,1\n2020-01-03,inf\n", "line 3: inf in column 'X' is not a finite number"),
    ],
)
def test_malformed_files(tmp_path, content, message):
    with pytest.raises(CsvImportError) as e:
        load(tmp_path, content)
    assert message in str(e.value)


@pytest.mark.parametrize(
    "content, message",
    [
        ("Date,X\n2020-01-02,1\n".encode("utf-32"), "UTF-32"),
        ("Date,X\n2020-01-02,1\n".encode("utf-16-le"), "binary data (NUL bytes)"),
        (b"PK\x03\x04" + b"\x00" * 100, "ZIP archive"),
        (b"\x1f\x8b\x08\x00garbage" * 4, "corrupt or truncated"),
    ],
)
def test_binary_and_unknown_encodings(tmp_path, content, message):
    p = write(tmp_path, "b.csv", content)
    with pytest.raises(CsvImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_prices(p)


def test_unsupported_encoding_name(tmp_path):
    with pytest.raises(CsvImportError, match="unsupported encoding 'shift_jis'"):
        sniff(write(tmp_path, "x.csv", WIDE), encoding="shift_jis")


def test_missing_file(tmp_path):
    with pytest.raises(CsvImportError, match="file not found"):
        load_prices(tmp_path / "nope.csv")


def test_size_limit(tmp_path):
    p = write(tmp_path, "big.csv", WIDE)
    with pytest.raises(CsvImportError, match="files above 100 bytes are not loaded"):
        sniff(p, max_bytes=100)
    # compressed: the limit applies to the decompressed text, found while streaming
    gz = write(tmp_path, "big.csv.gz", WIDE, compress="gzip")
    with pytest.raises(CsvImportError, match="uncompressed text is larger than 100 bytes"):
        load_prices(gz, max_bytes=100)


def test_a_million_rows(tmp_path):
    n = 1_000_000
    rng = np.random.default_rng(7)
    days = pd.date_range("2000-01-01", periods=n, freq="min")
    a = np.round(100 + rng.standard_normal(n).cumsum() * 0.01, 4)
    b = np.round(50 + rng.standard_normal(n).cumsum() * 0.01, 4)
    stamps = days.strftime("%Y-%m-%d %H:%M")
    body = "\n".join([f"{d},{x!r},{y!r}" for d, x, y in zip(stamps, a.tolist(), b.tolist())])
    p = write(tmp_path, "m.csv", "timestamp,A,B\n" + body + "\n")
    r = load_prices(p)
    px = r.dataset.prices
    assert px.shape == (n, 2) and px.index[0] == days[0] and px.index[-1] == days[-1]
    np.testing.assert_array_equal(px["A"].to_numpy(), a)
    np.testing.assert_array_equal(px["B"].to_numpy(), b)


# ---------------------------------------------------------------------------------------------
# synthetic datasets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, cols", [("ou", 1), ("cointegrated", 5), ("regimes", 1), ("gbm", 10)])
def test_synthetic_datasets_are_seeded(kind, cols):
    a = synthetic_dataset(kind)
    b = synthetic_dataset(kind)
    c = synthetic_dataset(kind, seed=1)
    assert a.prices.shape[1] == cols and isinstance(a.prices.index, pd.DatetimeIndex)
    pd.testing.assert_frame_equal(a.prices, b.prices)
    assert not np.array_equal(a.prices.to_numpy(), c.prices.to_numpy())
    assert a.prices.attrs["source"]["generator"] == kind and "seed=0" in a.name


def test_synthetic_names_and_parameters():
    assert synthetic_dataset("ou", n=5000, kappa=0.05, seed=0).name == "Synthetic OU (n=5000, κ=0.05, seed=0)"
    ds = synthetic_dataset("regimes", n=500, stay=0.9, seed=3)
    assert ds.prices.iloc[0, 0] == 100.0 and (ds.prices.to_numpy() > 0).all() and len(ds.prices) == 500
    assert isinstance(synthetic_dataset("ou", n=70_000).prices.index, pd.RangeIndex)
    with pytest.raises(ValueError, match="unknown parameter"):
        synthetic_dataset("ou", lookback=3)
    with pytest.raises(ValueError, match="unknown synthetic kind"):
        synthetic_dataset("garch")


def test_correlated_gbm_has_the_asked_correlation_and_drift():
    px = correlated_gbm(n=20_001, assets=4, mu=0.1, sigma=0.25, rho=0.6, seed=11)
    r = np.diff(np.log(px), axis=0)
    c = np.corrcoef(r.T)
    off = c[~np.eye(4, dtype=bool)]
    assert np.all(np.abs(off - 0.6) < 0.03), off
    np.testing.assert_allclose(r.std(axis=0) * np.sqrt(252), 0.25, rtol=0.03)
    assert px[0].tolist() == [100.0] * 4
    with pytest.raises(ValueError, match="not positive definite"):
        correlated_gbm(n=10, assets=2, corr=[[1.0, 1.5], [1.5, 1.0]])
    with pytest.raises(ValueError, match="rho must be in"):
        correlated_gbm(n=10, assets=3, rho=-0.9)


# ---------------------------------------------------------------------------------------------
# export round trips
# ---------------------------------------------------------------------------------------------


def assert_same_fields(back: dict, result) -> None:
    for k, v in result.to_dict().items():
        orig = getattr(result, k)
        if isinstance(orig, (np.ndarray, tuple)):
            got = back[k]
            if isinstance(orig, tuple) or np.asarray(orig).dtype.kind in "OU":
                assert list(np.asarray(got).ravel()) == list(np.asarray(orig).ravel()), k
            else:
                np.testing.assert_array_equal(np.asarray(got, dtype=np.float64), np.asarray(orig, dtype=np.float64), err_msg=k)
                assert np.asarray(got).shape == np.asarray(orig).shape or np.asarray(orig).size == 0, k
        elif isinstance(orig, float) and math.isnan(orig):
            assert back[k] is None or math.isnan(back[k]), k
        else:
            assert back[k] == orig, k


def json_equal(a, b) -> bool:
    """Deep equality where None equals NaN (the JSON form of NaN)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    na = a is None or (isinstance(a, float) and math.isnan(a))
    nb = b is None or (isinstance(b, float) and math.isnan(b))
    if na or nb:
        return na and nb
    return a == b


@pytest.fixture(scope="module")
def real_results(backends):
    be = backends["pyo3"]
    px = load_sample_prices().prices
    aapl = px["AAPL"].to_numpy()
    mr = be.calculate_mean_reversion(aapl, lookback=30, threshold=2.0)
    bt = be.backtest(aapl, mr.positions, cost_bps=1.0)
    r = np.diff(np.log(aapl))
    hmm = be.run_hmm(r, n_states=2, max_iterations=30, seed=1)
    pf = be.optimize_portfolio(px.iloc[-1000:, :6], method="max_sharpe", parameters={"frontier_points": 7})
    return {"mr": mr, "bt": bt, "hmm": hmm, "pf": pf}


@pytest.mark.parametrize("key", ["mr", "bt", "hmm", "pf"])
def test_csv_round_trip_of_real_pyo3_results(tmp_path, real_results, key):
    res = real_results[key]
    files = export_result_csv(res, tmp_path / f"{key}.csv")
    assert all(f.exists() for f in files) and files[0].name == f"{key}.csv" and files[1].name == f"{key}.summary.csv"
    back = read_result_csv(tmp_path / f"{key}.csv")
    assert_same_fields(back, res)
    main = pd.read_csv(files[0])
    if key == "hmm":  # the T x K posteriors are the main table, the K-sized parameters a sidecar
        assert {"posteriors[0]", "posteriors[1]", "viterbi_path"} <= set(main.columns)
        assert any(f.name == "hmm.means.csv" for f in files)
    if key == "pf":  # weights with their asset names as a table
        assert any(f.name.startswith("pf.") and "asset_names" in pd.read_csv(f).columns for f in files)


@pytest.mark.parametrize("key", ["mr", "bt", "hmm", "pf"])
def test_json_round_trip_of_real_pyo3_results(tmp_path, real_results, key):
    res = real_results[key]
    px = load_sample_prices()
    p = export_result_json(
        res,
        tmp_path / f"{key}.json",
        inputs={"dataset": px, "asset": "AAPL"},
        parameters={"lookback": 30},
        backend="PyO3 (in-process)",
    )
    text = p.read_text()
    assert "NaN" not in text and "Infinity" not in text  # standard JSON
    doc = read_result_json(p)
    assert doc["result_type"] == type(res).__name__ and doc["backend"] == "PyO3 (in-process)"
    assert doc["app_version"] and doc["created"].endswith("+00:00")
    assert doc["parameters"] == {"lookback": 30}
    inp = doc["inputs"]["dataset"]
    assert inp["name"] == px.name and inp["rows"] == 8313 and inp["assets"][0] == "AAPL"
    assert inp["start"].startswith("1990-01-02") and inp["end"].startswith("2022-12-28")
    assert "prices" not in inp and len(inp["sha256"]) == 64  # too big to embed: described and hashed
    assert json_equal(doc["result"], json.loads(json.dumps(res.to_dict(), default=str)))
    rebuilt = result_from_document(doc)
    assert type(rebuilt) is type(res)
    assert_same_fields({k: getattr(rebuilt, k) for k in res.to_dict()}, res)


def test_csv_and_json_edge_cases(tmp_path):
    bt = BacktestResult(
        equity=np.array([1.0, 1.01, np.nan]),
        returns=np.array([0.0, 0.01, -np.inf]),
        drawdown=np.zeros(3),
        total_return=0.01,
        annual_return=float("nan"),
        annual_volatility=float("inf"),
        sharpe=-1.5,
        sortino=0.0,
        max_drawdown=0.0,
        n_trades=0,
        win_rate=float("nan"),
        avg_holding_bars=0.0,
        trade_entries=np.array([], dtype=np.int64),
        trade_exits=np.array([], dtype=np.int64),
        trade_directions=np.array([], dtype=np.int8),
        trade_pnls=np.array([]),
    )
    back = read_result_csv(export_result_csv(bt, tmp_path / "bt.csv", index=pd.bdate_range("2021-01-01", periods=3))[0])
    assert_same_fields(back, bt)
    assert list(back["__index__"]) == list(pd.bdate_range("2021-01-01", periods=3))
    assert back["annual_volatility"] == float("inf") and math.isnan(back["annual_return"])
    doc = read_result_json(export_result_json(bt, tmp_path / "bt.json"))
    assert doc["result"]["returns"] == [0.0, 0.01, "-inf"] and doc["result"]["equity"][2] is None
    rebuilt = result_from_document(doc)
    assert np.isneginf(rebuilt.returns[2]) and np.isnan(rebuilt.equity[2]) and math.isnan(rebuilt.win_rate)
    mr = MeanReversionResult(
        lookback=3,
        threshold=2.0,
        exit_threshold=0.0,
        stop_threshold=None,
        rolling_mean=np.arange(4.0),
        rolling_std=np.ones(4),
        zscore=np.zeros(4),
        signals=np.array([0, 1, 1, 0], dtype=np.int8),
        positions=np.array([0, 0, 1, 1], dtype=np.int8),
        entries=np.array([1]),
        exits=np.array([3]),
    )
    back = read_result_csv(export_result_csv(mr, tmp_path / "mr.csv")[0])
    assert back["stop_threshold"] is None
    assert_same_fields(back, mr)
    with pytest.raises(ValueError, match="index has 2 entries"):
        export_result_csv(mr, tmp_path / "x.csv", index=[1, 2])


def test_small_inputs_are_embedded(tmp_path):
    ds = synthetic_dataset("gbm", n=50, assets=3)
    d = describe_prices(ds.prices, name=ds.name)
    assert d["rows"] == 50 and d["source"]["generator"] == "gbm" and d["source"]["params"]["seed"] == 0
    back = pd.DataFrame(d["prices"]["columns"], index=pd.DatetimeIndex(d["prices"]["index"]))
    np.testing.assert_array_equal(back.to_numpy(), ds.prices.to_numpy())
    # same data, same hash; different data, different hash
    assert describe_prices(synthetic_dataset("gbm", n=50, assets=3).prices)["sha256"] == d["sha256"]
    assert describe_prices(synthetic_dataset("gbm", n=50, assets=3, seed=1).prices)["sha256"] != d["sha256"]


def test_export_session_writes_an_index(tmp_path):
    hmm = HmmResult(
        n_states=2,
        means=np.array([-0.01, 0.01]),
        variances=np.array([1e-4, 4e-4]),
        stds=np.array([0.01, 0.02]),
        transition_matrix=np.array([[0.9, 0.1], [0.2, 0.8]]),
        start_probabilities=np.array([0.5, 0.5]),
        log_likelihood=12.5,
        log_likelihood_history=np.array([10.0, 12.0, 12.5]),
        iterations=3,
        converged=True,
        posteriors=np.full((5, 2), 0.5),
        viterbi_path=np.array([0, 0, 1, 1, 0]),
        aic=-10.0,
        bic=-8.0,
    )
    pf = PortfolioResult(
        method="min_variance",
        weights=np.array([0.25, 0.75]),
        asset_names=("A", "B"),
        expected_return=0.05,
        volatility=0.1,
        sharpe=0.3,
        risk_contributions=np.array([0.4, 0.6]),
        status="optimal",
        iterations=4,
        frontier_returns=np.array([]),
        frontier_volatilities=np.array([]),
    )
    ds = synthetic_dataset("cointegrated", n=100, assets=2)
    items = [
        SessionItem("Regimes", hmm, {"n_states": 2}, {"dataset": ds}, "gRPC (Rust server)"),
        {"name": "Portfolio", "result": pf, "parameters": {"method": "min_variance"}, "backend": "PyO3 (in-process)"},
        SessionItem("Regimes", hmm),  # same name: a distinct file set
    ]
    idx_path = export_session(tmp_path / "session", items)
    index = json.loads(idx_path.read_text())
    assert index["format"] == "hft-lab/session" and [i["name"] for i in index["items"]] == ["Regimes", "Portfolio", "Regimes"]
    for item in index["items"]:
        for f in item["files"]:
            assert (tmp_path / "session" / f).exists(), f
    assert index["items"][0]["files"][0] == "Regimes.json" and index["items"][2]["files"][0] == "Regimes-2.json"
    assert index["items"][0]["inputs"]["dataset"]["rows"] == 100 and "prices" not in index["items"][0]["inputs"]["dataset"]
    doc = read_result_json(tmp_path / "session" / "Regimes.json")
    assert "prices" in doc["inputs"]["dataset"]  # small: embedded in the item's own JSON
    back = read_result_csv(tmp_path / "session" / "Portfolio.csv")
    assert_same_fields(back, pf)
    with pytest.raises(ValueError, match="no result"):
        export_session(tmp_path / "s2", [SessionItem("x", None)])


@pytest.mark.parametrize("kappa", [0.001, 0.05, 0.5, 0.9, 1.0, 1.5])
def test_ou_series_equals_the_plain_recursion(kappa):
    from hft_lab.data import ou_series

    n, theta, sigma, seed = 50_000, 100.0, 1.0, 3
    eps = np.random.default_rng(seed).normal(0.0, sigma, n)
    ref = np.empty(n)
    ref[0] = theta
    for t in range(1, n):
        ref[t] = ref[t - 1] + kappa * (theta - ref[t - 1]) + eps[t]
    got = ou_series(n, kappa=kappa, theta=theta, sigma=sigma, seed=seed)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-11 * max(1.0, np.abs(ref).max()))


# ---------------------------------------------------------------------------------------------
# OHLCV files, price columns, unparseable cells, several files (issue 12)
# ---------------------------------------------------------------------------------------------

from hft_lab.data import BadCellError  # noqa: E402
from hft_lab.data.csv_import import column_fields, default_price_columns  # noqa: E402

OHLCV_DAYS = pd.bdate_range("2024-01-02", periods=6)
OHLCV_ADJ = [184.29, 182.91, 180.59, 179.86, 180.32, 179.15]


def ohlcv_text(cols, adj=OHLCV_ADJ, days=OHLCV_DAYS):
    """A file with the given header; the values follow each column's meaning (Close = Adj × 1.01,
    Volume a large integer)."""
    fields = column_fields(cols[1:])
    rows = [",".join(cols)]
    for i, d in enumerate(days):
        vals = [f"{d:%Y-%m-%d}"]
        for c in cols[1:]:
            f = fields.get(c)
            v = adj[i]
            vals.append(
                {
                    "adjclose": f"{v}",
                    "close": f"{v * 1.01:.4f}",
                    "open": f"{v * 0.99:.4f}",
                    "high": f"{v * 1.02:.4f}",
                    "low": f"{v * 0.98:.4f}",
                    "volume": str(50_000_000 + 17 * i),
                }.get(f, f"{v}")
            )
        rows.append(",".join(vals))
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    "cols, price",
    [
        (["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"], "adj"),  # Yahoo Finance
        (["date", "open", "high", "low", "close", "adj close", "volume"], "adj"),
        (["Date", "Open", "High", "Low", "Close", "Adj_Close", "Volume"], "adj"),
        (["date", "open", "high", "low", "close", "adjclose", "volume"], "adj"),
        (["Date", "Open", "High", "Low", "Close", "Adj Close"], "adj"),  # without Volume
        (["Date", "Open", "High", "Low", "Close", "Volume"], "close"),  # no Adj Close
        (["Date", "Open", "High", "Low", "Last", "Volume"], "close"),  # Last
        (["Date", "Price", "Open", "High", "Low", "Vol."], "close"),  # investing.com style
        (["Date", "Close/Last", "Volume", "Open", "High", "Low"], "close"),  # nasdaq.com style
        (["timestamp", "o", "h", "l", "c", "v"], "close"),  # crypto APIs
        (["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume", "Dividends", "Stock Splits"], "adj"),
    ],
)
def test_ohlcv_files_give_one_asset_named_after_the_file(tmp_path, cols, price):
    p = write(tmp_path, "AAPL.csv", ohlcv_text(cols))
    sn = sniff(p)
    assert sn.layout == "ohlcv" and sn.asset_name == "AAPL"
    r = load_prices(p)
    assert r.dataset.assets == ["AAPL"] and r.dataset.name == "AAPL"
    want = np.array(OHLCV_ADJ) * (1.0 if price == "adj" else 1.01)
    np.testing.assert_allclose(r.dataset.prices["AAPL"].to_numpy(), want, rtol=1e-4)
    assert not any("olume" in c for c in r.report if c.startswith("Loaded as prices"))


def test_ohlcv_price_columns_can_be_chosen_and_volume_only_when_asked(tmp_path):
    p = write(tmp_path, "MSFT (1).csv", ohlcv_text(["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]))
    r = load_prices(p, price_columns=["close"])
    assert r.dataset.assets == ["MSFT"]  # the browser's " (1)" is not part of the ticker
    np.testing.assert_allclose(r.dataset.prices["MSFT"], np.round(np.array(OHLCV_ADJ) * 1.01, 4))
    r = load_prices(p, price_columns=["Close", "Adj Close"], asset_name="Microsoft")
    assert r.dataset.assets == ["Microsoft Close", "Microsoft Adj Close"]
    r = load_prices(p, price_columns="Volume")
    assert r.dataset.prices["MSFT"].iloc[0] == 50_000_000
    assert any(line.startswith("Loaded as prices because chosen") and "'Volume'" in line for line in r.report)
    with pytest.raises(CsvImportError, match="no price column chosen"):
        load_prices(p, price_columns=[])
    with pytest.raises(CsvImportError, match="price column: no column named 'Bid'"):
        load_prices(p, price_columns=["Bid"])


@pytest.mark.parametrize(
    "text, cols",
    [
        ("Date,Volume\n2024-01-02,100\n2024-01-03,200\n", "'Volume'"),
        ("Date,Volume,Open Interest\n2024-01-02,100,5\n2024-01-03,200,6\n", "'Volume', 'Open Interest'"),
        ("Date,Ticker,Volume\n2024-01-02,A,100\n2024-01-03,A,200\n", "'Volume'"),
    ],
)
def test_a_file_with_only_volume_like_columns_is_questioned(tmp_path, text, cols):
    p = write(tmp_path, "v.csv", text)
    assert any("only volume-like columns" in n for n in sniff(p).notes)
    with pytest.raises(CsvImportError, match=f"only volume-like columns \\({cols}\\), no prices: choose a price column"):
        load_prices(p)


def test_wide_files_leave_volume_out_and_tickers_like_c_and_v_are_not_ohlcv(tmp_path):
    p = write(tmp_path, "w.csv", "Date,C,V,Volume\n2024-01-02,50.1,270.2,9\n2024-01-03,50.3,271.0,8\n")
    sn = sniff(p)
    assert sn.layout == "wide" and sn.price_columns == ["C", "V"]
    assert default_price_columns(sn) == ["C", "V"]
    r = load_prices(p)
    assert r.dataset.assets == ["C", "V"] and "Not loaded: 'Volume'" in r.report
    assert load_prices(p, price_columns=["V"]).dataset.assets == ["V"]


def test_long_ohlcv_with_several_price_columns(tmp_path):
    p = write(tmp_path, "l.csv", long_text())
    r = load_prices(p, price_columns=["Close", "Adj Close"])
    assert r.dataset.assets == ["AAPL Close", "AAPL Adj Close", "MSFT Close", "MSFT Adj Close", "XOM Close", "XOM Adj Close"]
    np.testing.assert_allclose(r.dataset.prices["XOM Adj Close"], EXPECTED["XOM"])
    np.testing.assert_allclose(r.dataset.prices["MSFT Close"], EXPECTED["MSFT"] + 1.0)


def _spoil(text, cells):
    """cells: {(file line, column): text}."""
    lines = text.splitlines()
    head = lines[0].split(",")
    for (ln, col), v in cells.items():
        f = lines[ln - 1].split(",")
        f[head.index(col)] = v
        lines[ln - 1] = ",".join(f)
    return "\n".join(lines) + "\n"


def test_a_bad_cell_names_its_line_and_counts_the_others(tmp_path):
    days = pd.bdate_range("2010-01-04", periods=2600)
    adj = list(100 + np.arange(2600) * 0.01)
    text = ohlcv_text(["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"], adj, days)
    text = _spoil(
        text, {(2502, "Adj Close"): "#VALUE!", (2600, "Adj Close"): "n.a.", (2590, "Close"): "#REF!", (40, "Volume"): "#VALUE!"}
    )  # Close and Volume are not loaded: not counted
    p = write(tmp_path, "X.csv", text)
    with pytest.raises(BadCellError) as e:
        load_prices(p)
    assert str(e.value) == "line 2502: '#VALUE!' in column 'Adj Close' is not a number"
    assert e.value.line == 2502 and e.value.count == 2
    assert e.value.cells == [(2502, "Adj Close", "#VALUE!"), (2600, "Adj Close", "n.a.")]
    r = load_prices(p, bad_cells="missing")
    assert len(r.dataset.prices) == 2598
    assert any(
        line.startswith("Unparseable cells treated as missing: 2 ('Adj Close' 2; first '#VALUE!' in 'Adj Close' at line 2502)")
        for line in r.report
    )
    r = load_prices(p, bad_cells="missing", nan_policy="ffill")
    assert len(r.dataset.prices) == 2600 and r.dataset.prices["X"].iloc[2500] == r.dataset.prices["X"].iloc[2499]
    # the first bad cell in file order, whatever the column order; inf counts as unparseable
    with pytest.raises(BadCellError) as e:
        load_prices(p, price_columns=["Close", "Adj Close"])
    assert e.value.line == 2502 and e.value.count == 3
    p2 = write(tmp_path, "Y.csv", _spoil(text, {(7, "Adj Close"): "inf"}))
    with pytest.raises(BadCellError, match="^line 7: inf in column 'Adj Close' is not a finite number$"):
        load_prices(p2)
    with pytest.raises(CsvImportError, match="bad_cells must be one of error, missing"):
        load_prices(p, bad_cells="skip")


def test_bad_cells_randomised(tmp_path):
    """Seeded random files: any set of unparseable cells in the loaded columns is counted exactly,
    the first one (in file order) is named, and bad_cells="missing" drops exactly their rows."""
    rng = np.random.default_rng(12)
    tokens = ["#VALUE!", "#DIV/0!", "abc", "1.2.3", "12 5", "10$", "1e", "--1"]
    for k in range(25):
        n = int(rng.integers(5, 60))
        days = pd.bdate_range("2001-01-01", periods=n)
        adj = list(np.round(50 + rng.standard_normal(n).cumsum(), 4))
        cols = ["Date", "Open", "Close", "Adj Close", "Volume"]
        text = ohlcv_text(cols, adj, days)
        m = int(rng.integers(0, min(4, n - 2) + 1))
        rows = sorted(rng.choice(np.arange(2, n + 2), size=m, replace=False).tolist())
        cells = {(int(r), str(rng.choice(["Adj Close", "Close", "Open"]))): str(rng.choice(tokens)) for r in rows}
        p = write(tmp_path, f"R{k}.csv", _spoil(text, cells))
        used = {kk: v for kk, v in cells.items() if kk[1] in ("Close", "Adj Close")}
        if used:
            with pytest.raises(BadCellError) as e:
                load_prices(p, price_columns=["Close", "Adj Close"])
            first = min(used)
            assert e.value.count == len(used) and e.value.line == first[0]
            assert str(e.value) == f"line {first[0]}: {used[first]!r} in column '{first[1]}' is not a number"
        r = load_prices(p, price_columns=["Close", "Adj Close"], bad_cells="missing")
        bad_rows = {ln for ln, _ in used}
        keep = [i for i in range(n) if i + 2 not in bad_rows]
        np.testing.assert_allclose(r.dataset.prices[f"R{k} Adj Close"].to_numpy(), np.array(adj)[keep])
        assert list(r.dataset.prices.index) == list(days[keep])


def test_several_files_align_on_dates(tmp_path):
    cols = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]
    a = write(tmp_path, "AAPL.csv", ohlcv_text(cols))
    m = write(
        tmp_path,
        "MSFT.csv",
        ohlcv_text(["date", "open", "high", "low", "close", "adj_close", "volume"], [10, 11, 12, 13, 14], OHLCV_DAYS[1:]),
    )
    r = load_prices([a, m])
    assert r.dataset.name == "AAPL + MSFT" and r.dataset.assets == ["AAPL", "MSFT"]
    assert list(r.dataset.prices.index) == list(OHLCV_DAYS[1:])  # drop: dates in every file
    assert r.dataset.prices["MSFT"].tolist() == [10, 11, 12, 13, 14]
    assert "Dates: 6 in any file, 5 in every file" in r.report
    r = load_prices([a, m], nan_policy="ffill", name="two")
    assert r.dataset.name == "two" and len(r.dataset.prices) == 5  # the first date has no MSFT yet
    # the price column matched by name or by field in every file
    r = load_prices([a, m], price_columns=["Close"])
    assert r.dataset.prices["MSFT"].iloc[0] == pytest.approx(10.1)
    r = load_prices([str(a), str(m)], price_columns=["Adj Close"])
    assert r.dataset.prices["MSFT"].iloc[0] == 10
    # same asset name twice: the second is renamed after its file
    w = write(tmp_path, "more.csv", "Date,AAPL\n2024-01-03,1\n2024-01-04,2\n2024-01-05,3\n")
    r = load_prices([a, w])
    assert r.dataset.assets == ["AAPL", "AAPL (more)"]
    assert any("'AAPL' as 'AAPL (more)'" in line for line in r.report)


@pytest.mark.parametrize(
    "second, message",
    [
        ("Open,Close\n1,2\n3,4\n", "^B.csv: no date column"),
        ("Date,Close\n2024-01-02,1\n2024-01-03,x\n", "^B.csv: line 3: 'x' in column 'Close' is not a number$"),
        ("Date,Close\n2023-01-02,1\n2023-01-03,2\n", "0 date\\(s\\) left after aligning the files"),
        ("", "^B.csv: the file is empty$"),
    ],
)
def test_several_files_errors_name_the_file(tmp_path, second, message):
    a = write(tmp_path, "A.csv", ohlcv_text(["Date", "Close", "Volume"]))
    b = write(tmp_path, "B.csv", second)
    with pytest.raises(CsvImportError, match=message):
        load_prices([a, b])


def test_several_files_bad_cells_are_counted_in_every_file(tmp_path):
    cols = ["Date", "Close", "Adj Close", "Volume"]
    a = write(tmp_path, "A.csv", _spoil(ohlcv_text(cols), {(4, "Adj Close"): "#N/A!"}))
    b = write(tmp_path, "B.csv", _spoil(ohlcv_text(cols), {(3, "Adj Close"): "?", (5, "Adj Close"): "?"}))
    with pytest.raises(BadCellError) as e:
        load_prices([a, b])
    assert str(e.value) == "A.csv: line 4: '#N/A!' in column 'Adj Close' is not a number"
    assert e.value.count == 3 and e.value.files == ["A.csv", "B.csv"]
    r = load_prices([a, b], bad_cells="missing")
    assert len(r.dataset.prices) == 3


def test_real_sp500_index_as_yahoo_exports_it(tmp_path, sp500_index):
    import arch.data.sp500

    frame = arch.data.sp500.load()
    frame.index = pd.DatetimeIndex(frame.index).strftime("%Y-%m-%d")
    frame.index.name = "Date"
    p = tmp_path / "^GSPC.csv"
    frame.to_csv(p)
    r = load_prices(p)
    assert r.dataset.assets == ["^GSPC"] and len(r.dataset.prices) == 5031
    np.testing.assert_array_equal(r.dataset.prices["^GSPC"].to_numpy(), sp500_index.to_numpy())


def test_nasdaq_style_file_with_dollar_signs_newest_first(tmp_path):
    text = (
        "Date,Close/Last,Volume,Open,High,Low\n"
        "01/16/2024,$183.63,65603040,$182.16,$184.26,$180.934\n"
        "01/12/2024,$185.92,40477780,$186.06,$186.74,$185.19\n"
        "01/11/2024,$185.59,49128410,$186.54,$187.05,$183.62\n"
        '01/10/2024,"$1,186.19",46792910,$184.35,$186.40,$183.92\n'
    )
    p = write(tmp_path, "HistoricalData_AAPL.csv", text)
    r = load_prices(p, asset_name="AAPL")
    assert r.dataset.assets == ["AAPL"] and r.date_format == "US"
    assert r.dataset.prices["AAPL"].tolist() == [1186.19, 185.59, 185.92, 183.63]
    assert "Dates were in descending order (newest first): sorted ascending" in r.report
    p = write(tmp_path, "eu.csv", 'Datum;Schluss\n02.01.2024;"1.234,50"\n03.01.2024;€ 1.240,00\n')
    assert load_prices(p).dataset.prices.iloc[:, 0].tolist() == [1234.5, 1240.0]
    with pytest.raises(BadCellError, match="'\\$1,2,3' in column 'Close/Last' is not a number"):
        load_prices(write(tmp_path, "x.csv", text.replace('"$1,186.19"', '"$1,2,3"')))
