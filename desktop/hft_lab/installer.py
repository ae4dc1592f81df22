"""Install the packaged app (dist/hft-lab/) under a prefix, with a menu entry; uninstall exactly that.

    make install   [PREFIX=~/.local]      # = python3 desktop/hft_lab/installer.py install --prefix PREFIX
    make uninstall [PREFIX=~/.local]
    hft-lab/hft-lab install [--prefix P]  # the same from an extracted tarball (the bundle's own Python)

Layout under PREFIX:
    lib/hft-lab/                                   the bundle (launcher lib/hft-lab/hft-lab, LICENSES/)
    lib/hft-lab/.install-manifest.json             every file, link and directory this install created
    bin/hft-lab -> ../lib/hft-lab/hft-lab          the launcher link
    share/applications/hft-lab.desktop             Exec and Icon are absolute paths (no PATH or icon theme needed)
    share/icons/hicolor/256x256/apps/hft-lab.png, share/icons/hicolor/scalable/apps/hft-lab.svg
then `update-desktop-database` and `gtk-update-icon-cache` where they are installed.

Uninstall reads the manifest: it removes the files and links it lists, the directories it created
(when empty), and the caches the install created (a cache that existed before is refreshed instead).
Nothing else is touched. Standard library only: it runs with any python3 >= 3.10, also as root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

APP = "hft-lab"
MANIFEST = ".install-manifest.json"
ICONS = {"256x256": "hft-lab.png", "scalable": "hft-lab.svg"}
# caches the refresh tools write: (directory relative to the prefix, cache file, command)
CACHES = (
    ("share/applications", "mimeinfo.cache", ["update-desktop-database", "-q"]),
    ("share/icons/hicolor", "icon-theme.cache", ["gtk-update-icon-cache", "-q", "-t", "-f"]),
)


class InstallError(Exception):
    """A problem the user must fix (message printed without a traceback)."""


# ------------------------------------------------------------------ the desktop entry


_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def exec_quote(path: str) -> str:
    """An Exec= argument per the Desktop Entry spec: quoted when it holds a reserved character, with
    `"`, `` ` ``, `$` and `\\` escaped inside the quotes; `%` doubled; then the string-level escape of
    backslashes (a literal backslash becomes four)."""
    if "\n" in path or "\r" in path:
        raise InstallError(f"the path {path!r} holds a line break, which a desktop entry cannot express")
    arg = path.replace("%", "%%")
    if any(c in _EXEC_RESERVED for c in arg):
        arg = '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'
    return arg.replace("\\", "\\\\")


def string_escape(value: str) -> str:
    """A desktop-entry string value (backslash escapes of the spec)."""
    if "\n" in value or "\r" in value:
        raise InstallError(f"the path {value!r} holds a line break, which a desktop entry cannot express")
    return value.replace("\\", "\\\\").replace("\t", "\\t")


def desktop_entry(template: str, exec_path: str, icon_path: str) -> str:
    """The shipped entry (resources/hft-lab.desktop) with absolute Exec, TryExec and Icon."""
    out = []
    for line in template.splitlines():
        key = line.split("=", 1)[0].strip()
        if key == "Exec":
            out += [f"Exec={exec_quote(exec_path)}", f"TryExec={string_escape(exec_path)}"]
        elif key == "Icon":
            out.append(f"Icon={string_escape(icon_path)}")
        elif key != "TryExec":
            out.append(line)
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ install


def default_bundle() -> Path:
    if getattr(sys, "frozen", False):  # run from the bundle itself: its folder
        return Path(sys.executable).resolve().parent
    return Path(__file__).resolve().parents[2] / "dist" / APP


def check_bundle(bundle: Path) -> None:
    for rel in (APP, "_internal", "LICENSES", f"{APP}.desktop", *ICONS.values()):
        if not (bundle / rel).exists():
            raise InstallError(f"{bundle} is not a complete bundle ({rel} is missing): run 'make dist' first")


@dataclass
class Manifest:
    prefix: str
    version: str = ""
    files: list[str] = field(default_factory=list)  # files and symlinks, relative to the prefix
    dirs: list[str] = field(default_factory=list)  # directories this install created
    caches: list[str] = field(default_factory=list)  # cache files this install created

    def save(self, prefix: Path) -> None:
        p = prefix / "lib" / APP / MANIFEST
        p.write_text(json.dumps(self.__dict__, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, prefix: Path) -> Manifest | None:
        p = prefix / "lib" / APP / MANIFEST
        if not p.is_file():
            return None
        d = json.loads(p.read_text(encoding="utf-8"))
        return cls(d["prefix"], d.get("version", ""), d["files"], d["dirs"], d["caches"])


class _Installer:
    def __init__(self, prefix: Path, manifest: Manifest):
        self.prefix = prefix
        self.m = manifest

    def rel(self, p: Path) -> str:
        return str(p.relative_to(self.prefix))

    def mkdir(self, d: Path) -> None:
        missing = []
        while not d.exists():
            missing.append(d)
            d = d.parent
        for m in reversed(missing):
            m.mkdir()
            os.chmod(m, 0o755)  # readable by every user whatever the umask (a root install)
            if m == self.prefix or self.prefix in m.parents:  # folders above the prefix are not ours to remove
                self.m.dirs.append(self.rel(m))

    def add_file(self, dst: Path, src: Path | None = None, text: str | None = None, mode: int = 0o644) -> None:
        if dst.exists() or dst.is_symlink():
            raise InstallError(f"{dst} exists and was not installed by hft-lab: remove it or choose another PREFIX")
        self.mkdir(dst.parent)
        if text is not None:
            dst.write_text(text, encoding="utf-8")
            os.chmod(dst, mode)
        else:
            assert src is not None
            shutil.copy2(src, dst)
        self.m.files.append(self.rel(dst))

    def add_link(self, dst: Path, target: str) -> None:
        if dst.exists() or dst.is_symlink():
            raise InstallError(f"{dst} exists and was not installed by hft-lab: remove it or choose another PREFIX")
        self.mkdir(dst.parent)
        os.symlink(target, dst)
        self.m.files.append(self.rel(dst))

    def copy_tree(self, src: Path, dst: Path) -> None:
        self.mkdir(dst)
        for root, dirnames, filenames in os.walk(src):
            r = Path(root)
            out = dst / r.relative_to(src)
            for d in sorted(dirnames):
                if (r / d).is_symlink():
                    self.add_link(out / d, os.readlink(r / d))
                else:
                    self.mkdir(out / d)
            for f in sorted(filenames):
                s = r / f
                if s.is_symlink():
                    self.add_link(out / f, os.readlink(s))
                else:
                    self.add_file(out / f, s)


def _tool_env() -> dict[str, str]:
    """The environment for host tools: without the library path the frozen launcher may have set."""
    env = dict(os.environ)
    if getattr(sys, "frozen", False):
        orig = env.pop("LD_LIBRARY_PATH_ORIG", None)
        if orig is not None:
            env["LD_LIBRARY_PATH"] = orig
        else:
            env.pop("LD_LIBRARY_PATH", None)
    return env


def _refresh(prefix: Path, only: set[str] | None = None) -> None:
    """Run the refresh tools that are installed, for the caches in `only` (all when None)."""
    for rel_dir, cache, cmd in CACHES:
        d = prefix / rel_dir
        if only is not None and f"{rel_dir}/{cache}" not in only:
            continue
        if d.is_dir() and shutil.which(cmd[0]):
            subprocess.run([*cmd, str(d)], capture_output=True, env=_tool_env())


def _app_version(bundle: Path) -> str:
    try:
        return json.loads((bundle / "LICENSES" / "components.json").read_text(encoding="utf-8"))[0]["version"]
    except (OSError, ValueError, LookupError):
        return ""


def install(bundle: Path, prefix: Path, refresh: bool = True) -> Manifest:
    bundle, prefix = bundle.resolve(), Path(os.path.abspath(prefix))
    check_bundle(bundle)
    appdir = prefix / "lib" / APP
    if Manifest.load(prefix) is not None:
        uninstall(prefix, refresh=False)  # an upgrade: the old install goes first, exactly
    elif appdir.exists():
        raise InstallError(f"{appdir} exists but holds no {MANIFEST}: it was not installed by 'make install'")
    if appdir == bundle or bundle in appdir.parents or appdir in bundle.parents:
        raise InstallError(f"the bundle {bundle} and the install folder {appdir} overlap")
    m = Manifest(str(prefix), _app_version(bundle))
    before = {c: (prefix / d / c).exists() for d, c, _ in CACHES}
    inst = _Installer(prefix, m)
    try:
        inst.copy_tree(bundle, appdir)
        launcher = prefix / "bin" / APP
        inst.add_link(launcher, os.path.relpath(appdir / APP, launcher.parent))
        icon_dirs = {size: prefix / "share" / "icons" / "hicolor" / size / "apps" for size in ICONS}
        for size, name in ICONS.items():
            inst.add_file(icon_dirs[size] / name, bundle / name)
        template = (bundle / f"{APP}.desktop").read_text(encoding="utf-8")
        entry = desktop_entry(template, str(launcher), str(icon_dirs["256x256"] / ICONS["256x256"]))
        inst.add_file(prefix / "share" / "applications" / f"{APP}.desktop", text=entry)
        if refresh:
            _refresh(prefix)
        m.caches = [f"{d}/{c}" for d, c, _ in CACHES if not before[c] and (prefix / d / c).exists()]
        m.files.append(str(Path("lib") / APP / MANIFEST))
        m.save(prefix)
    except BaseException:
        _remove(prefix, m)  # leave nothing half-installed
        raise
    return m


# ------------------------------------------------------------------ uninstall


def _inside(prefix: Path, rel: str, dir_ok: bool = False) -> Path:
    p = Path(os.path.normpath(prefix / rel))
    if prefix not in p.parents and not (dir_ok and p == prefix):  # the prefix itself: a folder we created
        raise InstallError(f"the manifest names {rel!r}, which is outside {prefix}: refusing to remove it")
    return p


def _remove(prefix: Path, m: Manifest) -> None:
    for rel in m.files:
        p = _inside(prefix, rel)
        if p.is_symlink() or p.is_file():
            p.unlink()
    for rel in m.caches:  # caches the install created: removed (the tools read the folders without one)
        p = _inside(prefix, rel)
        if p.is_file():
            p.unlink()
    for rel in sorted(m.dirs, key=lambda r: len(Path(r).parts) if r != "." else 0, reverse=True):
        p = _inside(prefix, rel, dir_ok=True)
        if p.is_dir() and not p.is_symlink():
            try:
                p.rmdir()  # only if empty: what the user added stays
            except OSError:
                pass


def uninstall(prefix: Path, refresh: bool = True) -> Manifest:
    prefix = Path(os.path.abspath(prefix))
    m = Manifest.load(prefix)
    if m is None:
        raise InstallError(f"nothing to uninstall: {prefix / 'lib' / APP / MANIFEST} does not exist")
    _remove(prefix, m)
    if refresh:  # caches that existed before the install: re-indexed without our entry and icons
        _refresh(prefix, {f"{d}/{c}" for d, c, _ in CACHES if (prefix / d / c).exists()} - set(m.caches))
    return m


# ------------------------------------------------------------------ command line


def _on_menu_path(prefix: Path) -> bool:
    home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    dirs = [home] + [Path(d) for d in (os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":") if d]
    share = (prefix / "share").resolve()
    return any(share == d.resolve() for d in dirs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hft-lab install|uninstall", description="Install or uninstall the packaged app.")
    ap.add_argument("action", choices=["install", "uninstall"])
    ap.add_argument("--prefix", type=Path, default=Path.home() / ".local", help="default: ~/.local")
    ap.add_argument("--bundle", type=Path, default=None, help="the bundle folder (default: dist/hft-lab, or this bundle)")
    ap.add_argument("--no-refresh", action="store_true", help="do not run update-desktop-database / gtk-update-icon-cache")
    args = ap.parse_args(argv)
    try:
        if args.action == "install":
            bundle = args.bundle or default_bundle()
            m = install(bundle, args.prefix, refresh=not args.no_refresh)
            prefix = Path(m.prefix)
            print(f"installed hft-lab {m.version} from {bundle} into {prefix} ({len(m.files)} files)")
            print(f"  launcher: {prefix / 'bin' / APP}\n  menu entry: {prefix / 'share/applications' / (APP + '.desktop')}")
            if not _on_menu_path(prefix):
                print(
                    f"  note: {prefix / 'share'} is not in XDG_DATA_HOME/XDG_DATA_DIRS, so desktop menus will not list "
                    f"the entry; copy or link it into ~/.local/share/applications or /usr/local/share/applications"
                )
            if str(prefix / "bin") not in os.environ.get("PATH", "").split(":"):
                print(f"  note: {prefix / 'bin'} is not on PATH (the menu entry works regardless)")
        else:
            m = uninstall(args.prefix, refresh=not args.no_refresh)
            print(f"uninstalled hft-lab {m.version} from {m.prefix} ({len(m.files)} files removed)")
    except InstallError as e:
        print(f"hft-lab {args.action}: {e}", file=sys.stderr)
        return 1
    except PermissionError as e:
        print(f"hft-lab {args.action}: permission denied: {e.filename} (a system prefix needs root)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
