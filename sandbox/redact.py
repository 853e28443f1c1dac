"""Masking a run's log before anyone reads it.

A code job's log is what the applicant's script printed while it read private rows, so the
platform stores and shows it (to the data owner's stewards only) with private values masked:

- every token (text between blanks and punctuation) that is a value of a private string
  column with many distinct values (ids, grid codes): `‹value›`;
- every token holding a digit: `‹id›` when it also holds letters (unit and building ids,
  hashes), `‹n›` otherwise (every number: areas, rents, floors, years, counts);
- every run of 24 or more base64 or hex characters with a digit in it: `‹encoded›`;
- but not a traceback's line numbers (`File "...", line 12`), which the steward needs.

What is left is words: exception classes, messages' wording, column names, low-cardinality
categories (a district's or a use's name). A row is its id and its numbers, all masked.

Logs of the platform's own code (the built-in training tasks) never print rows; there only
ids and encoded runs are masked (`numbers=False`), so losses and epochs stay readable.
"""
from __future__ import annotations

import re

MASK_VALUE, MASK_ID, MASK_NUMBER, MASK_ENCODED = "‹value›", "‹id›", "‹n›", "‹encoded›"
DISTINCT_MIN = 50  # string columns with at least this many distinct values are masked

_FRAME = re.compile(r'^(?P<head>  File ".*", line )(?P<line>\d+)(?P<tail>.*)$')
_TOKEN = re.compile(r"[^\s,;:'\"()\[\]{}<>|=`]+")
_ENCODED = re.compile(r"^(?=.*\d)[A-Za-z0-9+/_\-]{24,}={0,2}$")
_ID = re.compile(r"[A-Za-z][A-Za-z_\-]{0,5}\d{5,}")
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[^\W\d_]")


def private_values(table) -> frozenset[str]:
    """The values of `table`'s string columns (a pyarrow Table) with many distinct values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values: set[str] = set()
    for name in table.column_names:
        column = table[name]
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        distinct = pc.unique(column).drop_null()
        if len(distinct) >= DISTINCT_MIN:
            values.update(v for v in distinct.to_pylist() if len(v) >= 3)
    return frozenset(values)


def mask(text: str, values: frozenset[str] = frozenset(), *, numbers: bool = True) -> str:
    """`text` with private values masked (see the module's docstring)."""

    def token(match: re.Match) -> str:
        word = match.group(0)
        if word in values or word.strip(".") in values:
            return MASK_VALUE
        if _ENCODED.match(word):
            return MASK_ENCODED
        if numbers:
            if _DIGIT.search(word):
                return MASK_ID if _LETTER.search(word) else MASK_NUMBER
            return word
        return _ID.sub(MASK_ID, word)

    def line(text_line: str) -> str:
        frame = _FRAME.match(text_line)
        if frame:
            return _TOKEN.sub(token, frame["head"]) + frame["line"] + _TOKEN.sub(token, frame["tail"])
        return _TOKEN.sub(token, text_line)

    return "\n".join(line(part) for part in text.split("\n"))


# Terminal control sequences: CSI (colours, cursor), OSC (titles, links), and lone escapes.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# An absolute path's folders (what is left once the known roots are named): only its file stays.
_ABSOLUTE = re.compile(r"(?<![\w.:/~‹›-])/(?:[\w.+@~-]+/)+(?=[\w.+@~-])")


def plain(text: str, roots: list[tuple[str, str]]) -> str:
    """A log as people read it: no terminal control codes, each of `roots` (folder, label)
    named by its label (the longest first), and any other absolute path cut to `…/file`."""
    text = _ANSI.sub("", text).replace("\r\n", "\n")
    for root, label in sorted(((r.rstrip("/"), lbl) for r, lbl in roots if r.rstrip("/")), key=lambda p: -len(p[0])):
        text = text.replace(root, label)
    return _ABSOLUTE.sub("…/", text)
