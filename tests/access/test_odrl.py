"""The licence policy: an ODRL Agreement that the download path evaluates, refusing with
the reason of the first constraint that fails."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from access import odrl

pytestmark = [pytest.mark.access]

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
T1 = T0 + timedelta(days=30)


def policy(**overrides):
    terms = dict(
        uid=odrl.uri("licence", 7),
        assigner=odrl.uri("org", "sh-planning"),
        assignee=odrl.uri("org", "mili-tech"),
        target=odrl.uri("release", 3),
        purpose="research",
        valid_from=T0,
        valid_until=T1,
        download_limit=2,
        recipients=[odrl.uri("user", "applicant")],
        area=(121.4, 31.1, 121.6, 31.3),
        fields=["room_use", "floor"],
        fingerprint_key_id=odrl.key_id(b"k" * 32),
    )
    return odrl.build_policy(**{**terms, **overrides})


def request(**overrides):
    terms = dict(
        action="reproduce",
        target=odrl.uri("release", 3),
        assignee=odrl.uri("org", "mili-tech"),
        recipient=odrl.uri("user", "applicant"),
        purpose="research",
        at=T0 + timedelta(days=1),
        count=1,
    )
    return odrl.Request(**{**terms, **overrides})


def test_the_agreement_is_odrl_shaped_and_holds_no_secret():
    p = policy()
    assert p["@context"] == "http://www.w3.org/ns/odrl.jsonld" and p["@type"] == "Agreement"
    assert p["assigner"] == "urn:miliao:org:sh-planning" and p["assignee"] == "urn:miliao:org:mili-tech"
    assert p["target"] == "urn:miliao:release:3"
    assert {r["action"] for r in p["permission"]} == {"use", "reproduce"}
    assert [r["action"] for r in p["prohibition"]] == ["distribute"]
    reproduce = next(r for r in p["permission"] if r["action"] == "reproduce")
    operands = {(c["leftOperand"], c["operator"]) for c in reproduce["constraint"]}
    assert {
        ("purpose", "eq"),
        ("dateTime", "gteq"),
        ("dateTime", "lteq"),
        ("count", "lteq"),
        ("recipient", "isAnyOf"),
        ("spatialCoordinates", "isPartOf"),
        (odrl.FIELD, "isPartOf"),
    } <= operands
    assert reproduce["duty"] == [{"action": "watermark", "uid": odrl.key_id(b"k" * 32)}]
    assert "kkkk" not in str(p), "the fingerprint key is named, never written"


def test_a_request_inside_every_constraint_is_permitted():
    assert odrl.evaluate(policy(), request()) == odrl.Decision(True)
    assert odrl.evaluate(policy(), request(action="use")).permitted


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"at": T1 + timedelta(seconds=1)}, "expired at 2026-12-01T00:00:00+00:00"),
        ({"at": T0 - timedelta(seconds=1)}, "valid from 2026-11-01"),
        ({"count": 3}, "download limit of 2 is used up"),
        (
            {"recipient": odrl.uri("user", "researcher")},
            "urn:miliao:user:researcher is not named on the licence",
        ),
        ({"purpose": "product"}, "permits the purpose 'research', not 'product'"),
        ({"assignee": odrl.uri("org", "tongji-lab")}, "granted to urn:miliao:org:mili-tech"),
        ({"target": odrl.uri("release", 4)}, "covers urn:miliao:release:3"),
        ({"action": "distribute"}, "prohibits the action 'distribute'"),
        ({"fields": ["monthly_rent"]}, "does not grant the field(s) monthly_rent"),
        ({"area": (121.0, 31.1, 121.6, 31.3)}, "outside the licensed area"),
    ],
)
def test_each_broken_constraint_is_refused_with_its_reason(change, reason):
    decision = odrl.evaluate(policy(), request(**change))
    assert not decision.permitted and reason in decision.reason


def test_use_does_not_stand_in_for_a_limited_reproduce():
    """ODRL would let a permission to `use` cover `reproduce`; this profile does not, so the
    download count cannot be bypassed."""
    decision = odrl.evaluate(policy(), request(count=99))
    assert not decision.permitted


def test_an_unknown_constraint_refuses_rather_than_being_ignored():
    p = policy()
    p["permission"][1]["constraint"].append(
        {"leftOperand": "industry", "operator": "eq", "rightOperand": "x"}
    )
    decision = odrl.evaluate(p, request())
    assert not decision.permitted and "cannot evaluate (industry eq)" in decision.reason


def test_moving_the_validity_window_changes_the_policy_only():
    later = odrl.with_validity(policy(), valid_until=T0 + timedelta(hours=1))
    assert not odrl.evaluate(later, request()).permitted
    assert odrl.evaluate(policy(), request()).permitted


def test_package_terms_are_read_from_the_policy():
    fields, area = odrl.package_terms(policy())
    assert fields == ["floor", "room_use"] and area == (121.4, 31.1, 121.6, 31.3)
    assert odrl.package_terms(policy(area=None))[1] is None


@pytest.mark.parametrize(
    "change,message",
    [
        ({"valid_until": T0}, "valid_until must be after valid_from"),
        ({"download_limit": 0}, "download_limit"),
        ({"recipients": []}, "recipients"),
        ({"area": (1, 2, 3)}, "four finite numbers"),
        ({"valid_from": datetime(2026, 11, 1)}, "timezone-aware"),
    ],
)
def test_a_malformed_policy_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        policy(**change)
