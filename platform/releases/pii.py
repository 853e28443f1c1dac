"""zh_CN PII scrubbing of free text, over a pyarrow string array.

Three layers, each counted in its own category:

1. **Rules** (`id_number`, `phone`, `plate`, `address`, `name`): RE2 patterns run by
   pyarrow.compute in C++ over the rows that can match at all, never a Python loop per row.
   RE2 has no look-around, so "not inside a longer digit run" is a captured leading
   non-digit (put back in the replacement) and a trailing ASCII word boundary `\\b`. Names
   here are a common surname after a cue word (联系人, 业主, 住户, ...), before a title
   (先生, 女士, ...), in brackets right after a phone (`[电话]（郑娜）`) or right before one.
2. **Known entities** (`known_name`, `known_phone`, `known_id_number`): a `Gazetteer` of the
   corpus's own direct identifiers (the person names, phones and ID numbers in the columns
   a policy drops, over the whole corpus) is removed from every free-text field wherever it
   occurs as a whole name.
3. **Tagger** (`tagged_name`, and `name` for a cue the rules did not know): jieba's
   part-of-speech tags (`nr`, a person) and a wider cue set with any of ~300 surnames, 方 and
   于 included, each candidate checked against jieba's dictionary so that ordinary words
   (方便, 周一, 高峰期) and place names (陆家嘴, 张江镇, 田林街道) stay.

Layers 2 and 3 run in Python, but only on the distinct texts that can still hold a name
after layer 1 (a surname followed by a Han character, no placeholder in the way), and a
`Scrubber` remembers every text it has seen, so a corpus whose notes collapse into a few
templates after the rules costs a few tagger calls however many rows it has. A corpus whose
notes are all different pays about a millisecond per note (jieba's tagger), and loading the
tagger takes a few seconds once per process (the pipeline starts it beside its first passes).

Measured: of the 108,739 distinct person names of a 100,000-room generated corpus (owners,
occupants, and 8,863 contacts that exist only inside notes), 0 reach any output file
(`python bench/names.py --rooms 100000`; 20,000 rooms in tests/releases/attacks/test_names.py);
all 500,976 names the generator can draw are removed from both of its name-bearing note
patterns; none of the 50 names in 49 hand-written notes of other patterns is left, and none of 56
harmless notes and place names is changed (tests/releases/test_pii.py).

Limits, all best effort:
- ID numbers: 18 characters written without spaces (not the old 15-digit ones), redacted
  by rule only when the GB 11643 check digit holds; any other form only when the corpus's
  own identifier columns hold it (the gazetteer).
- Numbers are ASCII digits; full-width digits and Chinese numerals are not recognised,
  and a number glued to a following Latin letter (13812345678abc) is left to the gazetteer.
- Addresses need a road (路/街/道/巷), an ASCII house number and 号; the city and district
  before the road stay, as they are quasi-identifiers handled by generalization. Addresses
  are not in the gazetteer.
- A name that is in no identifier column, has no cue and that jieba does not tag as a
  person stays (for example a two-character name that is also a common word, 高峰 or
  金华, with no cue), as do nicknames (老王, 小李), names in Latin letters or pinyin,
  minority names with a middle dot, and a name written with a space inside it. A
  two-character gazetteer name that is also a dictionary word stays where jieba reads the
  word (周一上午), and a name followed by a place word (路, 街道, 镇, ...) is read as a place.
- Redaction may take a character next to a name with it (向海燕 → [姓名] where 向 was "to").
"""
from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpora.identity import id_check_digits

PLACEHOLDERS = {
    "id_number": "[身份证]",
    "phone": "[电话]",
    "plate": "[车牌]",
    "address": "[地址]",
    "name": "[姓名]",  # by a cue word, title, bracket or phone beside it
    "known_name": "[姓名]",  # a name from the corpus's own identifier columns
    "known_phone": "[电话]",
    "known_id_number": "[身份证]",
    "tagged_name": "[姓名]",  # a person by jieba's part-of-speech tags alone
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

# Common surnames that are rarely an everyday word right after a cue. 于, 向, 方 and the
# rest of SURNAMES are left to the dictionary-checked layer 3 (业主于本月, 联系人方便时).
_COMMON_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕"
    "丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃"
    "武戴莫孔汤"
)
COMPOUND_SURNAMES = (
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "令狐", "端木", "独孤", "南宫", "西门", "轩辕", "闻人", "澹台", "公冶", "宗政", "濮阳",
    "太史", "申屠", "钟离", "呼延", "赫连", "拓跋", "第五", "百里", "东郭", "左丘",
)
# About 300 single-character surnames, which between them cover nearly everyone.
SURNAMES = frozenset(
    _COMMON_SURNAMES
    + "于方向常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮"
    "柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓"
    "古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣"
    "巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘"
    "满闻位厉伊仝区郜海阚花权强帅屠豆朴盖练廉禹井祖漆巴丰支卿国狄平计索宣晋相初门云容敬扈晁芮普阙"
    "浦戈伏鹿薄邸雍辜羊乌母裘亓修邰赫杭况宿鲜印逯隆茹诸战慕危玉银亢嵇湛宾戎勾茅利居揭干尉冶斯元束"
    "檀衣信展阴昝智幸奉植衡富尧闭由"
)
_SURNAME = "(?:" + "|".join(COMPOUND_SURNAMES[:4]) + f"|[{_COMMON_SURNAMES}])"
_ANY_SURNAME = "(?:" + "|".join(COMPOUND_SURNAMES) + "|[" + "".join(sorted(SURNAMES)) + "])"
# Characters that usually follow a name (电话, 先生, 反映, 已, 同意, ...) rather than end it.
_NOT_GIVEN = "电手先女身住联已称反要在的说表是为于和与及等来投报同确签办负代搬入不也都还把被让请去到从向对给"
_GIVEN = f"[^\\P{{Han}}{_NOT_GIVEN}]"
_CUES = "联系人|业主|户主|住户|租客|租户|房东|承租人|出租人|产权人"
_TITLES = "先生|女士|小姐|阿姨|师傅"

# (category, pattern, replacement), applied in this order after the ID numbers.
_RULES = (
    ("phone", f"{_LEAD}(?:{_MOBILE}|{_LANDLINE})\\b", r"\1[电话]"),
    ("plate", f"[{_PROVINCES}][A-HJ-NP-Z][·•]?[A-HJ-NP-Z0-9]{{5,6}}\\b", "[车牌]"),
    ("address", _ADDRESS, "[地址]"),
    ("name", f"((?:{_CUES})(?:[:：]\\s*|\\s+|为|是)?){_SURNAME}{_GIVEN}{{1,2}}(?:{_TITLES})?", r"\1[姓名]"),
    ("name", f"{_SURNAME}{_GIVEN}{{0,2}}(?:{_TITLES})", "[姓名]"),
    # A name in brackets right after a phone (紧急联系电话[电话]（郑娜）): any surname, as
    # nothing but a name sits there.
    ("name", f"(\\[电话\\]\\s*[（(]){_ANY_SURNAME}{_GIVEN}{{1,2}}([）)])", r"\1[姓名]\2"),
    # A name right before a phone (王伟 13812345678, 张伟：13812345678), with 于, 方 or 向
    # before it taken too: there they are more likely a surname than a preposition.
    ("name", f"[于方向]?{_SURNAME}[^\\P{{Han}}机号码话线{_NOT_GIVEN}]{{1,2}}(\\s*[:：]?\\s*\\[电话\\])", r"[姓名]\1"),
)
# One DFA pass over all rows finds the few that any rule matches; only those are scanned
# rule by rule.
_MAYBE_PII = "|".join([_ID_CANDIDATE] + [pattern for _, pattern, _ in _RULES])
# What can still hold a name after the rules: a surname and a Han character after it.
_MAYBE_NAME = f"{_ANY_SURNAME}\\p{{Han}}"
# A digit run that may be a known phone or ID number the rules did not take, and one number.
_NUMBER = re.compile(r"[0-9][0-9 \-]{5,}[0-9Xx]")
_MAYBE_NUMBER = _NUMBER.pattern
_DIGITS = re.compile(r"[0-9]{6,17}[0-9Xx]")
# Columns whose values are place names, kept out of name redaction (they are released).
PLACE_COLUMNS = ("district", "neighbourhood")
_HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")
_PLACE_PIECE = re.compile(r".+?(?:街道|新区|省|市|区|县|镇|乡|村|路|街|大道|巷|弄)|.+$")
_PLACE_SUFFIX = re.compile(r"(?:街道|新区|省|市|区|县|镇|乡|村|路|街|大道|巷|弄|[东南西北中]路)$")
_SEPARATORS = re.compile(r"[\s\-+()（）－]")
_WHOLE_NAME = r"^\p{Han}{2,6}$"
_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in dict.fromkeys(PLACEHOLDERS.values())))


@dataclass(frozen=True)
class GazetteerPart:
    """What one batch of a corpus adds to its gazetteer (see gazetteer_part)."""

    names: pa.Array
    numbers: np.ndarray
    places: frozenset[str]


@dataclass(frozen=True)
class Gazetteer:
    """A corpus's own direct identifiers, to be removed from its free text wherever they
    occur: person names (2 to 6 Han characters), and phones and ID numbers as numeric keys
    (see number_keys), so a million-row corpus holds them in a few megabytes. Also the
    corpus's place names, which are never taken for a person's."""

    names: frozenset[str] = frozenset()
    numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # sorted keys
    places: frozenset[str] = frozenset()

    @classmethod
    def from_table(cls, table: pa.Table, columns: Iterable[str]) -> Gazetteer:
        """From the given identifier columns and the PLACE_COLUMNS of one table."""
        return cls.combine([gazetteer_part(table, columns)])

    @classmethod
    def combine(cls, parts: Iterable[GazetteerPart]) -> Gazetteer:
        """One gazetteer from the parts of a corpus's batches."""
        parts = list(parts)
        names = pa.concat_arrays([p.names for p in parts]) if parts else pa.array([], pa.string())
        return cls(frozenset(pc.unique(names).to_pylist()), _sorted_unique([p.numbers for p in parts]),
                   frozenset().union(*(p.places for p in parts)))

    def knows_number(self, text: str) -> bool:
        key = _number_key(text)
        if key is None:
            return False
        i = int(np.searchsorted(self.numbers, key))
        return i < len(self.numbers) and int(self.numbers[i]) == key

    def summary(self) -> dict[str, int]:
        """How many entries, for a report (never the entries themselves)."""
        return {"names": len(self.names), "phones_and_id_numbers": len(self.numbers), "places": len(self.places)}


def gazetteer_part(table: pa.Table, columns: Iterable[str]) -> GazetteerPart:
    """The names, phones and ID numbers in the given identifier columns of one batch (a
    column is read as names or as numbers by the shape of most of its first values; a column
    of neither, such as addresses, adds nothing), and the place names in its PLACE_COLUMNS."""
    names, numbers = [pa.array([], pa.string())], []
    for name in columns:
        if name not in table.column_names:
            continue
        column = table.column(name)
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        column = column.cast(pa.string())
        kind = _column_kind(column)
        if kind == "names":  # distinct over the whole corpus in combine
            is_name = _mask(pc.match_substring_regex(column, r"^\s*\p{Han}{2,6}\s*$"))
            names.append(pc.utf8_trim_whitespace(column.filter(is_name)))
        elif kind == "numbers":
            numbers.append(number_keys(column))
    places = place_words(table.column(c) for c in PLACE_COLUMNS if c in table.column_names)
    return GazetteerPart(pa.concat_arrays(names), _sorted_unique(numbers), places)


def _column_kind(column: pa.Array, sample: int = 2000) -> str | None:
    head = pc.drop_null(column.slice(0, sample))
    if len(head) == 0:
        head = pc.drop_null(column)[:sample]
    if len(head) == 0:
        return None
    if _count(pc.match_substring_regex(pc.utf8_trim_whitespace(head), _WHOLE_NAME)) * 2 >= len(head):
        return "names"
    if len(number_keys(head)) * 2 >= len(head):
        return "numbers"
    return None


def place_words(columns: Iterable[pa.Array | pa.ChunkedArray]) -> frozenset[str]:
    """Place names in the values of place columns: each run of Han characters cut after a
    district-level suffix (上海市 / 浦东新区 / 世纪大道), and each piece without its suffix
    too (张江镇 → 张江, 田林街道 → 田林)."""
    words = set()
    for column in columns:
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        for value in pc.drop_null(pc.unique(column)).to_pylist():
            for run in _HAN_RUN.findall(value):
                for piece in _PLACE_PIECE.findall(run):
                    words.add(piece)
                    stem = _PLACE_SUFFIX.sub("", piece)
                    if len(stem) >= 2:
                        words.add(stem)
    return frozenset(w for w in words if len(w) >= 2)


def number_keys(values: pa.Array) -> np.ndarray:
    """int64 keys of the values that are phone or ID numbers: ASCII digits, with separators
    (space, -, +, brackets) removed, 7 to 18 of them, the last may be X. The key is
    int(digits) * 2 + (last is X); a number that differs from a known one only by leading
    zeros is taken for it (and redacted), which costs nothing but a redaction."""
    keys, ok = _clean_keys(values)
    rest = pc.drop_null(values.filter(pc.invert(ok)))
    rest = rest.filter(_mask(pc.match_substring_regex(rest, r"^\s*[0-9\s\-+()（）－]{6,}[0-9Xx]\s*$")))
    if len(rest) == 0:
        return keys
    return np.concatenate([keys, _clean_keys(pc.replace_substring_regex(rest, _SEPARATORS.pattern, ""))[0]])


def _clean_keys(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """number_keys of the values that are digits alone, and which those were."""
    has_x = _mask(pc.or_(pc.ends_with(values, "X"), pc.ends_with(values, "x")))
    body = pc.if_else(has_x, pc.utf8_slice_codeunits(values, 0, -1), values) if pc.any(has_x).as_py() else values
    size = pc.binary_length(values)
    ok = _mask(pc.and_(pc.ascii_is_decimal(body), pc.and_(pc.greater_equal(size, 7), pc.less_equal(size, 18))))
    digits = body.filter(ok)
    if len(digits) == 0:
        return np.zeros(0, np.int64), ok
    return pc.cast(digits, pa.int64()).to_numpy() * 2 + has_x.filter(ok).to_numpy(zero_copy_only=False), ok


def _sorted_unique(arrays: list[np.ndarray]) -> np.ndarray:
    """Sorted distinct values (np.unique's hash path is slow on millions of int64)."""
    keys = np.sort(np.concatenate([np.zeros(0, np.int64), *arrays]))
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def _number_key(text: str) -> int | None:
    """number_keys for one value."""
    digits = _SEPARATORS.sub("", text)
    if not _DIGITS.fullmatch(digits):
        return None
    return int(digits[:-1] if digits[-1] in "Xx" else digits) * 2 + (digits[-1] in "Xx")


def scrub(texts: pa.Array | pa.ChunkedArray, known: Gazetteer | None = None) -> tuple[pa.Array, dict[str, int]]:
    """Texts with PII replaced by placeholders, and the count redacted per category."""
    return Scrubber(known)(texts)


class Scrubber:
    """Scrubs batches of one corpus's free text against its gazetteer, remembering the
    texts it has already tagged (they repeat across batches). Safe to share between the
    pipeline's threads."""

    MEMO_LIMIT = 200_000  # distinct texts remembered; past it, the memo starts again

    def __init__(self, known: Gazetteer | None = None):
        self.known = known or Gazetteer()
        self._places = _alternation(self.known.places)
        self._memo: dict[tuple[str, str], tuple[str, tuple[tuple[str, int], ...]]] = {}

    def __call__(self, texts: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, dict[str, int]]:
        texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
        if not pa.types.is_string(texts.type) and not pa.types.is_large_string(texts.type):
            raise TypeError(f"scrub needs a string array, not {texts.type}")
        # Each distinct text is scrubbed once (notes repeat a lot); counts are per row.
        encoded = pc.dictionary_encode(texts)
        values = encoded.dictionary
        rows = np.bincount(pc.drop_null(encoded.indices).to_numpy(), minlength=len(values))
        found = {category: np.zeros(len(values), np.int64) for category in PLACEHOLDERS}
        values = self._rules(values, found)
        if len(self.known.numbers):
            values = self._in_python(values, _MAYBE_NUMBER, self._numbers, found)
        values = self._in_python(values, _MAYBE_NAME, self._names, found)
        counts = {category: int(per_value @ rows) for category, per_value in found.items()}
        return values.take(encoded.indices), counts

    @staticmethod
    def _rules(values: pa.Array, found: dict[str, np.ndarray]) -> pa.Array:
        maybe = _mask(pc.match_substring_regex(values, _MAYBE_PII))
        where = np.flatnonzero(maybe.to_numpy(zero_copy_only=False))
        rows = values.filter(maybe)
        rows, found["id_number"][where] = _redact_id_numbers(rows)
        for category, pattern, replacement in _RULES:
            rows, added = _redact(rows, pattern, replacement, PLACEHOLDERS[category])
            found[category][where] += added
        return pc.replace_with_mask(values, maybe, rows)

    def _in_python(self, values: pa.Array, maybe: str, redact, found: dict[str, np.ndarray]) -> pa.Array:
        """Apply `redact` (one text in, (text, counts) out) to each of the distinct values
        that match `maybe`, remembered across calls, and put the results back."""
        hit = _mask(pc.match_substring_regex(values, maybe))
        where = np.flatnonzero(hit.to_numpy(zero_copy_only=False))
        if len(where) == 0:
            return values
        key = redact.__name__
        results = []
        for i, text in zip(where, values.filter(hit).to_pylist()):
            memo = self._memo.get((key, text))
            if memo is None:
                memo = redact(text)
                if len(self._memo) >= self.MEMO_LIMIT:
                    self._memo.clear()
                self._memo[(key, text)] = memo
            results.append(memo[0])
            for category, n in memo[1]:
                found[category][i] += n
        return pc.replace_with_mask(values, hit, pa.array(results, values.type))

    def _numbers(self, text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
        """Known phones and ID numbers the rules left (other formats, wrong check digits)."""
        found = {"known_phone": 0, "known_id_number": 0}

        def replace(match: re.Match) -> str:
            run = match.group(0)
            if not self.known.knows_number(run):  # the whole run, else each number in it
                return run if match.re is _DIGITS else _DIGITS.sub(replace, run)
            digits = _SEPARATORS.sub("", run)
            category = "known_id_number" if len(digits) in (15, 18) else "known_phone"
            found[category] += 1
            return PLACEHOLDERS[category]

        return _NUMBER.sub(replace, text), tuple((c, n) for c, n in found.items() if n)

    def _names(self, text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
        spans = find_names(text, self.known.names, self._places)
        found: dict[str, int] = {}
        for start, end, category in reversed(spans):
            text = text[:start] + PLACEHOLDERS[category] + text[end:]
            found[category] = found.get(category, 0) + 1
        return text, tuple(found.items())


# ---------------------------------------------------------------------------------------
# Layers 2 and 3: names in one text.

_PERSON_TAGS = frozenset({"nr", "nrfg", "nrt"})
# A dictionary word this frequent (of jieba's ~60 million) is an everyday word.
_COMMON_FREQ = 300
# Tags of a word after a surname that make the surname a function word (于本月, 向前面).
_FUNCTION_TAGS = frozenset({"t", "m", "p", "c", "d", "f", "r", "q", "u", "uj", "ul", "uz", "ud", "ug", "y",
                            "e", "zg", "mq"})
_LEFT_CUES = (
    "紧急联系人", "联系人", "业主", "户主", "住户", "租客", "租户", "房东", "房客", "承租人", "出租人", "产权人",
    "经办人", "负责人", "代理人", "委托人", "申请人", "监护人", "通知", "告知", "交予", "转交", "致电", "联系",
    "委托", "邻居", "母亲", "父亲", "儿子", "女儿", "妻子", "丈夫", "老伴", "姓名", "名叫", "叫做", "叫", "请",
)
_TITLE_CUES = ("先生", "女士", "小姐", "阿姨", "师傅", "老师", "经理", "医生", "律师", "同志", "[电话]")
_VERB_CUES = (
    "来电", "来访", "反映", "反馈", "投诉", "报修", "表示", "称", "说", "要求", "同意", "确认", "签收", "签字",
    "办理", "负责", "代缴", "缴纳", "搬离", "入住", "租住", "居住", "的电话", "电话", "手机", "联系", "回电",
    "回复",
)
_LEFT = re.compile("(?:" + "|".join(sorted(_LEFT_CUES, key=len, reverse=True)) + r")(?:[:：]\s*|\s+|为|是)?$")
_PLACE_ENDS = frozenset("路街巷弄镇乡村区县市省州嘴汇泾浜塘浦港湾桥寺庙苑站园城角")
_PLACE_NEXT = ("街道", "大道", "公园", "广场", "大厦", "小区", "新村", "花园", "中心", "社区", "大街", "古镇",
               "老街", "园区", "景区", "商圈", "故居", "新区")
_BOUNDARY = frozenset(" \t\n，,。.；;：:、！!？?（）()【】[]《》\"'“”‘’/")
_OPEN, _CLOSE = "（(【", "）)】"
_RANK = {"known_name": 0, "name": 1, "tagged_name": 2}

_tagger = None
_tagger_lock = threading.Lock()


def tagger():
    """jieba's part-of-speech tokenizer, loaded once per process from the dictionary in the
    installed package (no network; jieba caches its prefix dictionary in the temp dir)."""
    global _tagger
    with _tagger_lock:
        if _tagger is None:
            import jieba
            import jieba.posseg

            jieba.setLogLevel(logging.WARNING)
            jieba.dt.initialize()
            _tagger = jieba.posseg.dt  # built on import; a second one would read the dictionary again
    return _tagger


def warm_up() -> threading.Thread:
    """Load the tagger in the background (it takes a second or two), so that it is ready
    by the time a release reaches its free text."""
    thread = threading.Thread(target=tagger, name="jieba-warm-up", daemon=True)
    thread.start()
    return thread


def _alternation(words: Iterable[str]) -> re.Pattern | None:
    words = sorted(words, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, words))) if words else None


def _surname_at(text: str, i: int) -> int:
    """Length of the surname starting at text[i] (2 for a compound one), or 0."""
    if text[i:i + 2] in COMPOUND_SURNAMES:
        return 2
    return 1 if text[i] in SURNAMES else 0


class _Reading:
    """One text as jieba reads it, and the tests a candidate name must pass."""

    def __init__(self, text: str, places: re.Pattern | None):
        self.text = text
        tok = tagger()
        self.freq, self.tags = tok.tokenizer.FREQ, tok.word_tag_tab
        self.tokens, position = [], 0
        for word, flag in tok.cut(text):
            self.tokens.append((position, position + len(word), word, flag))
            position += len(word)
        self.starts = {t[0]: t for t in self.tokens}
        self.ends = {t[1] for t in self.tokens}
        self.blocked = np.zeros(len(text) + 1, dtype=bool)  # inside a placeholder
        for pattern in (_PLACEHOLDER, places):
            for m in pattern.finditer(text) if pattern else ():
                self.blocked[m.start():m.end()] = True

    def common(self, word: str, *, any_tag: bool) -> bool:
        """An everyday dictionary word: frequent and not a person (or frequent at all, or
        in the dictionary at all as something other than a person, with any_tag)."""
        freq = self.freq.get(word, 0)
        person = self.tags.get(word, "x")[:2] == "nr"
        if any_tag:
            return freq >= _COMMON_FREQ or (freq > 0 and not person)
        return freq >= _COMMON_FREQ and not person

    def place(self, start: int, end: int) -> bool:
        after = self.text[end:]
        return self.text[end - 1] in _PLACE_ENDS or after[:1] in _PLACE_ENDS or after.startswith(_PLACE_NEXT)

    def acceptable(self, start: int, end: int, *, strong: bool) -> bool:
        """Whether text[start:end] can be a name: not over a placeholder, not a place, not an
        everyday word or part of one. Strong evidence (a cue and a clear end, brackets, a
        title, a whole known name of 3+ characters) lets a rare dictionary word through."""
        word = self.text[start:end]
        if self.blocked[start:end].any() or len(word) < 2 or self.place(start, end):
            return False
        for token_start, token_end, token, _ in self.tokens:
            if token_start <= start and token_end >= end and token != word and self.common(token, any_tag=False):
                return False  # inside an everyday word: 高峰期, 周一上午
            if token_start >= end:
                break
        if self.common(word, any_tag=not strong):
            return False  # 方便, 方面; and without strong evidence 周一, 高峰
        first = self.starts.get(start)
        if (first and 2 <= first[1] - first[0] and first[1] <= end and first[2] not in COMPOUND_SURNAMES
                and self.common(first[2], any_tag=False)):
            return False  # starts with one: 方便时
        inside = next((t for t in self.tokens if t[0] < start < t[1]), None)
        if inside and self.common(inside[2], any_tag=False):
            return False  # starts inside one: 邻居于丽 is not 居于丽
        rest = self.starts.get(start + _surname_at(self.text, start))
        if not strong and rest and 2 <= rest[1] - rest[0] and rest[1] <= end and rest[3] in _FUNCTION_TAGS:
            return False  # the surname is a preposition: 于本月
        return True


def find_names(
    text: str, known: frozenset[str] = frozenset(), places: re.Pattern | None = None
) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, category) spans of person names in one text, in order:
    known names, names with a cue, and names jieba tags, none over a placeholder or one of
    the `places`."""
    reading = _Reading(text, places)
    candidates: list[tuple[int, int, str]] = []
    # Layer 2: the gazetteer, as whole names (the longest at each position).
    if known:
        for i in range(len(text) - 1):
            for size in range(min(6, len(text) - i), 1, -1):
                if text[i:i + size] in known:
                    if reading.acceptable(i, i + size, strong=size >= 3):
                        candidates.append((i, i + size, "known_name"))
                    break
    # Layer 3a: jieba's person tags, alone or after a surname jieba cut off (杨/秀英), where
    # jieba found the name itself: its dictionary's "persons" are too often words or places
    # (申请人, 苗圃, 鲁迅公园, 陆家嘴) and famous people.
    tokens = reading.tokens
    for k, (start, end, word, flag) in enumerate(tokens):
        if flag in _PERSON_TAGS and 2 <= end - start <= 4 and _surname_at(text, start):
            if reading.freq.get(word, 0) == 0 and reading.acceptable(start, end, strong=False):
                candidates.append((start, end, "tagged_name"))
        if k + 1 < len(tokens) and (word in SURNAMES or word in COMPOUND_SURNAMES):
            nxt = tokens[k + 1]
            if (nxt[3] in _PERSON_TAGS and 1 <= nxt[1] - nxt[0] <= 2 and reading.freq.get(word + nxt[2], 0) == 0
                    and reading.acceptable(start, nxt[1], strong=False)):
                candidates.append((start, nxt[1], "tagged_name"))
    # Layer 3b: a surname and one or two given characters with a cue on either side.
    for i in range(len(text) - 1):
        surname = _surname_at(text, i)
        if not surname or reading.blocked[i]:
            continue
        left = _LEFT.search(text, max(0, i - 8), i) is not None  # cues are short
        for given in (2, 1):
            end = i + surname + given
            given_part = text[i + surname:end]
            if (end > len(text) or not all("\u4e00" <= c <= "\u9fff" and c not in _NOT_GIVEN for c in given_part)
                    or text[i + surname:].startswith(_VERB_CUES + _TITLE_CUES)):
                continue
            after = text[end:]
            clear_end = not after or after[0] in _BOUNDARY
            title = after.startswith(_TITLE_CUES)
            bracket = i > 0 and text[i - 1] in _OPEN and after[:1] in _CLOSE
            strong = (left and clear_end) or title or bracket
            weak = after.startswith(_VERB_CUES) or (left and end in reading.ends)
            if (strong or weak) and reading.acceptable(i, end, strong=strong):
                candidates.append((i, end, "name"))
                break
    # The longest first, then the strongest evidence; no overlaps.
    candidates.sort(key=lambda c: (-(c[1] - c[0]), _RANK[c[2]], c[0]))
    taken = np.zeros(len(text) + 1, dtype=bool)
    spans = []
    for start, end, category in candidates:
        if not taken[start:end].any():
            taken[start:end] = True
            spans.append((start, end, category))
    return sorted(spans)


# ---------------------------------------------------------------------------------------
# Layer 1 helpers.


def _redact(texts: pa.Array, pattern: str, replacement: str, placeholder: str) -> tuple[pa.Array, np.ndarray]:
    """Replace every match in the rows that match; count the placeholders it added, by row."""
    hit = _mask(pc.match_substring_regex(texts, pattern))
    before = texts.filter(hit)
    after = pc.replace_substring_regex(before, pattern, replacement)
    added = np.zeros(len(texts), np.int64)
    added[np.flatnonzero(hit.to_numpy(zero_copy_only=False))] = (
        pc.count_substring(after, placeholder).to_numpy() - pc.count_substring(before, placeholder).to_numpy()
    )
    return pc.replace_with_mask(texts, hit, after), added


def _redact_id_numbers(texts: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Redact 18-digit candidates whose check digit holds; how many, by row.

    A replacement cannot be chosen per row, so candidates are handled by position: the
    j-th candidate of every row that has one is extracted, validated in numpy, and
    replaced where valid. Going from the last position to the first keeps the earlier
    candidates where they were."""
    found = pc.fill_null(pc.count_substring_regex(texts, _ID_CANDIDATE), 0).to_numpy()
    redacted = np.zeros(len(texts), np.int64)
    for j in reversed(range(int(found.max(initial=0)))):
        pattern = _nth_id_number(j)
        rows = np.flatnonzero(found > j)
        ids = pc.extract_regex(texts.take(rows), pattern).field("id")
        rows = rows[_valid_id_numbers(ids)]
        replaced = pc.replace_substring_regex(texts.take(rows), pattern, r"\1[身份证]")
        where = np.zeros(len(texts), dtype=bool)
        where[rows] = True
        texts = pc.replace_with_mask(texts, pa.array(where), replaced)
        redacted[rows] += 1
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


def _count(mask: pa.Array) -> int:
    return pc.sum(_mask(mask).cast(pa.int64())).as_py() or 0


def _total(counts: pa.Array) -> int:
    return pc.sum(counts).as_py() or 0

