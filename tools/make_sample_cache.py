"""Write resources/data/sp500_20_stocks.npz, the pre-parsed sample the app reads at start-up
without pandas (hft_lab/data/samples.py), from the CSV next to it; `--check` only checks that
the file matches the CSV (exit 1 if not). Run it after changing the sample CSV."""

from __future__ import annotations

import argparse
import sys

from hft_lab.data.samples import SAMPLE_CACHE, _csv_path, read_sample_cache, write_sample_cache


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that the .npz matches the CSV")
    a = ap.parse_args(argv)
    csv = _csv_path()
    cache = csv.with_name(SAMPLE_CACHE)
    if a.check:
        try:
            read_sample_cache(cache, csv)
        except (OSError, ValueError, KeyError) as e:
            print(f"{cache}: {e}", file=sys.stderr)
            return 1
        print(f"{cache}: matches {csv.name}")
        return 0
    print(write_sample_cache(csv, cache))
    return 0


if __name__ == "__main__":
    sys.exit(main())
