"""Entry point: `python -m hft_lab [--smoke] [--backend grpc|pyo3|auto]`, `python -m hft_lab bench …`."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "bench":
        from hft_lab.bench.__main__ import main as bench_main

        return bench_main(argv[1:])
    if argv and argv[0] in ("install", "uninstall"):  # issue 19: the bundle installs itself (menu entry, icons)
        from hft_lab.installer import main as installer_main

        return installer_main(argv)
    ap = argparse.ArgumentParser(prog="hft-lab", description="HFT Arbitrage Lab desktop app")
    ap.add_argument(
        "--backend", choices=["grpc", "pyo3", "legacy", "auto"], help="initial backend (default: $BACKEND_TYPE or auto)"
    )
    ap.add_argument("--smoke", action="store_true", help="open the window, run one call on each backend, print, exit")
    args = ap.parse_args(argv)
    if args.backend:
        os.environ["BACKEND_TYPE"] = args.backend
    from hft_lab.utf8_locale import ensure_utf8_locale

    ensure_utf8_locale()  # before Qt starts: no "locale is C" warning in an empty environment
    from hft_lab.ui.app import run_app

    return run_app([sys.argv[0]], smoke=args.smoke)


if __name__ == "__main__":
    sys.exit(main())
