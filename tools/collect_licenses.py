"""Write LICENSES/ (the full license texts of everything in the packaged app) into a PyInstaller bundle.

    python tools/collect_licenses.py --bundle dist/hft-lab [--workpath build/build_app]

Run by `make dist` right after PyInstaller, with the venv's Python (it reads the venv's package
metadata). Nothing here is hand-copied; every text comes from where the component ships it:

- Python packages: the license files each installed distribution lists in its metadata
  (`importlib.metadata`), for the distributions whose modules are in the bundle (read from the
  bundle's own PYZ archive and from PyInstaller's COLLECT table of contents);
- CPython: the interpreter's own LICENSE.txt; the PyInstaller bootloader: PyInstaller's COPYING.txt;
- Rust crates compiled into grpcd and hft_lab._rustcore: the LICENSE*/COPYING*/NOTICE* files of
  each crate in the normal-dependency graph (`cargo metadata`, crates in ~/.cargo/registry);
- system libraries PyInstaller copied from the build host: the Debian package's
  /usr/share/doc/<package>/copyright (package found with `dpkg -S`);
- the texts those notices refer to (LGPL-3.0, GPL-3.0, GPL-2.0, LGPL-2.1, Apache-2.0) from the
  host's /usr/share/common-licenses, and the project's own LICENSE (MIT).

LICENSES/README.md is the index: one row per component with version, license and files.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON_LICENSES = Path("/usr/share/common-licenses")
# SPDX id -> file name in /usr/share/common-licenses (always shipped: Qt/PySide6 need the LGPLv3 and the
# GPLv3 it refers to; GPL-2.0 for the PyInstaller bootloader; LGPL-2.1 and Apache-2.0 for host libs/grpc)
COMMON = {"LGPL-3.0": "LGPL-3", "GPL-3.0": "GPL-3", "GPL-2.0": "GPL-2", "LGPL-2.1": "LGPL-2.1", "Apache-2.0": "Apache-2.0"}
LICENSE_NAME = re.compile(r"^(licen[cs]e|copying|notice|unlicense|copyright|authors)", re.IGNORECASE)
RUST_ROOTS = ("grpcd", "hft_lab_rustcore")  # the binary and the PyO3 extension in the bundle


@dataclass
class Component:
    kind: str  # "project", "python", "rust", "system", "runtime"
    name: str
    version: str
    license: str
    files: list[str] = field(default_factory=list)  # relative to LICENSES/
    note: str = ""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


def _copy(src: Path, out: Path, rel: str) -> str:
    dst = out / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return rel


# ------------------------------------------------------------------ what is in the bundle


def _collect_toc(workpath: Path) -> list[tuple[str, str, str]]:
    toc = workpath / "COLLECT-00.toc"
    if not toc.is_file():
        raise SystemExit(f"collect_licenses: {toc} is missing (run PyInstaller with this workpath first)")
    return [tuple(e) for e in ast.literal_eval(toc.read_text())[0]]


def _bundled_modules(bundle: Path) -> set[str]:
    """Top-level module names in the bundle's PYZ archive (pure Python code lives there)."""
    from PyInstaller.archive.readers import CArchiveReader

    arch = CArchiveReader(str(bundle / "hft-lab"))
    names: set[str] = set()
    for entry in arch.toc:
        if entry.startswith("PYZ"):
            names |= {m.split(".")[0] for m in arch.open_embedded_archive(entry).toc}
    return names


def python_distributions(bundle: Path, toc: list[tuple[str, str, str]]) -> dict[str, md.Distribution]:
    tops = _bundled_modules(bundle)
    tops |= {dest.replace("\\", "/").split("/")[0] for dest, _src, _k in toc}
    by_module = md.packages_distributions()
    dists: dict[str, md.Distribution] = {}
    for top in sorted(tops):
        for dname in by_module.get(top, []):
            d = md.distribution(dname)
            key = d.metadata["Name"].lower().replace("_", "-")
            if key != "hft-lab":  # the project itself: LICENSE at the root
                dists[key] = d
    return dists


def _dist_license(d: md.Distribution) -> str:
    m = d.metadata
    expr = m.get("License-Expression")
    if expr:
        return expr
    lic = (m.get("License") or "").strip()
    if lic and "\n" not in lic and len(lic) < 80:
        return lic
    classifiers = [c.split("::")[-1].strip() for c in m.get_all("Classifier") or [] if c.startswith("License ::")]
    return "; ".join(classifiers) or "see files"


def collect_python(dists: dict[str, md.Distribution], out: Path) -> list[Component]:
    comps = []
    for key, d in sorted(dists.items()):
        name, version = d.metadata["Name"], d.version
        folder = f"python/{_safe(name)}-{version}"
        files = []
        for f in d.files or []:
            p = str(f)
            if "/licenses/" in p or LICENSE_NAME.match(Path(p).name):
                if p.endswith((".py", ".pyc")) or "/__pycache__/" in p:
                    continue
                src = Path(d.locate_file(f))
                if src.is_file():
                    rel = p.split("/licenses/", 1)[1] if "/licenses/" in p else re.sub(r"^[^/]+\.dist-info/", "", p)
                    if f"{folder}/{rel}" not in files:
                        files.append(_copy(src, out, f"{folder}/{rel}"))
        c = Component("python", name, version, _dist_license(d), files)
        if not files:
            c.note = "the wheel ships no license file; full texts: " + ", ".join(
                f"common/{s}.txt" for s in _spdx_ids(c.license) if s in COMMON
            )
        comps.append(c)
    return comps


def _spdx_ids(expr: str) -> list[str]:
    return [t.replace("-only", "").replace("-or-later", "") for t in re.findall(r"[A-Za-z0-9.+-]+", expr)]


def collect_runtime(out: Path) -> list[Component]:
    comps = []
    py_license = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"
    ver = ".".join(map(str, sys.version_info[:3]))
    if not py_license.is_file():
        raise SystemExit(f"collect_licenses: CPython's license {py_license} is missing")
    comps.append(
        Component(
            "runtime",
            "CPython (interpreter and standard library)",
            ver,
            "PSF-2.0",
            [_copy(py_license, out, f"python/CPython-{ver}/LICENSE.txt")],
        )
    )
    pi = md.distribution("pyinstaller")
    files = [
        _copy(Path(pi.locate_file(f)), out, f"python/pyinstaller-bootloader-{pi.version}/{Path(str(f)).name}")
        for f in pi.files or []
        if LICENSE_NAME.match(Path(str(f)).name) and Path(pi.locate_file(f)).is_file()
    ]
    comps.append(
        Component(
            "runtime",
            "PyInstaller bootloader (the hft-lab launcher)",
            pi.version,
            "GPL-2.0-or-later WITH Bootloader-exception",
            files,
            "the exception allows distributing the bundled app under any license",
        )
    )
    return comps


# ------------------------------------------------------------------ Rust crates


def rust_crates() -> list[dict]:
    """Packages in the normal-dependency closure of grpcd and the PyO3 extension (the code linked into
    the two binaries; build scripts and proc macros are build-time tools and not in the bundle)."""
    triple = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    host = re.search(r"^host: (\S+)", triple, re.MULTILINE).group(1)
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", host],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    pkgs = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    stack = [i for i in meta["workspace_members"] if pkgs[i]["name"] in RUST_ROOTS]
    seen: set[str] = set()
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        stack += [d["pkg"] for d in nodes[i]["deps"] if any(k["kind"] is None for k in d["dep_kinds"])]
    return sorted((pkgs[i] for i in seen), key=lambda p: (p["name"], p["version"]))


def collect_rust(out: Path) -> list[Component]:
    comps = []
    for p in rust_crates():
        if p["source"] is None:  # a workspace crate: the project's own MIT license
            continue
        d = Path(p["manifest_path"]).parent
        folder = f"rust/{_safe(p['name'])}-{p['version']}"
        files = [_copy(f, out, f"{folder}/{f.name}") for f in sorted(d.iterdir()) if f.is_file() and LICENSE_NAME.match(f.name)]
        c = Component("rust", p["name"], p["version"], p.get("license") or "see files", files)
        if not files:
            authors = ", ".join(p.get("authors") or []) or f"the {p['name']} authors"
            c.note = f"the crate ships no license file; {c.license}, copyright {authors}; text: common/MIT.txt"
        comps.append(c)
    return comps


# ------------------------------------------------------------------ system libraries


def _dpkg_owners(paths: list[str]) -> dict[str, str]:
    """{path: Debian package} with one `dpkg -S` call; /lib and /usr/lib spellings both tried (usrmerge)."""
    alias: dict[str, str] = {}
    for path in paths:
        for c in {path, os.path.realpath(path)}:
            alias[c] = path
            if c.startswith("/lib/"):
                alias["/usr" + c] = path
            elif c.startswith("/usr/lib/"):
                alias[c[4:]] = path
    p = subprocess.run(["dpkg", "-S", *alias], capture_output=True, text=True)  # exit 1 if one is unknown
    owners: dict[str, str] = {}
    for line in p.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        if path.strip() in alias and "," not in pkg:
            owners.setdefault(alias[path.strip()], pkg.strip())
    return owners


def collect_system(toc: list[tuple[str, str, str]], out: Path) -> list[Component]:
    """Host libraries PyInstaller copied (sources outside the venv, the Python install and the repo)."""
    host = [
        (dest, src)
        for dest, src, kind in toc
        if kind in ("BINARY", "EXTENSION") and src.startswith(("/lib/", "/usr/lib/", "/lib64/", "/usr/lib64/"))
    ]
    found = _dpkg_owners([src for _dest, src in host])
    owners: dict[str, list[str]] = {}
    for dest, src in host:
        owner = found.get(src)
        if owner is None:
            raise SystemExit(f"collect_licenses: no Debian package owns {src} (bundled as {dest})")
        owners.setdefault(owner, []).append(Path(dest).name)
    comps = []
    for pkg, libs in sorted(owners.items()):
        base = pkg.split(":")[0]
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True).stdout.strip()
        cp = Path("/usr/share/doc") / base / "copyright"
        if not cp.is_file():
            raise SystemExit(f"collect_licenses: {cp} is missing (package {pkg})")
        comps.append(
            Component(
                "system",
                base,
                version,
                "see copyright",
                [_copy(cp, out, f"system/{base}/copyright")],
                "libraries: " + ", ".join(sorted(libs)),
            )
        )
    return comps


# ------------------------------------------------------------------ common texts, index


def collect_common(out: Path) -> list[str]:
    files = []
    for spdx, fname in COMMON.items():
        src = COMMON_LICENSES / fname
        if not src.is_file():
            raise SystemExit(f"collect_licenses: {src} is missing (Debian's base-files provides it)")
        files.append(_copy(src, out, f"common/{spdx}.txt"))
    # the MIT terms without a copyright line, for crates that name MIT but ship no file
    mit = (ROOT / "LICENSE").read_text(encoding="utf-8")
    (out / "common" / "MIT.txt").write_text(re.sub(r"^Copyright .*\n\n", "", mit, flags=re.MULTILINE), encoding="utf-8")
    files.append("common/MIT.txt")
    return files


def _index(comps: list[Component], common: list[str]) -> str:
    head = {
        "project": "HFT Arbitrage Lab",
        "runtime": "Python runtime and launcher",
        "python": "Python packages",
        "rust": "Rust crates compiled into grpcd and hft_lab._rustcore",
        "system": "System libraries copied from the build host (Debian packages)",
    }
    lines = [
        "# Licenses of HFT Arbitrage Lab and everything it bundles",
        "",
        "Generated by `tools/collect_licenses.py` when the bundle was built; each file is the text the",
        "component itself ships (package metadata, crate sources, Debian copyright files).",
        "HFT Arbitrage Lab is MIT-licensed (`hft-lab/LICENSE`). `SUMMARY.md` explains the Qt/PySide6",
        "(LGPLv3) terms: they are unmodified shared libraries in `_internal/PySide6/` that you may replace.",
        "",
        "Full texts referred to by the notices below: " + ", ".join(f"`{c}`" for c in common) + ".",
    ]
    for kind in ("project", "runtime", "python", "rust", "system"):
        rows = [c for c in comps if c.kind == kind]
        if not rows:
            continue
        lines += ["", f"## {head[kind]} ({len(rows)})", "", "| Component | Version | License | Files |", "|---|---|---|---|"]
        for c in rows:
            files = "<br>".join(f"`{f}`" for f in c.files) or "—"
            note = f" ({c.note})" if c.note else ""
            lines.append(f"| {c.name} | {c.version} | {c.license}{note} | {files} |")
    return "\n".join(lines) + "\n"


def collect(bundle: Path, workpath: Path) -> list[Component]:
    out = bundle / "LICENSES"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    toc = _collect_toc(workpath)
    common = collect_common(out)
    comps = [
        Component("project", "HFT Arbitrage Lab", _project_version(), "MIT", [_copy(ROOT / "LICENSE", out, "hft-lab/LICENSE")])
    ]
    comps += collect_runtime(out)
    comps += collect_python(python_distributions(bundle, toc), out)
    comps += collect_rust(out)
    comps += collect_system(toc, out)
    _copy(ROOT / "resources" / "LICENSES.md", out, "SUMMARY.md")
    _copy(ROOT / "resources" / "data" / "ATTRIBUTION.md", out, "data/ATTRIBUTION.md")
    (out / "README.md").write_text(_index(comps, common), encoding="utf-8")
    (out / "components.json").write_text(json.dumps([c.__dict__ for c in comps], indent=1), encoding="utf-8")
    return comps


def _project_version() -> str:
    m = re.search(r'^__version__ = "(.*)"', (ROOT / "desktop" / "hft_lab" / "__init__.py").read_text(), re.MULTILINE)
    return m.group(1) if m else "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "dist" / "hft-lab")
    ap.add_argument("--workpath", type=Path, default=ROOT / "build" / "build_app")
    args = ap.parse_args(argv)
    comps = collect(args.bundle, args.workpath)
    n = {k: sum(c.kind == k for c in comps) for k in ("python", "rust", "system")}
    size = sum(f.stat().st_size for f in (args.bundle / "LICENSES").rglob("*") if f.is_file())
    print(
        f"LICENSES/: {n['python']} Python distributions, {n['rust']} Rust crates, {n['system']} Debian packages, "
        f"{size / 1024:.0f} KiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
