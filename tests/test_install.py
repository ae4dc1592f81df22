"""Installing like an app (issue 19): make install / uninstall, the menu entry, the .deb, the
licenses in every artifact, the minimum glibc, and the quiet UTF-8 locale.

The fast tests run the installer on a small fake bundle and the locale code directly. The slow ones
reuse the bundle `dist_bundle` (conftest.py) builds once per session for tests/test_dist.py too.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import hft_lab
import pytest
from hft_lab import installer
from hft_lab.installer import InstallError, desktop_entry, exec_quote
from hft_lab.utf8_locale import effective_ctype, ensure_utf8_locale, is_utf8
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dist import _check_smoke, _pids_running, _smoke_json, _wait_until

ROOT = Path(__file__).resolve().parents[1]
# the first test that uses the session bundle builds it (PyInstaller, licenses, xz): minutes on a loaded
# 2-core machine, so the bundle tests get more than the default 300 s
BUNDLE_TIMEOUT = 1200
LICENSE_FILES = ("LICENSES/README.md", "LICENSES/common/LGPL-3.0.txt", "LICENSES/hft-lab/LICENSE")
TEMPLATE = (ROOT / "resources" / "hft-lab.desktop").read_text(encoding="utf-8")
sys.path.insert(0, str(ROOT / "tools"))
import bundle_elf  # noqa: E402

# ---------------------------------------------------------------- helpers


def _snapshot(root: Path) -> dict[str, str]:
    """{relative path: kind + content hash or link target} of everything under root."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = "file:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _desktop_keys(path: Path) -> dict[str, str]:
    keys = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            keys[k.strip()] = v
    return keys


def _exec_argv(value: str) -> list[str]:
    """Parse an Exec= value the way the Desktop Entry spec says a launcher must (string escapes,
    then quoting, then %% -> %): an independent reading to check exec_quote against."""
    s, i, out = [], 0, ""
    while i < len(value):  # 1. string-level escapes
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            out += {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(value[i + 1], "\\" + value[i + 1])
            i += 2
        else:
            out += c
            i += 1
    arg, quoted, i, args = "", False, 0, s
    started = False
    while i < len(out):  # 2. quoting
        c = out[i]
        if quoted:
            if c == "\\" and i + 1 < len(out) and out[i + 1] in '"`$\\':
                arg += out[i + 1]
                i += 2
                continue
            if c == '"':
                quoted = False
            else:
                arg += c
        elif c == '"':
            quoted, started = True, True
        elif c == " ":
            if arg or started:
                args.append(arg)
            arg, started = "", False
        else:
            arg += c
        i += 1
    if arg or started:
        args.append(arg)
    return [a.replace("%%", "%") for a in args]


def _validate(path: Path) -> None:
    p = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout + p.stderr == "", p.stdout + p.stderr  # not even a hint


def _fake_bundle(tmp: Path) -> Path:
    """The shape of dist/hft-lab/ (what check_bundle requires), a few KB."""
    b = tmp / "bundle"
    (b / "_internal" / "lib").mkdir(parents=True)
    (b / "LICENSES" / "common").mkdir(parents=True)
    (b / "hft-lab").write_text('#!/bin/sh\necho fake hft-lab "$@"\n')
    os.chmod(b / "hft-lab", 0o755)
    (b / "_internal" / "lib" / "libx.so.1").write_bytes(b"\x7fELF" + bytes(64))
    os.symlink("lib/libx.so.1", b / "_internal" / "libx.so.1")
    (b / "LICENSES" / "README.md").write_text("# Licenses\n")
    (b / "LICENSES" / "common" / "LGPL-3.0.txt").write_text("GNU LESSER GENERAL PUBLIC LICENSE\n")
    (b / "LICENSES" / "components.json").write_text('[{"version": "9.9.9"}]')
    (b / "hft-lab.desktop").write_text(TEMPLATE)
    shutil.copy(ROOT / "resources" / "icons" / "hft-lab.png", b / "hft-lab.png")
    shutil.copy(ROOT / "resources" / "icons" / "hft-lab.svg", b / "hft-lab.svg")
    return b


# ---------------------------------------------------------------- desktop entry (fast)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40))
def test_exec_quote_round_trips_through_the_spec_parser(name):
    path = "/opt/" + name + "/bin/hft-lab"
    assert _exec_argv(exec_quote(path)) == [path]


@pytest.mark.parametrize(
    "path",
    ["/home/u/.local/bin/hft-lab", "/tmp/with space/bin/hft-lab", '/tmp/q"uo`te$/bin/hft-lab', "/tmp/back\\slash %u/hft-lab"],
)
def test_generated_entry_validates_and_names_absolute_paths(tmp_path, path):
    icon = str(Path(path).parent / "icons" / "hft-lab.png")
    f = tmp_path / "hft-lab.desktop"
    f.write_text(desktop_entry(TEMPLATE, path, icon), encoding="utf-8")
    _validate(f)
    keys = _desktop_keys(f)
    assert _exec_argv(keys["Exec"]) == [path]
    assert keys["Icon"].replace("\\\\", "\\") == icon and keys["Name"] == "HFT Arbitrage Lab"


def test_a_line_break_in_the_prefix_is_refused():
    with pytest.raises(InstallError, match="line break"):
        exec_quote("/tmp/a\nb/hft-lab")


# ---------------------------------------------------------------- installer on a fake bundle (fast)


def test_install_then_uninstall_restores_the_prefix_exactly(tmp_path):
    bundle = _fake_bundle(tmp_path)
    prefix = tmp_path / "pre fix"
    # what the user already had there: another app's entry, icon theme index, a bin folder
    (prefix / "share" / "applications").mkdir(parents=True)
    (prefix / "share" / "applications" / "other.desktop").write_text(TEMPLATE.replace("HFT Arbitrage Lab", "Other"))
    (prefix / "bin").mkdir()
    (prefix / "bin" / "other-tool").write_text("#!/bin/sh\n")
    before = _snapshot(prefix)

    m = installer.install(bundle, prefix)
    assert m.version == "9.9.9"
    launcher = prefix / "bin" / "hft-lab"
    assert launcher.is_symlink() and os.readlink(launcher) == "../lib/hft-lab/hft-lab"
    assert subprocess.run([str(launcher), "--smoke"], capture_output=True, text=True).stdout == "fake hft-lab --smoke\n"
    assert (prefix / "lib" / "hft-lab" / "_internal" / "libx.so.1").is_symlink()
    assert (prefix / "lib" / "hft-lab" / "LICENSES" / "common" / "LGPL-3.0.txt").is_file()
    for rel in ("share/icons/hicolor/256x256/apps/hft-lab.png", "share/icons/hicolor/scalable/apps/hft-lab.svg"):
        assert (prefix / rel).read_bytes() == (bundle / Path(rel).name).read_bytes()
    entry = prefix / "share" / "applications" / "hft-lab.desktop"
    _validate(entry)
    keys = _desktop_keys(entry)
    assert _exec_argv(keys["Exec"]) == [str(launcher)] and keys["TryExec"] == str(launcher)
    assert keys["Icon"] == str(prefix / "share/icons/hicolor/256x256/apps/hft-lab.png")
    # every path the install created is in the manifest, and nothing the user had is
    after = _snapshot(prefix)
    created = set(after) - set(before)
    listed = set(m.files) | set(m.dirs) | set(m.caches)
    assert created == listed
    assert not listed & set(before)

    # installing again (an upgrade) replaces exactly the same set
    installer.install(bundle, prefix)
    assert set(_snapshot(prefix)) == set(after)

    installer.uninstall(prefix)
    assert _snapshot(prefix) == before
    with pytest.raises(InstallError, match="nothing to uninstall"):
        installer.uninstall(prefix)


def test_install_into_an_empty_prefix_and_uninstall_leaves_nothing(tmp_path):
    prefix = tmp_path / "prefix"
    installer.install(_fake_bundle(tmp_path), prefix)
    assert (prefix / "share" / "applications" / "hft-lab.desktop").is_file()
    installer.uninstall(prefix)
    assert not prefix.exists()  # the install created the prefix itself, so the uninstall removed it


def test_install_refuses_to_overwrite_what_it_did_not_install(tmp_path):
    bundle = _fake_bundle(tmp_path)
    prefix = tmp_path / "prefix"
    (prefix / "share" / "applications").mkdir(parents=True)
    (prefix / "share" / "applications" / "hft-lab.desktop").write_text("[Desktop Entry]\nName=mine\n")
    before = _snapshot(prefix)
    with pytest.raises(InstallError, match="was not installed by hft-lab"):
        installer.install(bundle, prefix)
    assert _snapshot(prefix) == before  # nothing half-installed is left
    shutil.rmtree(prefix / "share")
    (prefix / "lib" / "hft-lab").mkdir(parents=True)  # someone else's folder, no manifest
    with pytest.raises(InstallError, match="holds no"):
        installer.install(bundle, prefix)


def test_install_refuses_an_incomplete_bundle(tmp_path):
    bundle = _fake_bundle(tmp_path)
    shutil.rmtree(bundle / "LICENSES")
    with pytest.raises(InstallError, match="LICENSES is missing"):
        installer.install(bundle, tmp_path / "prefix")
    assert not (tmp_path / "prefix").exists()


def test_make_install_and_uninstall_use_the_prefix(tmp_path):
    bundle = _fake_bundle(tmp_path)
    prefix = tmp_path / "with space"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    for target in ("install", "uninstall"):
        p = subprocess.run(
            ["make", "--no-print-directory", target, f"PREFIX={prefix}", f"DIST_APP={bundle}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert p.returncode == 0, p.stdout + p.stderr
        if target == "install":
            assert (prefix / "bin" / "hft-lab").is_symlink()
    assert not prefix.exists() or list(prefix.rglob("*")) == []


# ---------------------------------------------------------------- UTF-8 locale (fast)


@pytest.mark.parametrize(
    "env, ctype_var",
    [({}, "LC_CTYPE"), ({"LANG": "C"}, "LC_CTYPE"), ({"LC_ALL": "C", "LC_NUMERIC": "C.UTF-8"}, "LC_CTYPE")],
)
def test_a_non_utf8_environment_gets_a_utf8_ctype_only(env, ctype_var):
    env = dict(env)
    old_all = env.get("LC_ALL")
    assert ensure_utf8_locale(env) is not None
    assert "LC_ALL" not in env and is_utf8(effective_ctype(env))
    if old_all:  # every other category keeps what LC_ALL gave it
        assert env["LC_NUMERIC"] == old_all and env["LC_MESSAGES"] == old_all


def test_a_utf8_environment_is_left_alone():
    env = {"LANG": "C.UTF-8", "LC_NUMERIC": "C"}
    assert ensure_utf8_locale(env) is None
    assert env == {"LANG": "C.UTF-8", "LC_NUMERIC": "C"}


_QT_START = "from PySide6.QtCore import QCoreApplication; app = QCoreApplication([]); print('started')"


@pytest.mark.parametrize("fix", [False, True])
def test_qt_starts_quietly_in_a_c_locale(fix):
    """The frozen app runs without CPython's UTF-8 mode; `-X utf8=0` reproduces that here. Without the
    fix Qt warns (the control case shows the check can fail); with it, it does not."""
    code = ("from hft_lab.utf8_locale import ensure_utf8_locale; ensure_utf8_locale(); " if fix else "") + _QT_START
    env = {"LC_ALL": "C", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "desktop")}
    p = subprocess.run([sys.executable, "-X", "utf8=0", "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "started", p.stderr
    assert ("Detected locale" in p.stderr) is (not fix), p.stderr


# ---------------------------------------------------------------- the real bundle (slow)


@pytest.fixture(scope="module")
def installed(dist_bundle, tmp_path_factory):
    """The bundle installed by `make install` into a prefix with a space in its name."""
    prefix = tmp_path_factory.mktemp("install") / "my apps"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    p = subprocess.run(
        ["make", "--no-print-directory", "install", f"PREFIX={prefix}"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout + p.stderr
    yield prefix
    if (prefix / "lib" / "hft-lab" / installer.MANIFEST).exists():
        installer.uninstall(prefix)


@pytest.mark.slow
@pytest.mark.timeout(BUNDLE_TIMEOUT)
def test_installed_entry_and_launcher(installed, tmp_path):
    entry = installed / "share" / "applications" / "hft-lab.desktop"
    _validate(entry)
    keys = _desktop_keys(entry)
    (exe,) = _exec_argv(keys["Exec"])
    assert Path(exe).is_absolute() and Path(exe).resolve() == (installed / "lib" / "hft-lab" / "hft-lab").resolve()
    assert Path(keys["Icon"]).is_absolute() and Path(keys["Icon"]).is_file()
    assert (installed / "share/icons/hicolor/scalable/apps/hft-lab.svg").is_file()
    assert (installed / "lib/hft-lab/LICENSES/README.md").is_file()
    # the installed link passes --smoke from an empty environment, elsewhere, quietly (no locale warning)
    grpcd = installed / "lib" / "hft-lab" / "_internal" / "bin" / "grpcd"
    p = subprocess.run(
        [exe, "--smoke"],
        env={"HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert "Detected locale" not in p.stderr
    report = _smoke_json(p.stdout)
    _check_smoke(report, frozen=True)
    assert Path(report["grpcd"]).resolve() == grpcd.resolve()  # the installed server
    assert _wait_until(lambda: not _pids_running(grpcd), 10)


def _start_xvfb(tmp_path: Path) -> tuple[subprocess.Popen, str]:
    r, w = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r) as f:
        display = f.readline().strip()
    assert display, "Xvfb did not start"
    return xvfb, f":{display}"


@pytest.mark.slow
@pytest.mark.timeout(BUNDLE_TIMEOUT)
def test_gio_launch_starts_the_app_from_the_installed_entry(installed, tmp_path):
    """`gio launch` on the installed entry (as a menu would) under a display: the window appears; a
    SIGTERM quits it; no grpcd is left behind."""
    entry = installed / "share" / "applications" / "hft-lab.desktop"
    app_exe = installed / "lib" / "hft-lab" / "hft-lab"
    grpcd = installed / "lib" / "hft-lab" / "_internal" / "bin" / "grpcd"
    xvfb, display = _start_xvfb(tmp_path)
    env = {"HOME": str(tmp_path), "DISPLAY": display, "PATH": "/usr/bin:/bin"}  # no PATH entry for the app
    try:
        log = tmp_path / "gio-launch.log"  # the app inherits gio's stdout/stderr: a file, not a pipe
        with open(log, "w") as out:
            p = subprocess.run(["gio", "launch", str(entry)], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=30)
        assert p.returncode == 0, log.read_text()
        assert _wait_until(lambda: bool(_pids_running(app_exe)), 30), "gio launch started no hft-lab"
        (pid,) = _pids_running(app_exe)

        def window_shown() -> bool:
            tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True).stdout
            return f'"HFT Arbitrage Lab {hft_lab.__version__}"' in tree

        assert _wait_until(window_shown, 90, step=0.5), "no main window on the display"
        # grpcd is started beside the window, once it has painted (start-up, issue 16)
        assert _wait_until(lambda: bool(_pids_running(grpcd)), 30), "the app started no grpcd"
        os.kill(pid, signal.SIGTERM)
        assert _wait_until(lambda: not _pids_running(app_exe), 30), "the app did not quit on SIGTERM"
        assert _wait_until(lambda: not _pids_running(grpcd), 10), f"grpcd left running: {_pids_running(grpcd)}"
    finally:
        for pid in _pids_running(app_exe) + _pids_running(grpcd):
            os.kill(pid, signal.SIGKILL)
        xvfb.terminate()
        xvfb.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(BUNDLE_TIMEOUT)
def test_uninstall_leaves_nothing_behind(installed):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    p = subprocess.run(
        ["make", "--no-print-directory", "uninstall", f"PREFIX={installed}"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert not installed.exists() or list(installed.rglob("*")) == []


# ---------------------------------------------------------------- .deb, licenses, glibc (slow)


@pytest.fixture(scope="module")
def deb(dist_bundle) -> Path:
    """`make deb` without compression (the contents and control file are those of the xz default)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    p = subprocess.run(
        ["make", "--no-print-directory", "deb", "DEB_COMPRESS=none"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout + p.stderr
    (deb,) = (ROOT / "dist").glob(f"hft-lab_{hft_lab.__version__}_*.deb")
    return deb


@pytest.fixture(scope="module")
def elf_report(dist_bundle) -> dict:
    return bundle_elf.scan(dist_bundle)


@pytest.mark.slow
@pytest.mark.timeout(BUNDLE_TIMEOUT)
def test_deb_control_file(deb, elf_report):
    f = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"^(\S+): (.*)$", f, re.MULTILINE))
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    assert fields["Package"] == "hft-lab" and fields["Version"] == hft_lab.__version__ and fields["Architecture"] == arch
    assert int(fields["Installed-Size"]) > 100_000  # KiB: the whole bundle
    deps = [d.strip() for d in fields["Depends"].split(",")]
    assert f"libc6 (>= {elf_report['glibc_min']})" in deps
    # the host libraries the bundled Qt still links against, and the data its libraries read
    for pkg in ("libegl1", "libgl1", "libxcb1", "xkb-data", "fontconfig-config"):
        assert pkg in deps, (pkg, deps)
    # nothing the bundle carries itself is asked of the host
    for bundled in ("libfontconfig1", "libxkbcommon0", "libx11-6", "libglib2.0-0", "libstdc++6", "libssl3"):
        assert bundled not in deps
    # every NEEDED library no bundled file provides maps to one of the Depends packages
    assert {"libEGL.so.1", "libGL.so.1", "libc.so.6"} <= set(elf_report["host_libraries"])


@pytest.mark.slow
@pytest.mark.timeout(BUNDLE_TIMEOUT)
def test_deb_contents(deb, tmp_path):
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    paths = {ln.split()[5] for ln in listing.splitlines()}
    for p in (
        "./opt/hft-lab/hft-lab",
        "./opt/hft-lab/_internal/bin/grpcd",
        "./opt/hft-lab/LICENSES/README.md",
        "./opt/hft-lab/LICENSES/common/LGPL-3.0.txt",
        "./usr/share/applications/hft-lab.desktop",
        "./usr/share/icons/hicolor/256x256/apps/hft-lab.png",
        "./usr/share/icons/hicolor/scalable/apps/hft-lab.svg",
        "./usr/share/doc/hft-lab/copyright",
        "./usr/share/doc/hft-lab/changelog.gz",
        "./usr/share/lintian/overrides/hft-lab",
    ):
        assert p in paths, p
    assert re.search(r"^l\S+ root/root .* \./usr/bin/hft-lab -> /opt/hft-lab/hft-lab$", listing, re.MULTILINE)
    assert all(" root/root " in ln for ln in listing.splitlines())
    # the entry inside the package validates and points at /usr/bin/hft-lab and the installed icon
    subprocess.run(f"dpkg-deb --fsys-tarfile '{deb}' | tar -x -C '{tmp_path}' ./usr/share", shell=True, check=True)
    entry = tmp_path / "usr/share/applications/hft-lab.desktop"
    _validate(entry)
    keys = _desktop_keys(entry)
    assert _exec_argv(keys["Exec"]) == ["/usr/bin/hft-lab"]
    assert keys["Icon"] == "/usr/share/icons/hicolor/256x256/apps/hft-lab.png"
    assert "/opt/hft-lab/LICENSES" in (tmp_path / "usr/share/doc/hft-lab/copyright").read_text()


@pytest.mark.slow
@pytest.mark.timeout(BUNDLE_TIMEOUT)
def test_licenses_in_the_bundle_are_complete(dist_bundle):
    lic = dist_bundle / "LICENSES"
    index = (lic / "README.md").read_text(encoding="utf-8")
    rows = [ln for ln in index.splitlines() if ln.startswith("| ") and "`" in ln]
    assert len(rows) > 100
    for f in re.findall(r"`([^`]+)`", "\n".join(rows)):  # every file the index lists is there
        assert (lic / f).is_file(), f
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (lic / "common/LGPL-3.0.txt").read_text()
    assert "Version 3" in (lic / "common/LGPL-3.0.txt").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in (lic / "common/GPL-3.0.txt").read_text()
    assert "Apache License" in (lic / "common/Apache-2.0.txt").read_text()
    assert (lic / "hft-lab/LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    for comp in (
        "PySide6_Essentials",
        "shiboken6",
        "numpy",
        "pandas",
        "pyqtgraph",
        "grpcio",
        "protobuf",
        "CPython",
        "PyInstaller",
    ):
        assert comp in index, comp
    # every Rust crate linked into grpcd or the extension has its own license files (or a note)
    sys.path.insert(0, str(ROOT / "tools"))
    import collect_licenses

    for crate in collect_licenses.rust_crates():
        if crate["source"] is not None:
            assert f"| {crate['name']} | {crate['version']} |" in index, crate["name"]
    # every host library PyInstaller copied is covered by its Debian copyright file
    for so in ("libxcb-xkb.so.1", "libfontconfig.so.1", "libstdc++.so.6"):
        assert so in index, so


@pytest.mark.slow
@pytest.mark.timeout(BUNDLE_TIMEOUT)
def test_licenses_are_in_every_artifact(dist_bundle, deb, installed):
    """The bundle, the .deb and an install carry LICENSES/ (the .tar.xz: test_dist.test_bundle_layout,
    which reads the archive's listing once)."""
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for f in LICENSE_FILES:
        assert (dist_bundle / f).is_file(), f
        assert f"./opt/hft-lab/{f}" in listing, f
    if (installed / "lib" / "hft-lab").exists():  # (the uninstall test may have run already)
        for f in LICENSE_FILES:
            assert (installed / "lib" / "hft-lab" / f).is_file(), f


@pytest.mark.slow
@pytest.mark.timeout(BUNDLE_TIMEOUT)
def test_minimum_glibc_is_measured_and_documented(dist_bundle, elf_report):
    major, minor = map(int, elf_report["glibc_min"].split("."))
    assert (major, minor) >= (2, 17)
    # an independent reading (readelf) of the files said to need it
    for rel in elf_report["glibc_files"]:
        out = subprocess.run(["readelf", "-V", "--wide", str(dist_bundle / rel)], capture_output=True, text=True).stdout
        found = {tuple(map(int, v)) for v in re.findall(r"GLIBC_(\d+)\.(\d+)", out)}
        assert max(found) == (major, minor), rel
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"glibc {elf_report['glibc_min']}" in readme, "README's minimum glibc differs from the bundle's"


# ---------------------------------------------------------------- About points to LICENSES/ (fast)


class _NoBackends:
    """Just enough router for the About box: no backend answers."""

    class pyo3:  # noqa: N801
        @staticmethod
        def info():
            raise RuntimeError("not loaded")

    @staticmethod
    def grpc_state(wait=False):
        return "down"


def test_about_points_to_the_bundled_licenses_folder(qtbot, tmp_path, monkeypatch):
    from hft_lab.ui import about

    (tmp_path / "_internal").mkdir()
    (tmp_path / "_internal" / "resources").symlink_to(ROOT / "resources")
    (tmp_path / "LICENSES").mkdir()
    (tmp_path / "LICENSES" / "README.md").write_text("# Licenses\n")
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "_internal"), raising=False)  # as in the bundle
    assert about.licenses_dir() == tmp_path / "LICENSES"
    dlg = about.AboutDialog(_NoBackends())
    qtbot.addWidget(dlg)
    assert str(tmp_path / "LICENSES") in dlg.licenses.toPlainText()
    assert str(tmp_path / "LICENSES") in dlg.info.toPlainText()
    assert "LGPL-3.0" in dlg.licenses.toPlainText()  # the summary follows the pointer
    monkeypatch.delattr(sys, "_MEIPASS")
    shutil.rmtree(tmp_path / "LICENSES")
    dist_licenses = ROOT / "dist" / "hft-lab" / "LICENSES"
    assert about.licenses_dir() == (dist_licenses if dist_licenses.is_dir() else None)
