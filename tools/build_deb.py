"""Build dist/hft-lab_<version>_<arch>.deb from the bundle `make dist` made (dpkg-deb, no debhelper).

    python3 tools/build_deb.py [--bundle dist/hft-lab] [--compress xz|zstd|gzip|none]

Contents:
    /opt/hft-lab/                         the bundle as it is (launcher, _internal/, LICENSES/)
    /usr/bin/hft-lab -> /opt/hft-lab/hft-lab
    /usr/share/applications/hft-lab.desktop   absolute Exec/Icon (the same generator as `make install`)
    /usr/share/icons/hicolor/{256x256,scalable}/apps/hft-lab.{png,svg}
    /usr/share/doc/hft-lab/copyright      MIT, and where the bundled components' licenses are
    /usr/share/doc/hft-lab/changelog.gz
The Depends line comes from the bundle's ELF files (tools/bundle_elf.py): the libraries no bundled
file provides, mapped to the Debian packages that ship them here, libc6 with the measured minimum.
The menu and icon caches are refreshed by the dpkg triggers of desktop-file-utils and
hicolor-icon-theme, so the package has no maintainer scripts.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bundle_elf  # noqa: E402


def _load_installer():
    spec = importlib.util.spec_from_file_location("hft_lab_installer", ROOT / "desktop" / "hft_lab" / "installer.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = mod  # dataclasses look the module up
    spec.loader.exec_module(mod)
    return mod


def version() -> str:
    for line in (ROOT / "desktop" / "hft_lab" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split('"')[1]
    raise SystemExit("build_deb: no __version__ in desktop/hft_lab/__init__.py")


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: HFT Arbitrage Lab
Comment: /opt/hft-lab is a PyInstaller bundle. It contains CPython, Qt 6 and PySide6 (LGPL-3.0,
 unmodified shared libraries in /opt/hft-lab/_internal/PySide6 that may be replaced), NumPy, pandas,
 pyqtgraph, grpcio, protobuf, the Rust crates compiled into grpcd and the extension, and system
 libraries copied from the Debian build host. The full license text of every one of them is in
 /opt/hft-lab/LICENSES/ (index: /opt/hft-lab/LICENSES/README.md).

Files: *
Copyright: The HFT Arbitrage Lab authors
License: MIT

Files: opt/hft-lab/_internal/*
Copyright: see /opt/hft-lab/LICENSES/README.md
License: various
 See /opt/hft-lab/LICENSES/README.md: each bundled component with its license and full text.

License: MIT
"""


def stage(bundle: Path, root: Path, inst) -> None:
    if root.exists():
        shutil.rmtree(root)
    app = root / "opt" / "hft-lab"
    app.parent.mkdir(parents=True)
    # hard links: the stage costs no copy (dpkg-deb reads the data; nothing writes to it)
    subprocess.run(["cp", "-al", str(bundle), str(app)], check=True)
    (root / "usr" / "bin").mkdir(parents=True)
    os.symlink("/opt/hft-lab/hft-lab", root / "usr" / "bin" / "hft-lab")
    icons = {}
    for size, name in inst.ICONS.items():
        d = root / "usr" / "share" / "icons" / "hicolor" / size / "apps"
        d.mkdir(parents=True)
        shutil.copyfile(bundle / name, d / name)
        os.chmod(d / name, 0o644)
        icons[size] = f"/usr/share/icons/hicolor/{size}/apps/{name}"
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    template = (bundle / "hft-lab.desktop").read_text(encoding="utf-8")
    (apps / "hft-lab.desktop").write_text(inst.desktop_entry(template, "/usr/bin/hft-lab", icons["256x256"]), encoding="utf-8")
    doc = root / "usr" / "share" / "doc" / "hft-lab"
    doc.mkdir(parents=True)
    mit = (ROOT / "LICENSE").read_text(encoding="utf-8").split("\n\n", 2)[2]  # the terms after the title and copyright
    (doc / "copyright").write_text(
        COPYRIGHT + "".join(f" {ln}\n" if ln else " .\n" for ln in mit.strip().splitlines()), encoding="utf-8"
    )
    log = (
        f"hft-lab ({version()}) unstable; urgency=medium\n\n  * Packaged app built by tools/build_deb.py.\n\n"
        " -- The HFT Arbitrage Lab authors <hft-lab@localhost>  Wed, 02 Dec 2026 00:00:00 +0000\n"
    )
    with open(doc / "changelog.gz", "wb") as f:
        f.write(gzip.compress(log.encode(), compresslevel=9, mtime=0))
    for p in [root / "usr", *(root / "usr").rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            os.chmod(p, 0o755)
        elif p.is_file() and not p.is_symlink():
            os.chmod(p, 0o644)


def control(bundle: Path, root: Path) -> str:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    deps = bundle_elf.depends(bundle_elf.scan(bundle))["depends"]
    size_kib = int(
        subprocess.run(["du", "-sk", "--apparent-size", str(root)], capture_output=True, text=True, check=True).stdout.split()[0]
    )
    return (
        "Package: hft-lab\n"
        f"Version: {version()}\n"
        f"Architecture: {arch}\n"
        "Maintainer: The HFT Arbitrage Lab authors <hft-lab@localhost>\n"
        f"Installed-Size: {size_kib}\n"
        f"Depends: {deps}\n"
        "Section: science\n"
        "Priority: optional\n"
        "Description: HFT Arbitrage Lab desktop app (mean reversion, portfolios, regimes)\n"
        " A PySide6 desktop app over one Rust core, reached in-process (PyO3) or\n"
        " over gRPC through the bundled grpcd server: mean-reversion signals and\n"
        " backtests, portfolio optimisation, hidden Markov regimes and sparse\n"
        " mean-reverting portfolios. Self-contained bundle in /opt/hft-lab.\n"
    )


def build(bundle: Path, out_dir: Path, compress: str) -> Path:
    inst = _load_installer()
    inst.check_bundle(bundle)
    root = ROOT / "build" / "deb" / "root"
    stage(bundle, root, inst)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(control(bundle, root), encoding="utf-8")
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    out = out_dir / f"hft-lab_{version()}_{arch}.deb"
    out.unlink(missing_ok=True)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compress}", "--build", str(root), str(out)], check=True, stdout=subprocess.DEVNULL
    )
    shutil.rmtree(root)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "dist" / "hft-lab")
    ap.add_argument("--out", type=Path, default=ROOT / "dist")
    ap.add_argument("--compress", default="xz", choices=["xz", "zstd", "gzip", "none"])
    args = ap.parse_args(argv)
    out = build(args.bundle, args.out, args.compress)
    print(f"deb: {out.stat().st_size / 2**20:.0f} MiB {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
