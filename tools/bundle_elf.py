"""What the packaged app still needs from the host, read from the ELF files of the bundle.

    python3 tools/bundle_elf.py glibc   [BUNDLE]          # minimum glibc (GLIBC_x.y symbol versions)
    python3 tools/bundle_elf.py depends [BUNDLE]          # the .deb's Depends line
    python3 tools/bundle_elf.py report  [BUNDLE] [--json] # both, with the files and libraries behind them

BUNDLE defaults to dist/hft-lab. Every ELF file of the bundle is read with `objdump -p` (binutils):
- glibc: the highest GLIBC_x.y version any of them requires (its "Version References"), and which
  files require it. That version is the oldest glibc, hence the oldest distribution, the bundle runs on.
- depends: the NEEDED entries no file of the bundle provides, i.e. the libraries the dynamic loader
  must find on the host. Each is located with `ldconfig -p` and mapped to its Debian package with
  `dpkg -S`; libc6 gets the measured minimum version. Data files (not ELF dependencies) the bundled
  libraries read from the host are added with the reason: the XKB keyboard data (libxkbcommon) and the
  fontconfig configuration plus one font (libfontconfig), since they are not in the bundle.
Standard library only (it also runs with the system Python, e.g. under sudo).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# files the bundled libraries read at run time from the host (not NEEDED entries): package -> why
DATA_DEPENDS = {
    "xkb-data": "XKB keyboard layouts read by the bundled libxkbcommon (/usr/share/X11/xkb)",
    "fontconfig-config": "the fontconfig configuration read by the bundled libfontconfig (/etc/fonts)",
    "fonts-dejavu-core | fonts-freefont-ttf | fonts-liberation2": "at least one font, or text renders as boxes",
}


def elf_files(bundle: Path) -> list[Path]:
    out = []
    for p in sorted(bundle.rglob("*")):
        if p.is_symlink() or not p.is_file():
            continue
        with open(p, "rb") as f:
            if f.read(4) == b"\x7fELF":
                out.append(p)
    return out


def objdump(files: list[Path]) -> dict[Path, dict]:
    """{file: {"needed": [...], "glibc": [(major, minor), ...]}} from `objdump -p` (batched)."""
    info: dict[Path, dict] = {}
    by_name = {str(f): f for f in files}
    for i in range(0, len(files), 200):
        batch = [str(f) for f in files[i : i + 200]]
        text = subprocess.run(["objdump", "-p", *batch], capture_output=True, text=True, check=True).stdout
        current = None
        for line in text.splitlines():
            m = re.match(r"^(.*):\s+file format \S+$", line)
            if m and m.group(1) in by_name:
                current = info.setdefault(by_name[m.group(1)], {"needed": [], "glibc": []})
                continue
            if current is None:
                continue
            m = re.match(r"^\s+NEEDED\s+(\S+)$", line)
            if m:
                current["needed"].append(m.group(1))
                continue
            m = re.search(r"\sGLIBC_(\d+)\.(\d+)(?:\.\d+)?$", line)
            if m:
                current["glibc"].append((int(m.group(1)), int(m.group(2))))
    return info


def scan(bundle: Path) -> dict:
    files = elf_files(bundle)
    if not files:
        raise SystemExit(f"bundle_elf: no ELF file under {bundle} (run 'make dist' first)")
    info = objdump(files)
    provided = {p.name for p in bundle.rglob("*")}
    need: dict[tuple[int, int], list[str]] = {}
    for f, d in info.items():
        if d["glibc"]:
            need.setdefault(max(d["glibc"]), []).append(str(f.relative_to(bundle)))
    top = max(need)
    external: dict[str, list[str]] = {}
    for f, d in info.items():
        for so in d["needed"]:
            if so not in provided:
                external.setdefault(so, []).append(str(f.relative_to(bundle)))
    return {
        "elf_files": len(files),
        "glibc_min": f"{top[0]}.{top[1]}",
        "glibc_files": sorted(need[top]),
        "glibc_histogram": {f"{k[0]}.{k[1]}": len(v) for k, v in sorted(need.items())},
        "host_libraries": {so: sorted(v) for so, v in sorted(external.items())},
    }


def _ldconfig() -> dict[str, str]:
    text = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    arch = "x86-64" if os.uname().machine == "x86_64" else os.uname().machine
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^\s+(\S+) \(([^)]*)\) => (\S+)$", line)
        if m and (arch in m.group(2) or "," not in m.group(2)):
            found.setdefault(m.group(1), m.group(3))
    return found


def _dpkg_owner(path: str) -> str | None:
    alts = {path, os.path.realpath(path)}
    for a in list(alts):
        alts.add("/usr" + a if a.startswith("/lib") else a.removeprefix("/usr"))
    p = subprocess.run(["dpkg", "-S", *sorted(alts)], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        pkg = line.split(": ", 1)[0]
        if "," not in pkg:
            return pkg.split(":")[0]  # drop the :amd64 qualifier
    return None


def depends(report: dict) -> dict:
    where = _ldconfig()
    packages: dict[str, list[str]] = {}
    missing = []
    for so in report["host_libraries"]:
        path = where.get(so)
        pkg = _dpkg_owner(path) if path else None
        if pkg is None:
            missing.append(so)
        else:
            packages.setdefault(pkg, []).append(so)
    if missing:
        raise SystemExit(
            f"bundle_elf: no installed Debian package provides {', '.join(missing)}: install them first (make sysdeps)"
        )
    line = []
    for pkg in sorted(packages):
        line.append(f"{pkg} (>= {report['glibc_min']})" if pkg == "libc6" else pkg)
    line += list(DATA_DEPENDS)
    return {"depends": ", ".join(line), "packages": packages, "data": DATA_DEPENDS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["glibc", "depends", "report"])
    ap.add_argument("bundle", nargs="?", type=Path, default=ROOT / "dist" / "hft-lab")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rep = scan(args.bundle)
    if args.what == "glibc":
        print(rep["glibc_min"])
    elif args.what == "depends":
        print(depends(rep)["depends"])
    elif args.json:
        rep["deb"] = depends(rep)
        print(json.dumps(rep, indent=1))
    else:
        d = depends(rep)
        print(f"{rep['elf_files']} ELF files; minimum glibc {rep['glibc_min']}, required by: {', '.join(rep['glibc_files'])}")
        print("files per highest GLIBC version needed: " + ", ".join(f"{k}: {v}" for k, v in rep["glibc_histogram"].items()))
        for pkg, sos in sorted(d["packages"].items()):
            print(f"  {pkg}: {', '.join(sos)}")
        print(f"Depends: {d['depends']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
