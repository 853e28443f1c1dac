"""An append-only, hash-chained event log, kept free of Django so it can be
checked by anyone holding an export of the rows.

Each event commits to the hash of the one before it, so changing, removing,
adding or reordering a stored row breaks the chain at that point, and
:func:`verify_chain` can say what happened and where.

Canonical encoding (what an outside verifier must reproduce)
------------------------------------------------------------
An event's ``hash`` is the lowercase hex SHA-256 of the UTF-8 bytes of the
canonical JSON text of this object::

    {"v": <version>, "seq": <int>, "prev": <prev_hash>, "type": <event_type>,
     "actor": <actor>, "subject": <subject>, "payload": <payload object>,
     "at": <recorded_at>}

* ``payload`` is the stored payload text parsed back into an object, so it
  nests as JSON rather than as a quoted string;
* the first event has ``seq`` 1 and ``prev`` :data:`GENESIS_HASH` (64 zeros);
* ``v`` is the event's hash version, stored with the event; it says which
  canonical JSON is meant, and since it is hashed it cannot be changed
  without breaking the hash.

Version 2 (:data:`HASH_VERSION`, every new event): the canonical JSON is
RFC 8785, the JSON Canonicalization Scheme (JCS), as written by the
maintained ``rfc8785`` package here and by npm's ``canonicalize`` in
JavaScript: keys sorted by UTF-16 code units, no whitespace, strings
escaped as ECMAScript's ``JSON.stringify`` does, numbers as IEEE doubles
written the ECMAScript way (``1e-05`` is ``0.00001``, ``3.0`` is ``3``,
``1e16`` is ``10000000000000000``, ``1e21`` is ``1e+21``). A payload may
hold no integer beyond ±(2**53 − 1) that a double cannot hold exactly (it
is refused, naming where); carry such numbers (and amounts) as strings. The stored payload text is
itself the JCS text, so it hashes back to the same bytes in any language;
a verifier parsing it in Python reads integers beyond 2**53 as doubles, as
JSON.parse does (:func:`parse_payload`).

Version 1 (events written before RFC 8785 was adopted, still verified): the
canonical JSON is what Python's ``json.dumps(obj, sort_keys=True,
separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` writes: keys
sorted by code point, floats by Python's ``repr`` (``1e-05``, ``3.0``).

Known limit
-----------
The database alone cannot reveal a correctly chained forged event appended at
the tail, nor the newest events being truncated: both leave a valid chain.
Anchoring the chain head on a blockchain (a later issue) closes that gap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import rfc8785

__all__ = [
    "GENESIS_HASH",
    "HASH_VERSION",
    "HASH_VERSIONS",
    "ChainReport",
    "EventRecord",
    "Tamper",
    "canonical_json",
    "event_hash",
    "link",
    "parse_payload",
    "verify_chain",
]

GENESIS_HASH: str = "0" * 64
"""The ``prev_hash`` of event 1, so the first event is chained like any other."""

HASH_VERSION = 2
"""The version new events are written under (RFC 8785); part of every hashed envelope."""

HASH_VERSIONS = (1, 2)
"""Every version an event may carry and still be verified."""

_SAFE_INT = 2**53 - 1

PROGRESS_EVERY = 10_000

_EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

TamperKind = Literal["edited", "deleted", "inserted", "reordered"]


def canonical_json(obj: object, *, path: str = "value", version: int = HASH_VERSION) -> str:
    """Encode ``obj`` as the one JSON text every verifier must agree on, for hash ``version``.

    The value is checked first because the encoders would otherwise accept
    things whose encoding is ambiguous or lossy (tuples vs lists are fine,
    but a datetime has no single JSON form and NaN is not JSON at all); the
    error names the offending ``path`` so the caller can fix the payload.
    """
    if not _plain_json(obj, 0):  # the common case skips the slower walk that names the path
        _check_json(obj, path, set())
    if version == 1:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    _check_version(version)
    if _dumps_is_jcs(obj, 0):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return rfc8785.dumps(obj).decode("utf-8")
    except rfc8785.CanonicalizationError as exc:
        problem = _jcs_problem(obj, path)
        if problem is None and isinstance(exc, rfc8785.IntegerDomainError):
            # Only integers a double holds exactly, such as 1e16 read back from its JCS text
            # "10000000000000000": the same JSON number, written as the double it is.
            return rfc8785.dumps(_as_doubles(obj)).decode("utf-8")
        raise ValueError(problem or f"{path}: {exc}") from exc


def _as_doubles(obj: object) -> object:
    if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) > _SAFE_INT:
        return float(obj)
    if isinstance(obj, dict):
        return {key: _as_doubles(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_as_doubles(item) for item in obj]
    return obj


def _dumps_is_jcs(obj: object, depth: int) -> bool:
    """True when ``json.dumps`` (C, fast) writes ``obj`` byte for byte as RFC 8785 does.

    That is so without floats (the two write numbers differently), with integers a double
    holds, and with object keys inside the Basic Multilingual Plane (where sorting by code
    point and by UTF-16 code unit agree); both escape strings alike. Anything else goes
    through the rfc8785 package; the test suite compares the two on generated values.
    """
    kind = type(obj)
    if kind is str or kind is bool or obj is None:
        return True
    if kind is int:
        return -_SAFE_INT <= obj <= _SAFE_INT
    if depth > 64:
        return False
    if kind is dict:
        return all(type(k) is str and (not k or max(k) <= "\uffff") and _dumps_is_jcs(v, depth + 1)
                   for k, v in obj.items())
    if kind is list or kind is tuple:
        return all(_dumps_is_jcs(v, depth + 1) for v in obj)
    return False


def _check_version(version: object) -> None:
    if version not in HASH_VERSIONS or type(version) is not int:
        raise ValueError(f"hash version {version!r} is unknown; known versions are {HASH_VERSIONS}")


def _jcs_problem(obj: object, path: str) -> str | None:
    """Where in ``obj`` RFC 8785 refuses a value that plain JSON takes, and why."""
    if isinstance(obj, bool):
        return None
    if isinstance(obj, int):
        if abs(obj) > _SAFE_INT and not _is_a_double(obj):
            return (f"{path}: {obj} is beyond ±(2**53 − 1) and not a number a JSON number (an IEEE double) "
                    "holds exactly; carry it as a string")
        return None
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path}: the text holds a lone surrogate, which is not Unicode text"
        return None
    if isinstance(obj, dict):
        for key, value in obj.items():
            found = _jcs_problem(key, f"{path} key") or _jcs_problem(value, _key_path(path, key))
            if found:
                return found
    elif isinstance(obj, (list, tuple)):
        for index, item in enumerate(obj):
            found = _jcs_problem(item, f"{path}[{index}]")
            if found:
                return found
    return None


def _is_a_double(n: int) -> bool:
    """Whether integer ``n`` names a double: exactly, or as the double's own JCS text."""
    try:
        double = float(n)
    except OverflowError:
        return False
    return int(double) == n or rfc8785.dumps(double) == str(n).encode()


def _ecmascript_int(text: str) -> int | float:
    """An integer literal as JSON.parse reads it: beyond 2**53 it is the nearest double."""
    value = int(text)
    return value if -_SAFE_INT <= value <= _SAFE_INT else float(text)


def parse_payload(text: str, version: int = HASH_VERSION) -> Any:
    """The stored payload text as the object its version hashes (ValueError if it is not JSON).

    Version 2 reads numbers as JavaScript does, so a float like 1e16, which JCS writes
    as ``10000000000000000``, hashes back to the same text.
    """
    if version == 1:
        return json.loads(text)
    _check_version(version)
    return json.loads(text, parse_int=_ecmascript_int)


def _plain_json(obj: object, depth: int) -> bool:
    """True when ``obj`` is made only of exact JSON types (no subclasses, no NaN)."""
    kind = type(obj)
    if kind is str or kind is int or kind is bool or obj is None:
        return True
    if kind is float:
        return math.isfinite(obj)
    if depth > 64:  # let the careful walk look for a circular reference
        return False
    if kind is dict:
        return all(type(k) is str and _plain_json(v, depth + 1) for k, v in obj.items())
    if kind is list or kind is tuple:
        return all(_plain_json(v, depth + 1) for v in obj)
    return False


# The string encoder json.dumps(..., ensure_ascii=False) itself uses.
_json_string = json.encoder.encode_basestring

_CONVERSION_HINTS = {
    "set": "convert it to a sorted list first",
    "frozenset": "convert it to a sorted list first",
    "bytes": "encode it as a hex or base64 string first",
}


def _check_json(obj: object, path: str, open_containers: set[int]) -> None:
    # bool is a subclass of int, so it is covered by the isinstance check.
    if obj is None or isinstance(obj, (str, int)):
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{path}: {obj!r} is not allowed in JSON; use null or a string")
        return
    if isinstance(obj, (dict, list, tuple)):
        # Without this a self-referencing value would recurse until Python gives up.
        if id(obj) in open_containers:
            raise ValueError(f"{path}: circular reference")
        open_containers.add(id(obj))
        if isinstance(obj, dict):
            for key, value in obj.items():
                if not isinstance(key, str):
                    raise ValueError(
                        f"{path}: key {key!r} is a {type(key).__name__}; JSON object keys must be strings"
                    )
                _check_json(value, _key_path(path, key), open_containers)
        else:
            for index, item in enumerate(obj):
                _check_json(item, f"{path}[{index}]", open_containers)
        open_containers.discard(id(obj))
        return
    type_name = type(obj).__name__
    hint = _CONVERSION_HINTS.get(type_name, "convert it to a string first")
    raise ValueError(f"{path}: {type_name} is not JSON; {hint}")


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def event_hash(
    *,
    seq: int,
    prev_hash: str,
    event_type: str,
    actor: str,
    subject: str,
    payload: str,
    recorded_at: str,
    version: int = HASH_VERSION,
) -> str:
    """Hash an event as described in the module docstring, under hash ``version``.

    ``seq`` is hashed too, so renumbering rows is as detectable as editing them.
    """
    envelope = {
        "v": version,
        "seq": seq,
        "prev": prev_hash,
        "type": event_type,
        "actor": actor,
        "subject": subject,
        "payload": parse_payload(payload, version),
        "at": recorded_at,
    }
    return hashlib.sha256(canonical_json(envelope, version=version).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EventRecord:
    """One stored event, exactly as a database row holds it."""

    seq: int
    prev_hash: str
    event_type: str
    actor: str
    subject: str
    payload: str
    recorded_at: str
    hash: str
    version: int = HASH_VERSION

    def computed_hash(self, seq: int | None = None) -> str:
        """Recompute the hash; a substitute ``seq`` tells whether the row was renumbered."""
        return event_hash(
            seq=self.seq if seq is None else seq,
            prev_hash=self.prev_hash,
            event_type=self.event_type,
            actor=self.actor,
            subject=self.subject,
            payload=self.payload,
            recorded_at=self.recorded_at,
            version=self.version,
        )


def link(
    prev: EventRecord | None,
    *,
    event_type: str,
    actor: str,
    subject: str,
    payload: dict[str, Any],
    recorded_at: str,
    version: int = HASH_VERSION,
) -> EventRecord:
    """Build the event that follows ``prev`` (or the first one, for ``None``).

    Inputs are validated here because a bad value hashed once is a bad value
    in the ledger forever. ``version`` other than the current one is for tests
    of events written before it.
    """
    if not event_type:
        raise ValueError("event_type must not be empty")
    if not _EVENT_TYPE_RE.match(event_type):
        raise ValueError(
            f"event_type {event_type!r} must be dotted lowercase words, e.g. 'application.approved'"
        )
    for field, value in (("actor", actor), ("subject", subject)):
        if not isinstance(value, str):
            raise ValueError(f"{field} must be a string, not {type(value).__name__}")
    if not isinstance(payload, dict):
        raise ValueError(f"payload must be a dict, not {type(payload).__name__}")
    if not isinstance(recorded_at, str) or not recorded_at.endswith("Z"):
        raise ValueError(f"recorded_at {recorded_at!r} must be an ISO-8601 UTC time ending in 'Z'")

    seq = prev.seq + 1 if prev is not None else 1
    prev_hash = prev.hash if prev is not None else GENESIS_HASH
    _check_version(version)
    payload_text = canonical_json(payload, path="payload", version=version)
    return EventRecord(
        seq=seq,
        prev_hash=prev_hash,
        event_type=event_type,
        actor=actor,
        subject=subject,
        payload=payload_text,
        recorded_at=recorded_at,
        hash=_hash_canonical(seq, prev_hash, event_type, actor, subject, payload_text, recorded_at, version),
        version=version,
    )


def _hash_canonical(
    seq: int, prev_hash: str, event_type: str, actor: str, subject: str, payload_text: str, recorded_at: str,
    version: int,
) -> str:
    """:func:`event_hash` for a payload already in canonical form, without re-parsing it.

    The envelope's keys in sorted order are actor, at, payload, prev, seq,
    subject, type, v (ASCII, so code points and UTF-16 order them alike); the
    canonical payload text is spliced in where its object would be written,
    which gives byte for byte the same JSON in both versions.
    """
    # json's string encoder escapes exactly as RFC 8785 does (", \, the short escapes and
    # \u00xx for other control characters); text that is not Unicode (a lone surrogate)
    # fails the UTF-8 encoding below, in both versions.
    q = _json_string
    text = (
        f'{{"actor":{q(actor)},"at":{q(recorded_at)},"payload":{payload_text},"prev":{q(prev_hash)},'
        f'"seq":{seq},"subject":{q(subject)},"type":{q(event_type)},"v":{version}}}'
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Tamper:
    """The first problem found in a chain, phrased for a human reader."""

    kind: TamperKind
    seq: int
    message: str


@dataclass(frozen=True)
class ChainReport:
    """The outcome of :func:`verify_chain`.

    ``checked`` counts the records that linked correctly and ``head_seq`` /
    ``head_hash`` name the last of them (``start`` when nothing new was read,
    or 0 and :data:`GENESIS_HASH` for an empty log). On failure the head is
    where the walk stopped, not a promise that it is genuine: an edited and
    re-hashed event is only noticed at its successor, so ``tamper.seq`` can be
    the head itself.
    """

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    tamper: Tamper | None

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON responses and management-command output."""
        return dataclasses.asdict(self)


def verify_chain(
    records: Iterable[EventRecord],
    *,
    find_seq_by_hash: Callable[[str], int | None],
    progress: Callable[[int], None] | None = None,
    start: EventRecord | None = None,
) -> ChainReport:
    """Walk ``records`` (in stored seq order) and stop at the first problem.

    Records are streamed with one record of lookahead so a log of millions of
    rows never has to fit in memory. ``find_seq_by_hash`` answers "which stored
    row has this hash?" from an index; it is only asked once a problem is
    found, to tell the kinds of tampering apart. ``start`` resumes after a
    record that an earlier run already verified.
    """
    prev = start
    checked = 0
    rows: Iterator[EventRecord] = iter(records)
    rec = next(rows, None)
    while rec is not None:
        following = next(rows, None)
        tamper = _diagnose(rec, prev, following, find_seq_by_hash)
        if tamper is not None:
            return _report(prev, checked, tamper)
        prev = rec
        checked += 1
        if progress is not None and checked % PROGRESS_EVERY == 0:
            progress(checked)
        rec = following
    return _report(prev, checked, None)


def _report(head: EventRecord | None, checked: int, tamper: Tamper | None) -> ChainReport:
    return ChainReport(
        ok=tamper is None,
        checked=checked,
        head_seq=head.seq if head is not None else 0,
        head_hash=head.hash if head is not None else GENESIS_HASH,
        tamper=tamper,
    )


def _hash_fits(rec: EventRecord, seq: int) -> bool:
    # A row whose payload an attacker made unparseable simply does not fit.
    try:
        return rec.computed_hash(seq=seq) == rec.hash
    except ValueError:
        return False


def _diagnose(
    rec: EventRecord,
    prev: EventRecord | None,
    following: EventRecord | None,
    find_seq_by_hash: Callable[[str], int | None],
) -> Tamper | None:
    expected_seq = prev.seq + 1 if prev is not None else 1
    expected_prev_hash = prev.hash if prev is not None else GENESIS_HASH

    if rec.seq > expected_seq:
        last_missing = rec.seq - 1
        if last_missing == expected_seq:
            message = f"event {expected_seq} was deleted: the log jumps from {expected_seq - 1} to {rec.seq}"
        else:
            message = (
                f"events {expected_seq} to {last_missing} were deleted: "
                f"the log jumps from {expected_seq - 1} to {rec.seq}"
            )
        return Tamper("deleted", expected_seq, message)
    if not _hash_fits(rec, rec.seq):
        return _diagnose_bad_hash(rec, prev, following, find_seq_by_hash)
    if rec.prev_hash != expected_prev_hash:
        return _diagnose_bad_link(rec, prev, find_seq_by_hash)
    if rec.seq < expected_seq:
        return Tamper(
            "reordered",
            rec.seq,
            f"event {rec.seq} is out of order: it is stored after event {expected_seq - 1}",
        )
    return None


def _diagnose_bad_hash(
    rec: EventRecord,
    prev: EventRecord | None,
    following: EventRecord | None,
    find_seq_by_hash: Callable[[str], int | None],
) -> Tamper:
    # The hash covers seq, so the seq a row was originally hashed with says
    # whether rows were renumbered around it, and in which direction.
    predecessor_seq = find_seq_by_hash(rec.prev_hash)
    if _hash_fits(rec, rec.seq + 1):
        if predecessor_seq is None:
            return Tamper(
                "deleted",
                rec.seq,
                f"event {rec.seq} was deleted and the later events were renumbered to hide the gap",
            )
        return Tamper(
            "reordered",
            rec.seq,
            f"event {rec.seq} is out of order: it belongs at position {rec.seq + 1}",
        )
    if prev is not None and _hash_fits(rec, rec.seq - 1):
        return Tamper(
            "inserted",
            rec.seq - 1,
            f"event {rec.seq - 1} was inserted: the event stored after it was originally "
            f"event {rec.seq - 1}, and the later events were renumbered",
        )
    if predecessor_seq is not None and _hash_fits(rec, predecessor_seq + 1):
        return Tamper(
            "reordered",
            rec.seq,
            f"event {rec.seq} is out of order: it belongs at position {predecessor_seq + 1}",
        )
    if following is not None and _hash_fits(following, rec.seq):
        return Tamper(
            "inserted",
            rec.seq,
            f"event {rec.seq} was inserted: it was pushed in front of the original event {rec.seq}",
        )
    return Tamper(
        "edited",
        rec.seq,
        f"event {rec.seq} was edited: its content no longer matches its hash",
    )


def _diagnose_bad_link(
    rec: EventRecord,
    prev: EventRecord | None,
    find_seq_by_hash: Callable[[str], int | None],
) -> Tamper:
    predecessor_seq = find_seq_by_hash(rec.prev_hash)
    if predecessor_seq is not None and predecessor_seq > rec.seq:
        return Tamper(
            "reordered",
            rec.seq,
            f"event {rec.seq} is out of order: it follows event {predecessor_seq}, which is stored after it",
        )
    if predecessor_seq is None:
        if prev is None:
            return Tamper(
                "edited",
                rec.seq,
                f"event {rec.seq} was edited: it should start the chain but points at an unknown event",
            )
        # rec still carries prev's original hash, so prev was rewritten and re-hashed.
        return Tamper(
            "edited",
            prev.seq,
            f"event {prev.seq} was edited and re-hashed: event {rec.seq} still points at its original hash",
        )
    if predecessor_seq < rec.seq and prev is not None and prev.prev_hash == rec.prev_hash:
        return Tamper(
            "inserted",
            prev.seq,
            f"event {prev.seq} was inserted: it and event {rec.seq} both claim event "
            f"{predecessor_seq} as their predecessor",
        )
    stored_after = f"event {prev.seq}" if prev is not None else "the start of the chain"
    return Tamper(
        "reordered",
        rec.seq,
        f"event {rec.seq} is out of order: it follows event {predecessor_seq}, but is stored after {stored_after}",
    )
