"""Find (and with --fix rewrite) short PySide6 enum names such as `Qt.AlignLeft`, `QDialog.Accepted`
into their fully qualified forms (`Qt.AlignmentFlag.AlignLeft`, `QDialog.DialogCode.Accepted`).

The short forms are not all available on the pinned PySide6: `dlg.Accepted` raised AttributeError
inside File > Import and the menu silently did nothing. `make test` runs this as a gate (no --fix):
it exits 1 and lists every short form it finds.
"""

from __future__ import annotations

import enum
import re
import sys
from pathlib import Path


def enum_map() -> dict[tuple[str, str], str]:
    from PySide6 import QtCore, QtGui, QtWidgets

    out: dict[tuple[str, str], str] = {}
    for mod in (QtCore, QtGui, QtWidgets):
        for cname in dir(mod):
            cls = getattr(mod, cname)
            if not isinstance(cls, type):
                continue
            for ename, e in vars(cls).items():
                if isinstance(e, type) and issubclass(e, enum.Enum):
                    for m in e.__members__:
                        out.setdefault((cname, m), f"{cname}.{ename}.{m}")
    return out


PATTERN = re.compile(r"\b(Q[A-Za-z]+|Qt)\.([A-Z][A-Za-z0-9_]*)\b(?!\s*\()")


def scan(paths: list[Path], fix: bool) -> int:
    mapping = enum_map()
    enum_types = {(full.split(".")[0], full.split(".")[1]) for full in mapping.values()}
    found = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        changed = False
        for i, line in enumerate(lines):

            def repl(m: re.Match) -> str:
                nonlocal found, changed
                cls, name = m.group(1), m.group(2)
                if (cls, name) in enum_types:  # already this class's enum type: Qt.AlignmentFlag.…
                    return m.group(0)
                full = mapping.get((cls, name))
                if full is None:
                    return m.group(0)
                found += 1
                print(f"{path}:{i + 1}: {cls}.{name} -> {full}")
                changed = True
                return full

            lines[i] = PATTERN.sub(repl, line)
        # instance attribute forms like `dlg.Accepted` cannot be resolved statically: flag the common ones
        for i, line in enumerate(lines):
            for m in re.finditer(r"\b(dlg|dialog|box|msg)\.(Accepted|Rejected|Yes|No|Ok|Cancel)\b", line):
                found += 1
                print(f"{path}:{i + 1}: {m.group(0)}: use the class's qualified enum (QDialog.DialogCode.Accepted)")
        if fix and changed:
            path.write_text("".join(lines), encoding="utf-8")
    return found


def main(argv: list[str]) -> int:
    fix = "--fix" in argv
    roots = [Path(a) for a in argv if not a.startswith("--")] or [Path("desktop"), Path("tests"), Path("tools")]
    files = [p for r in roots for p in (sorted(r.rglob("*.py")) if r.is_dir() else [r])]
    files = [p for p in files if "_proto" not in p.parts and p.name != "qualify_enums.py"]
    n = scan(files, fix)
    if n and not fix:
        print(f"{n} short PySide6 enum name(s): run `python tools/qualify_enums.py --fix`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
