"""Tests for the hash-chained event log.

Tampering is simulated the way someone with write access to the table would
do it: by changing, deleting, adding or renumbering rows, then reading them
back in stored seq order.
"""

import dataclasses
import datetime
import hashlib
import json
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain import (
    GENESIS_HASH,
    HASH_VERSION,
    ChainReport,
    EventRecord,
    Tamper,
    canonical_json,
    event_hash,
    link,
    verify_chain,
)

pytestmark = pytest.mark.foundation


def make_chain(n=20, payloads=None):
    rows = []
    prev = None
    for i in range(1, n + 1):
        payload = payloads[i - 1] if payloads is not None else {"n": i, "note": f"event {i}"}
        prev = link(
            prev,
            event_type="application.approved",
            actor=f"user:{i % 3}",
            subject=f"access.application:{i}",
            payload=payload,
            recorded_at=f"2026-11-21T09:41:{i % 60:02d}.123456Z",
        )
        rows.append(prev)
    return rows


def verify(rows, **kwargs):
    """Verify rows as the database would serve them: sorted by stored seq."""
    rows = sorted(rows, key=lambda r: r.seq)
    index = {r.hash: r.seq for r in rows}
    return verify_chain(rows, find_seq_by_hash=index.get, **kwargs)


def renumber(rows, delta):
    return [dataclasses.replace(r, seq=r.seq + delta) for r in rows]


def rehash(rec):
    return dataclasses.replace(rec, hash=rec.computed_hash())


def forged_after(prev, seq=None):
    """A forged event chained to ``prev`` as if it had been recorded then."""
    forged = link(
        prev,
        event_type="application.approved",
        actor="user:attacker",
        subject="access.application:999",
        payload={"forged": True},
        recorded_at="2026-11-21T09:41:06.500000Z",
    )
    return forged if seq is None else rehash(dataclasses.replace(forged, seq=seq))


def assert_tamper(report, kind, seq):
    assert not report.ok
    assert report.tamper is not None
    assert (report.tamper.kind, report.tamper.seq) == (kind, seq), report.tamper.message
    assert re.search(rf"\bevents? {seq}\b", report.tamper.message), report.tamper.message


# --- intact chains -----------------------------------------------------------


def test_intact_chain_verifies():
    rows = make_chain()
    report = verify(rows)
    assert report == ChainReport(ok=True, checked=20, head_seq=20, head_hash=rows[-1].hash, tamper=None)


def test_events_link_to_their_predecessor():
    rows = make_chain(3)
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == GENESIS_HASH
    assert rows[1].prev_hash == rows[0].hash
    assert rows[2].prev_hash == rows[1].hash
    assert all(len(r.hash) == 64 and r.hash == r.hash.lower() for r in rows)


def test_empty_log_verifies():
    assert verify([]) == ChainReport(ok=True, checked=0, head_seq=0, head_hash=GENESIS_HASH, tamper=None)


def test_report_to_dict_is_plain_json():
    rows = make_chain(5)
    rows[2] = dataclasses.replace(rows[2], actor="user:mallory")
    data = verify(rows).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["ok"] is False
    assert data["checked"] == 2
    assert data["head_seq"] == 2
    assert data["tamper"]["kind"] == "edited"
    assert data["tamper"]["seq"] == 3


# --- tampering -------------------------------------------------------------


def test_edited_payload_without_rehash():
    rows = make_chain()
    rows[6] = dataclasses.replace(rows[6], payload=canonical_json({"n": 7, "note": "changed"}))
    report = verify(rows)
    assert_tamper(report, "edited", 7)
    assert report.tamper.message == "event 7 was edited: its content no longer matches its hash"


def test_edited_and_rehashed():
    rows = make_chain()
    rows[6] = rehash(dataclasses.replace(rows[6], payload=canonical_json({"n": 7, "note": "changed"})))
    assert_tamper(verify(rows), "edited", 7)


def test_edited_payload_that_is_no_longer_json():
    rows = make_chain()
    rows[6] = dataclasses.replace(rows[6], payload="{not json")
    assert_tamper(verify(rows), "edited", 7)


def test_deleted_leaving_a_gap():
    rows = make_chain()
    del rows[6]
    report = verify(rows)
    assert_tamper(report, "deleted", 7)
    assert report.checked == 6
    assert report.head_seq == 6


def test_several_deleted_leaving_a_gap():
    rows = make_chain()
    del rows[6:9]
    report = verify(rows)
    assert_tamper(report, "deleted", 7)
    assert "7 to 9" in report.tamper.message


def test_deleted_and_later_events_renumbered():
    rows = make_chain()
    rows = rows[:6] + renumber(rows[7:], -1)
    assert_tamper(verify(rows), "deleted", 7)


def test_first_event_deleted_and_renumbered():
    rows = renumber(make_chain()[1:], -1)
    assert_tamper(verify(rows), "deleted", 1)


def test_inserted_correctly_chained_forgery():
    rows = make_chain()
    forged = forged_after(rows[5])
    assert forged.seq == 7
    rows = rows[:6] + [forged] + renumber(rows[6:], +1)
    assert_tamper(verify(rows), "inserted", 7)


def test_inserted_forgery_with_garbage_hash():
    rows = make_chain()
    forged = dataclasses.replace(forged_after(rows[5]), hash="f" * 64)
    rows = rows[:6] + [forged] + renumber(rows[6:], +1)
    assert_tamper(verify(rows), "inserted", 7)


def test_inserted_forgery_sharing_a_seq():
    rows = make_chain()
    forged = forged_after(rows[5])
    # Both rows carry seq 7; the database may return either first.
    for stored in (rows[:6] + [forged] + rows[6:], rows[:7] + [forged] + rows[7:]):
        report = verify_chain(stored, find_seq_by_hash={r.hash: r.seq for r in stored}.get)
        assert_tamper(report, "inserted", 7)


def test_swapped_seq_values():
    rows = make_chain()
    rows[6], rows[7] = (
        dataclasses.replace(rows[6], seq=8),
        dataclasses.replace(rows[7], seq=7),
    )
    report = verify(rows)
    assert_tamper(report, "reordered", 7)


def test_event_moved_to_the_end():
    rows = make_chain()
    moved = rows[2]
    rows = rows[:2] + renumber(rows[3:], -1) + [dataclasses.replace(moved, seq=20)]
    report = verify(rows)
    assert_tamper(report, "reordered", 3)


def test_first_event_not_chained_to_genesis():
    rows = make_chain()
    rows[0] = rehash(dataclasses.replace(rows[0], prev_hash="ab" * 32))
    report = verify(rows)
    assert not report.ok
    assert report.tamper.seq == 1


def test_first_event_chained_to_nothing_from_the_start():
    first = link(None, event_type="a.b", actor="x", subject="y", payload={}, recorded_at="2026-01-01T00:00:00.000000Z")
    first = rehash(dataclasses.replace(first, prev_hash="1" * 64))
    assert_tamper(verify([first]), "edited", 1)


# --- streaming, progress and resume -----------------------------------------


def test_progress_is_reported_every_ten_thousand_records():
    rows = make_chain(20_001, payloads=[{} for _ in range(20_001)])
    calls = []
    report = verify(rows, progress=calls.append)
    assert report.ok
    assert calls == [10_000, 20_000]


def test_records_are_streamed_not_materialised():
    rows = make_chain()
    pulled = []

    def stream():
        for r in rows:
            pulled.append(r.seq)
            yield r

    tampered = dataclasses.replace(rows[4], actor="user:mallory")

    def tampered_stream():
        for r in rows:
            pulled.append(r.seq)
            yield tampered if r.seq == 5 else r

    assert verify_chain(stream(), find_seq_by_hash=lambda h: None).ok
    pulled.clear()
    report = verify_chain(tampered_stream(), find_seq_by_hash=lambda h: None)
    assert_tamper(report, "edited", 5)
    # Stopping at event 5 needs at most one record of lookahead.
    assert pulled == [1, 2, 3, 4, 5, 6]


def test_resume_from_a_verified_record():
    rows = make_chain()
    index = {r.hash: r.seq for r in rows}
    report = verify_chain(rows[10:], find_seq_by_hash=index.get, start=rows[9])
    assert report == ChainReport(ok=True, checked=10, head_seq=20, head_hash=rows[-1].hash, tamper=None)


def test_resume_detects_a_break_right_after_start():
    rows = make_chain()
    index = {r.hash: r.seq for r in rows}
    assert_tamper(verify_chain(rows[11:], find_seq_by_hash=index.get, start=rows[9]), "deleted", 11)
    other = make_chain()[9]
    other = dataclasses.replace(other, actor="someone else")
    assert not verify_chain(rows[10:], find_seq_by_hash=index.get, start=rehash(other)).ok


def test_resume_with_nothing_new():
    rows = make_chain(3)
    report = verify_chain([], find_seq_by_hash=lambda h: None, start=rows[-1])
    assert report == ChainReport(ok=True, checked=0, head_seq=3, head_hash=rows[-1].hash, tamper=None)


# --- canonical JSON and the hash ------------------------------------------


def test_canonical_json_ignores_key_order():
    a = {"b": 1, "a": {"y": [1, 2], "x": None}}
    b = {"a": {"x": None, "y": [1, 2]}, "b": 1}
    assert canonical_json(a) == canonical_json(b) == '{"a":{"x":null,"y":[1,2]},"b":1}'


def test_canonical_json_keeps_chinese_text_unescaped():
    text = canonical_json({"note": "时间"})
    assert text == '{"note":"时间"}'
    assert "间" in text


def test_canonical_json_accepts_plain_json_values():
    value = {"s": "x", "i": -3, "f": 1.5, "t": True, "n": None, "l": [1, (2, 3)]}
    assert json.loads(canonical_json(value)) == {"s": "x", "i": -3, "f": 1.5, "t": True, "n": None, "l": [1, [2, 3]]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"items": [1, 2, {"when": datetime.datetime(2026, 1, 1)}]}, "payload.items[2].when: datetime is not JSON"),
        ({"x": float("nan")}, "payload.x: nan"),
        ({"x": [float("inf")]}, "payload.x[0]: inf"),
        ({"tags": {"a", "b"}}, "payload.tags: set is not JSON"),
        ({"amount": Decimal("1.50")}, "payload.amount: Decimal is not JSON"),
        ({"blob": b"\x00"}, "payload.blob: bytes is not JSON"),
        ({"counts": {1: "one"}}, "payload.counts: key 1 is a int"),
        ({"odd key": {"x": object()}}, 'payload["odd key"].x: object is not JSON'),
    ],
)
def test_canonical_json_rejects_non_json_with_the_path(value, expected):
    with pytest.raises(ValueError) as excinfo:
        canonical_json(value, path="payload")
    assert expected in str(excinfo.value)


def test_canonical_json_rejects_circular_values():
    value = {"a": []}
    value["a"].append(value)
    with pytest.raises(ValueError, match="circular"):
        canonical_json(value)


def test_event_hash_matches_the_documented_encoding_of_version_1():
    # Written out by hand from the module docstring, not produced by canonical_json.
    envelope_text = (
        '{"actor":"user:42","at":"2026-11-21T09:41:02.123456Z",'
        '"payload":{"amount":"12.50","note":"时间"},'
        f'"prev":"{GENESIS_HASH}","seq":1,"subject":"access.application:17",'
        '"type":"application.approved","v":1}'
    )
    expected = hashlib.sha256(envelope_text.encode("utf-8")).hexdigest()
    fields = dict(
        event_type="application.approved",
        actor="user:42",
        subject="access.application:17",
        recorded_at="2026-11-21T09:41:02.123456Z",
    )
    computed = event_hash(seq=1, prev_hash=GENESIS_HASH, payload='{"note":"时间","amount":"12.50"}', version=1,
                          **fields)
    assert computed == expected
    # Pinned so an accidental change of encoding cannot pass silently: events written
    # before RFC 8785 keep verifying under their version.
    assert computed == "068627dac4b617653815a4793ce60137f3a27225d7da2b9f2abc014fc549a26c"
    assert link(None, payload={"amount": "12.50", "note": "时间"}, version=1, **fields).hash == expected


# What Python's json.dumps and RFC 8785 write differently: ECMAScript numbers, UTF-16 key order.
JCS_PAYLOAD = {"delta": 1e-05, "epsilon": 3.0, "noise": 0.0, "neg": -0.0, "rows": 1e16, "huge": 1e21,
               "third": 1 / 3, "keys": {"\U0001f600": 1, "\uff61": 2}, "note": "时间\u2028"}
JCS_PAYLOAD_TEXT = ('{"delta":0.00001,"epsilon":3,"huge":1e+21,"keys":{"\U0001f600":1,"\uff61":2},"neg":0,'
                    '"noise":0,"note":"时间\u2028","rows":10000000000000000,"third":0.3333333333333333}')


def test_event_hash_matches_the_documented_encoding_of_version_2():
    # Written out by hand from RFC 8785, not produced by the library.
    envelope_text = (
        '{"actor":"user:42","at":"2026-11-21T09:41:02.123456Z",'
        f'"payload":{JCS_PAYLOAD_TEXT},'
        f'"prev":"{GENESIS_HASH}","seq":1,"subject":"access.application:17",'
        '"type":"application.approved","v":2}'
    )
    expected = hashlib.sha256(envelope_text.encode("utf-8")).hexdigest()
    fields = dict(event_type="application.approved", actor="user:42", subject="access.application:17",
                  recorded_at="2026-11-21T09:41:02.123456Z")
    assert HASH_VERSION == 2
    rec = link(None, payload=JCS_PAYLOAD, **fields)
    # The stored text is the JCS text itself, so any language hashes it back to the same bytes.
    assert (rec.version, rec.payload, rec.hash) == (2, JCS_PAYLOAD_TEXT, expected)
    assert rec.computed_hash() == expected
    assert event_hash(seq=1, prev_hash=GENESIS_HASH, payload=json.dumps(JCS_PAYLOAD), **fields) == expected
    assert expected == "9924bf4b130c2cb000abd625c66a9aaddc72fe834bce2fb8562765fffeb74744"


def test_version_1_and_version_2_events_chain_and_verify_together():
    fields = dict(event_type="application.approved", actor="user:42", subject="access.application:17")
    old = link(None, payload=JCS_PAYLOAD, recorded_at="2026-11-21T09:41:02.000000Z", version=1, **fields)
    new = link(old, payload=JCS_PAYLOAD, recorded_at="2026-11-21T09:41:03.000000Z", **fields)
    assert (old.version, new.version) == (1, 2) and old.payload != new.payload
    assert verify([old, new]).ok
    # The version is hashed: relabelling an event's version breaks it.
    assert_tamper(verify([dataclasses.replace(old, version=2), new]), "edited", 1)
    assert_tamper(verify([old, dataclasses.replace(new, version=1)]), "edited", 2)
    with pytest.raises(ValueError, match="hash version 3 is unknown"):
        link(new, payload={}, recorded_at="2026-11-21T09:41:04.000000Z", version=3, **fields)


def test_a_payload_integer_a_double_cannot_hold_is_refused_with_its_path():
    with pytest.raises(ValueError, match=r"payload\.ids\[1\]: 18446744073709551617 is beyond"):
        link(None, event_type="application.approved", actor="a", subject="s:1", payload={"ids": [1, 2**64 + 1]},
             recorded_at="2026-11-21T09:41:04.000000Z")
    # One a double holds exactly is the same JSON number as the double: what a payload read back from
    # its JCS text holds (1e16 is stored as 10000000000000000), so it can be recorded again.
    rec = link(None, event_type="application.approved", actor="a", subject="s:1",
               payload={"copied": json.loads(link(None, event_type="application.approved", actor="a", subject="s:1",
                                                  payload={"rows": 1e16, "big": 2.0**64},
                                                  recorded_at="2026-11-21T09:41:04.000000Z").payload)},
               recorded_at="2026-11-21T09:41:04.000000Z")
    assert rec.payload == '{"copied":{"big":18446744073709552000,"rows":10000000000000000}}'
    assert rec.computed_hash() == rec.hash


def test_seq_is_part_of_the_hash():
    rec = make_chain(1)[0]
    assert rec.computed_hash() == rec.hash
    assert rec.computed_hash(seq=2) != rec.hash


# --- link() validation --------------------------------------------------------


LINK_ARGS = dict(
    event_type="application.approved",
    actor="user:1",
    subject="access.application:1",
    payload={},
    recorded_at="2026-11-21T09:41:02.123456Z",
)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"event_type": ""}, "event_type"),
        ({"event_type": "approved"}, "event_type"),
        ({"event_type": "Application.Approved"}, "event_type"),
        ({"event_type": "application..approved"}, "event_type"),
        ({"payload": ["not", "a", "dict"]}, "payload"),
        ({"payload": {"when": datetime.date(2026, 1, 1)}}, "payload.when"),
        ({"recorded_at": "2026-11-21T09:41:02.123456+00:00"}, "recorded_at"),
        ({"actor": 42}, "actor"),
    ],
)
def test_link_rejects_bad_input_naming_the_field(override, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        link(None, **{**LINK_ARGS, **override})


def test_link_stores_the_payload_canonically():
    rec = link(None, **{**LINK_ARGS, "payload": {"b": 2, "a": "间"}})
    assert rec.payload == '{"a":"间","b":2}'


def test_records_are_immutable():
    rec = link(None, **LINK_ARGS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.seq = 2  # type: ignore[misc]
    assert isinstance(Tamper("edited", 1, "x"), Tamper)
    assert isinstance(rec, EventRecord)


# --- property: any single tamper is found, at the right place --------------

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),  # beyond, only what a double holds exactly
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=8,
)
payloads = st.dictionaries(st.text(), json_values, max_size=4)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(), json_values | st.sampled_from([1e-05, 3.0, 0.0, -0.0, 1e16, 1e21, 5e-324]),
                       max_size=6))
def test_canonical_json_writes_what_rfc8785_writes(value):
    # canonical_json leaves float-free values to json.dumps, which writes them identically.
    import rfc8785

    assert canonical_json(value) == rfc8785.dumps(value).decode("utf-8")
    assert canonical_json(json.loads(canonical_json(value))) == canonical_json(value)


@st.composite
def tampered_chains(draw):
    n = draw(st.integers(min_value=5, max_value=40))
    rows = make_chain(n, payloads=draw(st.lists(payloads, min_size=n, max_size=n)))
    kind = draw(st.sampled_from(["edit", "delete", "swap"]))
    # The newest event is excluded where the change would look like a shorter,
    # still valid log: that is the documented limit anchoring closes.
    position = draw(st.integers(min_value=1, max_value=n if kind == "edit" else n - 1))
    i = position - 1
    if kind == "edit":
        original = json.loads(rows[i].payload)
        rows[i] = dataclasses.replace(rows[i], payload=canonical_json({"forged": original}))
    elif kind == "delete":
        del rows[i]
    else:
        rows[i], rows[i + 1] = (
            dataclasses.replace(rows[i], seq=position + 1),
            dataclasses.replace(rows[i + 1], seq=position),
        )
    return rows, kind, position


@settings(max_examples=100, deadline=None)
@given(tampered_chains())
def test_any_single_tamper_is_found_near_where_it_happened(case):
    rows, kind, position = case
    report = verify(rows)
    assert not report.ok, (kind, position)
    assert abs(report.tamper.seq - position) <= 1, (kind, position, report.tamper)
