"""A UTF-8 character locale before Qt starts, so an empty environment (env -i, a bare service, a
desktop launcher without LANG) runs quietly.

Qt 6 requires a UTF-8 LC_CTYPE: when the environment gives none it switches to one itself and warns
('Detected locale "C" with character encoding "ANSI_X3.4-1968", which is not UTF-8'). Here the
same switch is made silently, in the environment, before QApplication exists: the language of the
LC_CTYPE locale with ".UTF-8" if that locale is installed, else C.UTF-8 (built into glibc >= 2.35 and
into every Debian/Ubuntu). Only LC_CTYPE changes; messages, numbers, dates keep what the user set.
The frozen app needs this: CPython's own C-locale coercion (PEP 538) is not applied there.
"""

from __future__ import annotations

import locale
import os
from collections.abc import MutableMapping

CATEGORIES = (
    "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY", "LC_MESSAGES",
    "LC_PAPER", "LC_NAME", "LC_ADDRESS", "LC_TELEPHONE", "LC_MEASUREMENT", "LC_IDENTIFICATION",
)  # fmt: skip


def effective_ctype(env: MutableMapping[str, str]) -> str:
    """The LC_CTYPE locale name the C library picks from `env` (LC_ALL, then LC_CTYPE, then LANG)."""
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        v = env.get(var)
        if v:
            return v
    return "C"


def is_utf8(name: str) -> bool:
    """Whether setting LC_CTYPE to `name` gives a UTF-8 codeset ("" or unknown locale: False)."""
    old = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, name)
        return locale.nl_langinfo(locale.CODESET).replace("-", "").lower() == "utf8"
    except locale.Error:
        return False
    finally:
        locale.setlocale(locale.LC_CTYPE, old)


def utf8_fallback(name: str) -> str:
    """'de_DE.UTF-8' for 'de_DE.ISO-8859-1' or 'de_DE@euro' when installed, else 'C.UTF-8' (as Qt does)."""
    base = name.split(".", 1)[0].split("@", 1)[0]
    candidates = ([f"{base}.UTF-8"] if base not in ("", "C", "POSIX") else []) + ["C.UTF-8", "C.utf8"]
    return next((c for c in candidates if is_utf8(c)), "C.UTF-8")


def ensure_utf8_locale(env: MutableMapping[str, str] | None = None) -> str | None:
    """Make `env` (default os.environ) select a UTF-8 LC_CTYPE; return the locale set, or None when the
    environment already gives one. LC_ALL (which would override LC_CTYPE) is spread into the other
    categories so that everything but the character set stays as it was."""
    env = os.environ if env is None else env
    current = effective_ctype(env)
    if is_utf8(current):
        return None
    target = utf8_fallback(current)
    lc_all = env.get("LC_ALL")
    if lc_all:
        for cat in CATEGORIES:
            env[cat] = lc_all
        del env["LC_ALL"]
    env["LC_CTYPE"] = target
    return target
