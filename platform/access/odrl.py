"""Licences as ODRL 2.2 Agreements, and the one function that enforces them.

A licence's rules live in its policy JSON, not in model columns: ``build_policy`` writes the
Agreement when a steward approves an application, and ``evaluate`` reads it back for every
download request. The columns beside it (validity, limit) are copies for lists and filters.

The Agreement (https://www.w3.org/TR/odrl-model/) has

- ``assigner`` (the owning bureau), ``assignee`` (the applicant's organisation), ``target``
  (the release);
- one permission to ``use`` and one to ``reproduce`` (a download is a reproduction), both
  constrained by ``purpose`` eq the approved category, ``dateTime`` gteq/lteq the validity
  window and ``recipient`` isAnyOf the named people; ``reproduce`` is also constrained by
  ``count`` lteq the download limit, and by ``spatialCoordinates`` and the profile's
  ``field`` operand, each isPartOf what was approved; it carries a ``watermark`` duty (the
  per-recipient fingerprint, which the platform performs);
- a prohibition of ``distribute``.

Evaluation follows this module's profile (``PROFILE``), which narrows ODRL in two ways:
a rule applies to exactly the action it names (ODRL would let ``use`` cover
``reproduce`` and so bypass the count), and a prohibition wins over a permission
(``conflict: prohibit``). A request is permitted when some permission for its action holds
all its constraints; the first failed constraint is the reason given.

Plain Python: no Django, so it can be read and tested on its own.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
PROFILE = "urn:miliao:odrl:profile:1"
FIELD = "urn:miliao:odrl:field"  # the profile's left operand: the attribute columns received
ACTIONS = ("use", "reproduce", "distribute")


def uri(kind: str, ident) -> str:
    """The platform's identifiers in policies: urn:miliao:<kind>:<id>."""
    return f"urn:miliao:{kind}:{ident}"


@dataclass(frozen=True)
class Decision:
    permitted: bool
    reason: str = ""


@dataclass(frozen=True)
class Request:
    """One exercise of an action, as the enforcing code sees it.

    ``count`` is the number of exercises including this one; ``area`` a (west, south, east,
    north) box and ``fields`` the attribute columns, both what the request would receive."""

    action: str
    target: str
    assignee: str
    recipient: str
    purpose: str
    at: datetime
    count: int = 1
    area: Sequence[float] | None = None
    fields: Sequence[str] | None = None


def key_id(fingerprint_key: bytes) -> str:
    """A public name for a secret fingerprint key (the policy never holds the key itself)."""
    return "sha256:" + hashlib.sha256(b"miliao/licence-key-id\0" + fingerprint_key).hexdigest()[:16]


def build_policy(
    *,
    uid: str,
    assigner: str,
    assignee: str,
    target: str,
    purpose: str,
    valid_from: datetime,
    valid_until: datetime,
    download_limit: int,
    recipients: Sequence[str],
    area: Sequence[float] | None,
    fields: Sequence[str],
    fingerprint_key_id: str,
) -> dict:
    """The Agreement for one licence. ``area`` None means the whole release; ``fields`` are
    the attribute columns granted besides the ones every package carries."""
    if valid_from.tzinfo is None or valid_until.tzinfo is None:
        raise ValueError("validity times must be timezone-aware")
    if valid_until <= valid_from:
        raise ValueError("valid_until must be after valid_from")
    if not (isinstance(download_limit, int) and download_limit >= 1):
        raise ValueError(f"download_limit must be a whole number of at least 1, not {download_limit!r}")
    if not recipients:
        raise ValueError("recipients must name at least one person")
    parties = {"target": target, "assigner": assigner, "assignee": assignee}
    common = [
        _constraint("purpose", "eq", purpose),
        _constraint("dateTime", "gteq", _datetime(valid_from)),
        _constraint("dateTime", "lteq", _datetime(valid_until)),
        _constraint("recipient", "isAnyOf", sorted(recipients)),
    ]
    package = [_constraint(FIELD, "isPartOf", sorted(fields))]
    if area is not None:
        package.append(_constraint("spatialCoordinates", "isPartOf", _box(area)))
    return {
        "@context": CONTEXT,
        "@type": "Agreement",
        "uid": uid,
        "profile": PROFILE,
        "conflict": "prohibit",
        **parties,
        "permission": [
            {**parties, "action": "use", "constraint": common},
            {
                **parties,
                "action": "reproduce",
                "constraint": [*common, _constraint("count", "lteq", download_limit), *package],
                "duty": [{"action": "watermark", "uid": fingerprint_key_id}],
            },
        ],
        "prohibition": [{**parties, "action": "distribute"}],
    }


def with_validity(
    policy: Mapping, *, valid_from: datetime | None = None, valid_until: datetime | None = None
) -> dict:
    """A copy of the policy with its validity window moved (every dateTime constraint)."""
    out = _copy(policy)
    for rule in out.get("permission", []):
        for c in rule.get("constraint", []):
            if c["leftOperand"] == "dateTime" and c["operator"] == "gteq" and valid_from is not None:
                c["rightOperand"] = _datetime(valid_from)
            if c["leftOperand"] == "dateTime" and c["operator"] == "lteq" and valid_until is not None:
                c["rightOperand"] = _datetime(valid_until)
    return out


def evaluate(policy: Mapping, request: Request) -> Decision:
    """Whether the Agreement permits the request, and if not, why."""
    if policy.get("@type") != "Agreement" or policy.get("profile") != PROFILE:
        return Decision(False, "the licence's policy is not a Miliao ODRL Agreement")
    if request.target != policy.get("target"):
        return Decision(False, f"the licence covers {policy.get('target')}, not {request.target}")
    if request.assignee != policy.get("assignee"):
        return Decision(
            False, f"the licence was granted to {policy.get('assignee')}, not to {request.assignee}"
        )
    for rule in policy.get("prohibition", []):
        if rule.get("action") == request.action:
            return Decision(False, f"the licence prohibits the action {request.action!r}")
    rules = [r for r in policy.get("permission", []) if r.get("action") == request.action]
    if not rules:
        return Decision(False, f"the licence does not permit the action {request.action!r}")
    reasons = []
    for rule in rules:
        failed = next((why for c in rule.get("constraint", []) if (why := _violation(c, request))), None)
        if failed is None:
            return Decision(True)
        reasons.append(failed)
    return Decision(False, reasons[0])


def package_terms(policy: Mapping) -> tuple[list[str], tuple[float, float, float, float] | None]:
    """The fields and the area (None: the whole release) that ``reproduce`` grants: what a
    package under this policy holds."""
    fields: list[str] = []
    area = None
    for rule in policy.get("permission", []):
        if rule.get("action") != "reproduce":
            continue
        for c in rule.get("constraint", []):
            if c["leftOperand"] == FIELD:
                fields = list(c["rightOperand"])
            elif c["leftOperand"] == "spatialCoordinates":
                area = _unbox(c["rightOperand"])
    return fields, area


# --- constraints --------------------------------------------------------------------------


def _violation(constraint: Mapping, request: Request) -> str | None:
    left, op, right = constraint["leftOperand"], constraint["operator"], constraint["rightOperand"]
    if left == "purpose" and op == "eq":
        if request.purpose != right:
            return f"the licence permits the purpose {right!r}, not {request.purpose!r}"
    elif left == "dateTime" and op in ("gteq", "lteq"):
        bound = datetime.fromisoformat(right["@value"])
        if op == "gteq" and request.at < bound:
            return f"the licence is valid from {right['@value']}"
        if op == "lteq" and request.at > bound:
            return f"the licence expired at {right['@value']}"
    elif left == "recipient" and op == "isAnyOf":
        if request.recipient not in right:
            return f"{request.recipient} is not named on the licence"
    elif left == "count" and op == "lteq":
        if request.count > right:
            return f"the licence's download limit of {right} is used up"
    elif left == FIELD and op == "isPartOf":
        extra = sorted(set(request.fields or ()) - set(right))
        if extra:
            return f"the licence does not grant the field(s) {', '.join(extra)}"
    elif left == "spatialCoordinates" and op == "isPartOf":
        if request.area is not None and not _inside(request.area, _unbox(right)):
            return "the requested area lies outside the licensed area"
    else:
        # An operand this profile does not know cannot be shown to hold: refuse, never ignore.
        return f"the licence has a constraint this platform cannot evaluate ({left} {op})"
    return None


def _constraint(left: str, op: str, right) -> dict:
    return {"leftOperand": left, "operator": op, "rightOperand": right}


def _datetime(value: datetime) -> dict:
    if value.tzinfo is None:
        raise ValueError("validity times must be timezone-aware")
    return {"@value": value.isoformat(), "@type": "xsd:dateTime"}


def _box(area: Sequence[float]) -> dict:
    west, south, east, north = _bbox(area)
    ring = f"{west} {south}, {east} {south}, {east} {north}, {west} {north}, {west} {south}"
    return {"@value": f"POLYGON (({ring}))", "@type": "geo:wktLiteral", "bbox": [west, south, east, north]}


def _unbox(right: Mapping) -> tuple[float, float, float, float]:
    return _bbox(right["bbox"])


def _bbox(area: Sequence[float]) -> tuple[float, float, float, float]:
    values = tuple(area)
    if len(values) != 4 or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise ValueError(f"an area is four finite numbers (west, south, east, north), not {area!r}")
    west, south, east, north = (float(v) for v in values)
    if not (west < east and south < north):
        raise ValueError(f"an area needs west < east and south < north, not {area!r}")
    return west, south, east, north


def _inside(inner: Sequence[float], outer: Sequence[float]) -> bool:
    w, s, e, n = _bbox(inner)
    W, S, E, N = outer
    return W <= w and S <= s and e <= E and n <= N


def _copy(value):
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
