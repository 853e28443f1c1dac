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
    assert counts == {**dict.fromkeys(PLACEHOLDERS, 0), "id_number": 1, "phone": 2, "plate": 1, "address": 1, "name": 1}


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


# ---------------------------------------------------------------------------------------
# Names: the generator's own patterns, patterns it does not make, and what must stay.

def test_the_generators_contact_patterns_lose_every_name_whatever_the_surname():
    """Every surname the generator draws (方 and 于 included, which the old cue rules left
    out), with one- and two-character given names, in both templates that carry a name."""
    from corpora.generator import GIVEN, SURNAMES

    given = GIVEN.to_pylist()
    names = [s + a + b for s in SURNAMES.to_pylist() for a, b in zip(given[:-1:7], given[3::7])]
    names += [s + a for s in "方于王田周高金" for a in given[:-1]]  # one character, the hard cases
    texts = [f"联系人{n} 13812345678" for n in names] + [f"紧急联系电话13912345678（{n}）" for n in names]
    scrubbed, counts = _scrub(*texts)
    assert set(scrubbed) == {"联系人[姓名] [电话]", "紧急联系电话[电话]（[姓名]）"}
    assert counts["name"] == len(texts) and counts["phone"] == len(texts)


# Notes in patterns the generator does not make, and the names in each.
OWN_NOTES = [
    ("王建国来电反映楼上漏水", ["王建国"]),
    ("张三反映楼道灯坏了", ["张三"]),
    ("李秀英投诉噪音", ["李秀英"]),
    ("业主陈晓燕已缴清物业费", ["陈晓燕"]),
    ("租客赵磊先生已搬离", ["赵磊"]),
    ("住户刘芳女士称电梯故障", ["刘芳"]),
    ("联系人：周杰，周末在家", ["周杰"]),
    ("联系人孙悦，电话13812345678", ["孙悦"]),
    ("房东马丽同意续租一年", ["马丽"]),
    ("承租人吴刚要求退押金", ["吴刚"]),
    ("产权人为郑国强", ["郑国强"]),
    ("户主是何丽娟", ["何丽娟"]),
    ("紧急联系人方圆 13912345678", ["方圆"]),
    ("紧急联系人于洋（女儿）", ["于洋"]),
    ("邻居于丽反映异味", ["于丽"]),
    ("通知方卫东到物业领取钥匙", ["方卫东"]),
    ("已告知向海燕办理过户", ["向海燕"]),
    ("物业经理李明说已处理", ["李明"]),
    ("由常浩负责跟进", ["常浩"]),
    ("交予上官婉儿签收", ["上官婉儿"]),
    ("欧阳娜娜已入住", ["欧阳娜娜"]),
    ("司马光先生来访", ["司马光"]),
    ("请诸葛明回电", ["诸葛明"]),
    ("租户宁一诺已搬离", ["宁一诺"]),
    ("房客是郝杰", ["郝杰"]),
    ("费用由母亲柏淑芬支付", ["柏淑芬"]),
    ("杨秀英代缴物业费", ["杨秀英"]),
    ("钱伟 13812345678", ["钱伟"]),
    ("王伟：021-58881234", ["王伟"]),
    ("13812345678（刘洋）", ["刘洋"]),
    ("（陈静）13912345678", ["陈静"]),
    ("业主（黄志强）不在家", ["黄志强"]),
    ("住在世纪大道100号的张先生", ["张先生"]),
    ("韩梅梅和李雷是室友", ["韩梅梅", "李雷"]),
    ("康宁生来电确认维修时间", ["康宁生"]),
    ("苗青青报修水管", ["苗青青"]),
    ("闫红霞已办理入住", ["闫红霞"]),
    ("覃海洋来电", ["覃海洋"]),
    ("仇建华反映车位被占", ["仇建华"]),
    ("牛振华来访", ["牛振华"]),
    ("东方明珠旁边的房子由东方晓负责", ["东方晓"]),
    ("独孤伟反映问题", ["独孤伟"]),
    ("母亲叫田秀兰", ["田秀兰"]),
    ("业主丈夫叫徐卫国", ["徐卫国"]),
    ("申请人：孔祥瑞", ["孔祥瑞"]),
    ("联系人：戴安娜", ["戴安娜"]),
    ("侯宝林来电咨询", ["侯宝林"]),
    ("蔡徐坤已搬离", ["蔡徐坤"]),
    ("屈原路口的住户龚丽丽投诉", ["龚丽丽"]),
]


def test_names_in_patterns_the_generator_does_not_make_are_all_redacted():
    scrubbed, counts = _scrub(*(note for note, _ in OWN_NOTES))
    left = [(after, name) for after, (_, names) in zip(scrubbed, OWN_NOTES) for name in names if name in after]
    assert left == []
    assert all("[姓名]" in after for after in scrubbed)
    assert counts["name"] + counts["tagged_name"] == sum(len(names) for _, names in OWN_NOTES)
    assert counts["tagged_name"] > 0  # jieba found some that no cue marks


def test_redaction_keeps_the_rest_of_the_note():
    scrubbed, _ = _scrub("房东马丽同意续租一年", "物业经理李明说已处理", "东方明珠旁边的房子由东方晓负责",
                         "韩梅梅和李雷是室友")
    assert scrubbed == ["房东[姓名]同意续租一年", "物业经理[姓名]说已处理", "东方明珠旁边的房子由[姓名]负责",
                        "[姓名]和[姓名]是室友"]


HARMLESS = [
    "正常使用", "已完成年度消防检查", "租约已续签", "待维修：卫生间漏水", "空调外机已更换", "物业费已缴清",
    "近期无变更", "装修中", "新风系统已检修",
    "陆家嘴", "张江镇", "徐家汇", "南京东路", "田林街道", "陆家嘴金融城附近", "徐家汇商圈", "南京东路步行街",
    "龙华寺旁", "朱家角古镇", "曹杨新村", "周浦镇", "金桥镇", "江宁路", "高安路", "石门一路", "长宁区",
    "宋庆龄故居附近", "鲁迅公园", "中山公园", "人民广场", "东方明珠", "世纪公园", "黄浦江边", "华山医院附近",
    "万达广场对面", "和平饭店对面",
    "周一上午维修", "用电高峰期间停电", "小区苗圃旁边的车位", "业主于2019年入住", "业主于本月搬离",
    "业主方面同意", "联系人方便时回电", "住户要求更换门锁", "房东同意续租", "租客已搬离", "物业管理处值班",
    "向东走200米", "于是决定更换", "方向朝南", "高度约3米", "常常停水", "文明小区", "明天上午检修",
    "平时无人居住", "安全通道畅通",
]


def test_ordinary_notes_and_place_names_stay_as_they_were():
    scrubbed, counts = _scrub(*HARMLESS)
    assert [(a, b) for a, b in zip(HARMLESS, scrubbed) if a != b] == []
    assert sum(counts.values()) == 0


# ---------------------------------------------------------------------------------------
# The gazetteer: the corpus's own identifiers, wherever they occur.

from releases.pii import Gazetteer, Scrubber  # noqa: E402


def _gazetteer(**columns):
    """A gazetteer of a table with these columns (shorter ones padded with nulls)."""
    rows = max(map(len, columns.values()))
    table = pa.table({k: pa.array(v + [None] * (rows - len(v)), pa.string()) for k, v in columns.items()})
    return Gazetteer.from_table(table, list(columns))


def test_known_names_are_removed_without_any_cue():
    known = _gazetteer(owner_name=["王秀珍", "郑娜", "于成", None], occupant_name=["陈晓燕", "  李强 "])
    texts = ["王秀珍的房子已出售", "上次郑娜把钥匙放在前台", "于成和陈晓燕合租", "李强", "与李强无关的维修"]
    scrubbed, counts = Scrubber(known)(pa.array(texts))
    assert scrubbed.to_pylist() == ["[姓名]的房子已出售", "上次[姓名]把钥匙放在前台", "[姓名]和[姓名]合租",
                                    "[姓名]", "与[姓名]无关的维修"]
    assert counts["known_name"] == 6


def test_a_known_name_that_is_an_everyday_word_or_a_place_stays_where_it_is_one():
    known = _gazetteer(owner_name=["周一", "高峰", "田林", "张江"], neighbourhood=["田林街道", "张江镇"])
    assert known.places >= {"田林街道", "田林", "张江镇", "张江"}
    texts = ["周一上午维修", "用电高峰期间停电", "田林街道办事处来电", "张江高科技园区", "联系人田林 13812345678"]
    scrubbed, counts = Scrubber(known)(pa.array(texts))
    assert scrubbed.to_pylist() == texts[:4] + ["联系人[姓名] [电话]"]  # a cue still tells a person


def test_known_phones_and_id_numbers_in_forms_the_rules_miss_are_removed():
    known = _gazetteer(owner_phone=["13812345678", "021 5888 1234"], owner_id_number=[WRONG_ID, "310115800101123"])
    texts = ["手机1381234 5678", "13812345678abc", f"证件{WRONG_ID}", "旧证310115800101123", "电话021 5888 1234",
             "订单23812345679"]
    scrubbed, counts = Scrubber(known)(pa.array(texts))
    assert scrubbed.to_pylist() == ["手机[电话]", "[电话]abc", "证件[身份证]", "旧证[身份证]", "电话[电话]",
                                    "订单23812345679"]
    assert counts["known_phone"] == 3 and counts["known_id_number"] == 2


def test_a_gazetteer_reads_columns_by_what_they_hold():
    known = _gazetteer(owner_name=["张伟", "欧阳娜娜"], owner_phone=["13812345678", None],
                       address=["上海市浦东新区世纪大道100号3号楼"])
    assert known.names == {"张伟", "欧阳娜娜"}
    assert known.summary() == {"names": 2, "phones_and_id_numbers": 1, "places": 0}
    assert known.knows_number("138-1234-5678") and not known.knows_number("13812345670")


def test_a_scrubber_remembers_texts_but_counts_every_row():
    scrubber = Scrubber(_gazetteer(owner_name=["郑娜"]))
    batch = pa.array(["郑娜来过", "郑娜来过", "正常使用"])
    first, second = scrubber(batch), scrubber(batch)
    assert first[0].to_pylist() == second[0].to_pylist() == ["[姓名]来过", "[姓名]来过", "正常使用"]
    assert first[1]["known_name"] == second[1]["known_name"] == 2


def test_desensitize_scrubs_free_text_against_the_tables_own_identifiers():
    from releases.desensitize import DesensitizePolicy, transform

    table = pa.table({"owner_name": ["郑娜", "王秀珍"], "notes": ["王秀珍代收快递", "无"]})
    policy = DesensitizePolicy(drop=("owner_name",), free_text=("notes",))
    released, report = transform(table, policy, b"k" * 16)
    assert released.column_names == ["notes"] and released.column("notes").to_pylist() == ["[姓名]代收快递", "无"]
    assert report["pii_redacted"]["counts"]["known_name"] == 1
    assert report["pii_redacted"]["gazetteer"] == {"names": 2, "phones_and_id_numbers": 0, "places": 0}
