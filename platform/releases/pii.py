"""zh_CN PII scrubbing of free text, vectorised over a pyarrow string array.

Every rule is an RE2 pattern run by pyarrow.compute in C++ over the rows that can match
at all, never a Python loop per row. RE2 has no look-around, so "not inside a longer digit
run" is a captured leading non-digit (put back in the replacement) and a trailing ASCII
word boundary `\\b`.

Limits, all best effort:
- ID numbers: 18 characters written without spaces (not the old 15-digit ones), redacted
  only when the GB 11643 check digit holds; the birth date inside is not checked.
- Numbers are ASCII digits; full-width digits and Chinese numerals are not recognised,
  and a number glued to a following Latin letter (13812345678abc) is left alone.
- Addresses need a road (路/街/道/巷), an ASCII house number and 号; the city and district
  before the road stay, as they are quasi-identifiers handled by generalization.
- Names are found only after a cue word (联系人, 业主, 住户, 租客, ...) or before a title
  (先生, 女士, ...), and only with one of the common surnames below: a name without cue or
  with a rare surname stays, and a character next to a name may be taken with it.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpora.identity import id_check_digits

PLACEHOLDERS = {
    "id_number": "[身份证]",
    "phone": "[电话]",
    "plate": "[车牌]",
    "address": "[地址]",
    "name": "[姓名]",
}

_LEAD = r"(^|[^0-9])"  # the start or a non-digit, captured so the replacement keeps it

_ID = r"[0-9]{17}[0-9Xx]"
_ID_CANDIDATE = _LEAD + _ID + r"\b"
_MOBILE = r"(?:\+?86[- ]?)?1[3-9][0-9](?:[0-9]{8}|[- ][0-9]{4}[- ][0-9]{4})"
_LANDLINE = r"(?:0[1-9][0-9]{1,2}[-－ ]?|[(（]0[1-9][0-9]{1,2}[)）] ?)[1-9][0-9]{6,7}"
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Road names are Han characters, but not the ones that usually end a district or precede
# an address (区, 市, 住, 在, ...), so the match starts at the road name.
_ROAD = r"[^\P{Han}区市县镇乡村省在住于至近靠和与及]{1,8}(?:路|街|道|巷)"
_ADDRESS = _ROAD + r"(?:[0-9]+弄)?[0-9]+(?:[-－][0-9]+)?号(?:[0-9]+(?:号楼|栋|幢|单元|层|楼|室))*"

# Common surnames, less the ones that are everyday words right after a cue (于, 向, 方).
_SURNAME = (
    "(?:欧阳|司马|上官|诸葛|[王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾"
    "肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付白邹孟熊秦邱江尹薛闫"
    "段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔汤])"
)
# Given-name characters: Han, less those that usually follow a name (电话, 先生, 反映, ...).
_GIVEN = r"[^\P{Han}电手先女身住联已称反要在的说表是为于和与及等]"
_CUES = "联系人|业主|户主|住户|租客|租户|房东|承租人|出租人|产权人"
_TITLES = "先生|女士|小姐|阿姨|师傅"

# (category, pattern, replacement), applied in this order after the ID numbers.
_RULES = (
    ("phone", f"{_LEAD}(?:{_MOBILE}|{_LANDLINE})\\b", r"\1[电话]"),
    ("plate", f"[{_PROVINCES}][A-HJ-NP-Z][·•]?[A-HJ-NP-Z0-9]{{5,6}}\\b", "[车牌]"),
    ("address", _ADDRESS, "[地址]"),
    ("name", f"((?:{_CUES})(?:[:：]\\s*|\\s+|为|是)?){_SURNAME}{_GIVEN}{{1,2}}(?:{_TITLES})?", r"\1[姓名]"),
    ("name", f"{_SURNAME}{_GIVEN}{{0,2}}(?:{_TITLES})", "[姓名]"),
)
# One DFA pass over all rows finds the few that any rule matches; only those are scanned
# rule by rule.
_MAYBE_PII = "|".join([_ID_CANDIDATE] + [pattern for _, pattern, _ in _RULES])


def scrub(texts: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, dict[str, int]]:
    """Texts with PII replaced by placeholders, and the count redacted per category."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if not pa.types.is_string(texts.type) and not pa.types.is_large_string(texts.type):
        raise TypeError(f"scrub needs a string array, not {texts.type}")
    maybe = _mask(pc.match_substring_regex(texts, _MAYBE_PII))
    rows = texts.filter(maybe)
    counts = dict.fromkeys(PLACEHOLDERS, 0)
    rows, counts["id_number"] = _redact_id_numbers(rows)
    for category, pattern, replacement in _RULES:
        rows, n = _redact(rows, pattern, replacement, PLACEHOLDERS[category])
        counts[category] += n
    return pc.replace_with_mask(texts, maybe, rows), counts


def _redact(texts: pa.Array, pattern: str, replacement: str, placeholder: str) -> tuple[pa.Array, int]:
    """Replace every match in the rows that match; count the placeholders it added."""
    hit = _mask(pc.match_substring_regex(texts, pattern))
    before = texts.filter(hit)
    after = pc.replace_substring_regex(before, pattern, replacement)
    added = _total(pc.count_substring(after, placeholder)) - _total(pc.count_substring(before, placeholder))
    return pc.replace_with_mask(texts, hit, after), added


def _redact_id_numbers(texts: pa.Array) -> tuple[pa.Array, int]:
    """Redact 18-digit candidates whose check digit holds.

    A replacement cannot be chosen per row, so candidates are handled by position: the
    j-th candidate of every row that has one is extracted, validated in numpy, and
    replaced where valid. Going from the last position to the first keeps the earlier
    candidates where they were."""
    found = pc.fill_null(pc.count_substring_regex(texts, _ID_CANDIDATE), 0).to_numpy()
    redacted = 0
    for j in reversed(range(int(found.max(initial=0)))):
        pattern = _nth_id_number(j)
        rows = np.flatnonzero(found > j)
        ids = pc.extract_regex(texts.take(rows), pattern).field("id")
        rows = rows[_valid_id_numbers(ids)]
        replaced = pc.replace_substring_regex(texts.take(rows), pattern, r"\1[身份证]")
        where = np.zeros(len(texts), dtype=bool)
        where[rows] = True
        texts = pc.replace_with_mask(texts, pa.array(where), replaced)
        redacted += len(rows)
    return texts, redacted


def _nth_id_number(j: int) -> str:
    """Matches from the start through the j-th (0-based) candidate; `head` is all before it."""
    skip = rf"(?:[\s\S]*?(?:^|[^0-9]){_ID}\b){{{j}}}"
    return rf"^(?P<head>{skip}[\s\S]*?(?:^|[^0-9]))(?P<id>{_ID})\b"


def _valid_id_numbers(ids: pa.Array) -> np.ndarray:
    raw = np.array(ids.to_pylist(), dtype="S18").view(np.uint8).reshape(-1, 18)
    expected = id_check_digits(raw[:, :17] - ord("0")).astype("S1").view(np.uint8)
    last = np.where(raw[:, 17] == ord("x"), ord("X"), raw[:, 17])
    return expected == last


def _mask(matches: pa.Array) -> pa.Array:
    return pc.fill_null(matches, False)


def _total(counts: pa.Array) -> int:
    return pc.sum(counts).as_py() or 0
