"""zh_CN PII scrubbing: each category is redacted and counted, ID numbers only when their
check digit holds, phones only when not part of a longer number, and everything else in
the text, Chinese included, comes back as it was."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from corpora.identity import id_check_digit, is_valid_id_number
from releases.pii import PLACEHOLDERS, scrub

pytestmark = pytest.mark.release

VALID_ID = "11010519491231002" + id_check_digit("11010519491231002")  # ...002X
WRONG_ID = VALID_ID[:-1] + "0"  # same digits, wrong check digit


def _scrub(*texts):
    scrubbed, counts = scrub(pa.array(list(texts), pa.string()))
    return scrubbed.to_pylist(), counts


@pytest.mark.parametrize(
    "text, expected, category",
    [
        (f"身份证号{VALID_ID}，已核验", "身份证号[身份证]，已核验", "id_number"),
        (f"证件{VALID_ID.lower()}", "证件[身份证]", "id_number"),
        ("手机13812345678请回电", "手机[电话]请回电", "phone"),
        ("手机 +86 138 1234 5678", "手机 [电话]", "phone"),
        ("物业电话021-58881234转客服", "物业电话[电话]转客服", "phone"),
        ("座机（0755）8888123", "座机[电话]", "phone"),
        ("车位停放沪A12345", "车位停放[车牌]", "plate"),
        ("新能源车沪AD12345已登记", "新能源车[车牌]已登记", "plate"),
        ("住浦东新区世纪大道100号", "住浦东新区[地址]", "address"),
        ("长宁路1018弄3号1202室漏水", "[地址]漏水", "address"),
        ("淮海中路99号2号楼801室", "[地址]", "address"),
        ("联系人：张伟，周末在家", "联系人：[姓名]，周末在家", "name"),
        ("业主欧阳娜娜反映噪音", "业主[姓名]反映噪音", "name"),
        ("请联系王女士", "请联系[姓名]", "name"),
        ("租客李建国先生已搬离", "租客[姓名]已搬离", "name"),
    ],
)
def test_each_category_is_redacted_and_counted(text, expected, category):
    scrubbed, counts = _scrub(text)
    assert scrubbed == [expected]
    assert counts == {c: int(c == category) for c in PLACEHOLDERS}


def test_an_id_number_with_a_wrong_check_digit_is_not_an_id_and_stays():
    assert not is_valid_id_number(WRONG_ID)
    text = f"订单{WRONG_ID}已付款"
    assert _scrub(text) == ([text], dict.fromkeys(PLACEHOLDERS, 0))


def test_valid_and_invalid_ids_in_one_text_are_told_apart():
    scrubbed, counts = _scrub(f"甲{VALID_ID}，乙{WRONG_ID}，丙{VALID_ID}，丁{WRONG_ID}")
    assert scrubbed == [f"甲[身份证]，乙{WRONG_ID}，丙[身份证]，丁{WRONG_ID}"]
    assert counts["id_number"] == 2


def test_id_numbers_are_redacted_exactly_when_the_check_digit_holds():
    """Against identity.is_valid_id_number as the oracle, over many random numbers."""
    rng = np.random.default_rng(11)
    numbers = ["".join(map(str, digits)) for digits in rng.integers(0, 10, (2000, 17))]
    numbers = [n + (id_check_digit(n) if i % 2 else str(rng.integers(0, 10))) for i, n in enumerate(numbers)]
    scrubbed, counts = _scrub(*(f"号码{n}备注" for n in numbers))
    expected = ["号码[身份证]备注" if is_valid_id_number(n) else f"号码{n}备注" for n in numbers]
    assert scrubbed == expected
    assert counts["id_number"] == sum(map(is_valid_id_number, numbers)) > 900


@pytest.mark.parametrize(
    "text",
    [
        "流水号138123456789",  # 12 digits: a phone number cannot be read off it
        "账号9913812345678",
        f"批次{VALID_ID}7",  # 19 digits
        "编号沪A1234567",  # too long for a plate
    ],
)
def test_numbers_inside_longer_runs_are_not_redacted(text):
    assert _scrub(text) == ([text], dict.fromkeys(PLACEHOLDERS, 0))


def test_adjacent_numbers_are_each_redacted():
    scrubbed, counts = _scrub("13812345678,13912345678/021-58881234")
    assert scrubbed == ["[电话],[电话]/[电话]"]
    assert counts["phone"] == 3


def test_counts_add_up_over_rows_and_categories():
    scrubbed, counts = _scrub(
        f"联系人张伟，电话13812345678，身份证{VALID_ID}",
        "业主住世纪大道100号，车牌沪A12345，手机13912345678",
        "无",
        None,
    )
    assert scrubbed == [
        "联系人[姓名]，电话[电话]，身份证[身份证]",
        "业主住[地址]，车牌[车牌]，手机[电话]",
        "无",
        None,
    ]
    assert counts == {"id_number": 1, "phone": 2, "plate": 1, "address": 1, "name": 1}


def test_text_without_pii_comes_back_unchanged():
    texts = [
        "房屋状况良好，无违建",
        "业主反映漏水，已报修",  # a cue word without a name
        "2019年翻新，面积约85平方米，3号楼",  # numbers that are not PII
        "营业时间9:00-21:00，邮编200120",
        "Room 1202, renovated in 2019 ✓",
        "",
        None,
    ]
    assert _scrub(*texts) == (texts, dict.fromkeys(PLACEHOLDERS, 0))


def test_chinese_text_around_redactions_is_intact():
    text = "住户（王女士）称：楼道灯坏了！电话13812345678。谢谢🙏"
    scrubbed, _ = _scrub(text)
    assert scrubbed == ["住户（[姓名]）称：楼道灯坏了！电话[电话]。谢谢🙏"]


def test_chunked_columns_are_scrubbed_whole():
    column = pa.chunked_array([["电话13812345678"], ["无", "沪A12345"]])
    scrubbed, counts = scrub(column)
    assert scrubbed.to_pylist() == ["电话[电话]", "无", "[车牌]"]
    assert counts["phone"] == counts["plate"] == 1
