"""Price file import (hft_lab.data.csv_import): encoding."""

from __future__ import annotations

import codecs

from .model import ENCODINGS, CsvImportError

# ----------------------------------------------------------------------------------------------
# encoding
# ----------------------------------------------------------------------------------------------


def _bom_encoding(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF32_LE) or head.startswith(codecs.BOM_UTF32_BE):
        raise CsvImportError("the file is UTF-32 (binary data with NUL bytes), not supported: save it as UTF-8")
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16"
    return None


def _normalise_encoding(enc: str) -> str:
    e = enc.lower().replace("_", "-").strip()
    aliases = {
        "utf8": "utf-8",
        "utf-8-bom": "utf-8-sig",
        "utf8-sig": "utf-8-sig",
        "latin1": "latin-1",
        "iso-8859-1": "latin-1",
        "iso8859-1": "latin-1",
        "l1": "latin-1",
        "utf16": "utf-16",
    }
    e = aliases.get(e, e)
    if e not in ENCODINGS:
        raise CsvImportError(f"unsupported encoding {enc!r}: use one of {', '.join(ENCODINGS)}")
    return e


def _decode_head(head: bytes, whole: bool, encoding: str | None) -> tuple[str, str, str]:
    """(text, encoding, note). text is cut at the last line break when the head is not the file."""
    bom = _bom_encoding(head)
    if encoding is None:
        if bom:
            encoding = bom
        else:
            nul = head.find(b"\x00")
            if nul >= 0:
                line = head.count(b"\n", 0, nul) + 1
                raise CsvImportError(
                    "binary data (NUL bytes): not a text file in a supported encoding (UTF-8, UTF-16 with a "
                    "byte-order mark, Latin-1); if it is UTF-16 or UTF-32 without a BOM, save it as UTF-8",
                    line,
                )
            encoding = "utf-8"
    else:
        encoding = _normalise_encoding(encoding)
    note = ""
    dec = codecs.getincrementaldecoder(encoding)()
    try:
        text = dec.decode(head, final=whole)
    except UnicodeDecodeError as e:
        line = head.count(b"\n", 0, e.start) + 1
        if encoding == "utf-8" and bom is None:
            text = head.decode("latin-1")
            encoding, note = "latin-1", f"not valid UTF-8 at line {line}"
        else:
            raise CsvImportError(
                f"not valid {ENCODINGS.get(encoding, encoding)} ({e.reason}): choose another encoding", line
            ) from None
    if encoding == "utf-8" and text.startswith("\ufeff"):
        text, encoding = text[1:], "utf-8-sig"
    elif encoding in ("utf-8-sig", "utf-16") and text.startswith("\ufeff"):
        text = text[1:]
    if not whole:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut > 0:
            text = text[: cut + 1]
    return text, encoding, note
