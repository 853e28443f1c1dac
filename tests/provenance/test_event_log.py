"""The provenance event log in the database: written with the state change, append-only,
hash-chained, and every kind of tampering named by `manage.py verify_events`."""
from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from conftest import tamper

pytestmark = pytest.mark.foundation


def _verify():
    from provenance.verification import verify_event_log

    return verify_event_log()


def _verify_command_fails(match):
    with pytest.raises(CommandError, match=match):
        call_command("verify_events")


@pytest.mark.django_db
def test_every_action_appends_one_chained_event(world):
    from ledger.chain import GENESIS_HASH
    from provenance.models import LineageEvent

    events = list(LineageEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:]))
    types = [e.event_type for e in events]
    assert types.count("accounts.user_created") == 8
    assert types.count("access.application_submitted") == 3
    submitted = LineageEvent.objects.get(subject=f"access.application:{world.app_startup.pk}")
    assert submitted.actor == f"user:{world.applicant.pk}:applicant"
    assert '"dataset":"pudong-pipes"' in submitted.payload


@pytest.mark.django_db
def test_verify_events_command_reports_an_intact_chain(world, capsys):
    from provenance.models import LineageEvent

    call_command("verify_events")
    out = capsys.readouterr().out
    head = LineageEvent.objects.order_by("-seq").first()
    assert f"event log OK: {head.seq} events, head #{head.seq} {head.hash}" in out


@pytest.mark.django_db(transaction=True)
def test_recording_outside_a_transaction_is_refused():
    from provenance.recorder import record

    with pytest.raises(RuntimeError, match="inside the action's transaction"):
        record("test.outside", actor="system", subject="x:1", payload={})


@pytest.mark.django_db
def test_a_refused_action_writes_neither_state_nor_event(world):
    from accounts import actions
    from accounts.models import User
    from kernel.errors import InvalidInput
    from provenance.models import LineageEvent

    before = (User.objects.count(), LineageEvent.objects.count())
    with pytest.raises(InvalidInput) as exc:
        actions.create_user(
            actor=world.admin, username="weak", password="123", role="applicant", organisation=world.startup
        )
    assert exc.value.field == "password"
    assert (User.objects.count(), LineageEvent.objects.count()) == before


@pytest.mark.django_db
def test_a_crash_after_the_event_rolls_back_both(world, monkeypatch):
    """The outbox rule: event and state change commit together or not at all."""
    from access import actions
    from access.models import Application
    from provenance.models import LineageEvent

    real_record = actions.record

    def record_then_crash(*args, **kwargs):
        real_record(*args, **kwargs)
        raise OSError("disk full")

    before = (Application.objects.count(), LineageEvent.objects.count())
    monkeypatch.setattr(actions, "record", record_then_crash)
    with pytest.raises(OSError):
        actions.submit_application(actor=world.applicant, dataset=world.rooms, purpose="a valid purpose text")
    assert (Application.objects.count(), LineageEvent.objects.count()) == before


@pytest.mark.django_db
def test_events_cannot_be_changed_through_django_or_sql(world):
    from provenance.models import AppendOnlyError, LineageEvent

    event = LineageEvent.objects.get(seq=3)
    event.payload = "{}"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    for sql in (
        "UPDATE provenance_lineageevent SET payload = '{}' WHERE seq = 3",
        "DELETE FROM provenance_lineageevent WHERE seq = 3",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql)
    assert LineageEvent.objects.get(seq=3).payload != "{}"


@pytest.mark.django_db
def test_edited_event_is_named(world):
    tamper(("UPDATE provenance_lineageevent SET payload = %s WHERE seq = 7", ['{"forged":true}']))
    report = _verify()
    assert (report.tamper.kind, report.tamper.seq) == ("edited", 7)
    _verify_command_fails(r"event 7 was edited")


@pytest.mark.django_db
def test_edited_and_rehashed_event_is_named(world):
    from ledger.chain import event_hash
    from provenance.models import LineageEvent

    rec = LineageEvent.objects.get(seq=7).as_record()
    forged = event_hash(
        seq=7, prev_hash=rec.prev_hash, event_type=rec.event_type, actor="user:1:mallory",
        subject=rec.subject, payload=rec.payload, recorded_at=rec.recorded_at,
    )
    tamper(("UPDATE provenance_lineageevent SET actor = 'user:1:mallory', hash = %s WHERE seq = 7", [forged]))
    report = _verify()
    assert (report.tamper.kind, report.tamper.seq) == ("edited", 7)


@pytest.mark.django_db
def test_deleted_event_is_named(world):
    tamper(("DELETE FROM provenance_lineageevent WHERE seq = 5", []))
    report = _verify()
    assert (report.tamper.kind, report.tamper.seq) == ("deleted", 5)
    _verify_command_fails(r"5")


@pytest.mark.django_db
def test_deleted_event_with_renumbering_is_named(world):
    tamper(
        ("DELETE FROM provenance_lineageevent WHERE seq = 5", []),
        # Two steps, so the unique index on seq never sees a duplicate.
        ("UPDATE provenance_lineageevent SET seq = -(seq - 1) WHERE seq > 5", []),
        ("UPDATE provenance_lineageevent SET seq = -seq WHERE seq < 0", []),
    )
    report = _verify()
    assert (report.tamper.kind, report.tamper.seq) == ("deleted", 5)


@pytest.mark.django_db
def test_inserted_event_is_named(world):
    from ledger.chain import link
    from provenance.models import LineageEvent

    prev = LineageEvent.objects.get(seq=6).as_record()
    forged = link(
        prev, event_type="access.application_approved", actor="user:1:mallory",
        subject="access.application:99", payload={"reason": "backdated"}, recorded_at=prev.recorded_at,
    )
    tamper(
        ("UPDATE provenance_lineageevent SET seq = -(seq + 1) WHERE seq >= 7", []),
        ("UPDATE provenance_lineageevent SET seq = -seq WHERE seq < 0", []),
        (
            "INSERT INTO provenance_lineageevent (seq, prev_hash, hash, event_type, actor, subject, payload, recorded_at,"
            " hash_version) SELECT %s, %s, %s, %s, %s, %s, %s, recorded_at, %s FROM provenance_lineageevent WHERE seq = 6",
            [7, forged.prev_hash, forged.hash, forged.event_type, forged.actor, forged.subject, forged.payload,
             forged.version],
        ),
    )
    report = _verify()
    assert (report.tamper.kind, report.tamper.seq) == ("inserted", 7)
    _verify_command_fails(r"inserted")


@pytest.mark.django_db
def test_reordered_events_are_named(world):
    tamper(
        ("UPDATE provenance_lineageevent SET seq = -1 WHERE seq = 8", []),
        ("UPDATE provenance_lineageevent SET seq = 8 WHERE seq = 9", []),
        ("UPDATE provenance_lineageevent SET seq = 9 WHERE seq = -1", []),
    )
    report = _verify()
    assert (report.tamper.kind, report.tamper.seq) == ("reordered", 8)
    _verify_command_fails(r"reordered|belongs")


@pytest.mark.django_db(transaction=True)
def test_concurrent_actions_keep_the_chain_contiguous():
    """Twenty writers at once: every append waits its turn, no seq is skipped or doubled."""
    from accounts import actions
    from accounts.models import Organisation

    errors = []

    def write(i):
        try:
            actions.create_organisation(actor=None, code=f"org-{i:02d}", name=f"组织 {i}", kind="startup")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Organisation.objects.count() == 20
    report = _verify()
    assert report.ok and report.checked == 20 and report.head_seq == 20


def test_a_fresh_sqlite_database_is_append_only_too(tmp_path):
    """The demo's database: migrations leave the triggers in place (a table rebuild drops them)."""
    import os
    import sqlite3
    import subprocess
    import sys

    from conftest import REPO

    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CHAIN_ID"}}
    env["MILIAO_STATE_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    db = sqlite3.connect(tmp_path / "miliao.sqlite3")
    db.execute("INSERT INTO provenance_lineageevent (seq, prev_hash, hash, event_type, actor, subject, payload, "
               "recorded_at, hash_version) VALUES (1, 'p', 'h', 't.x', 'a', 's', '{}', '2026-01-01', 2)")
    for sql in ("UPDATE provenance_lineageevent SET payload = '[]'", "DELETE FROM provenance_lineageevent"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(sql)


@pytest.mark.django_db
def test_an_unknown_event_type_is_refused_and_nothing_is_written():
    """Event types are kernel.events.EventType: a typo fails at the action, not as an event
    that no page labels and no check looks for."""
    from django.db import transaction

    from provenance.models import LineageEvent
    from provenance.recorder import record

    before = LineageEvent.objects.count()
    with pytest.raises(ValueError, match="unknown event type 'jobs.aproved'"):
        with transaction.atomic():
            record("jobs.aproved", actor="system", subject="jobs.job:1", payload={})
    assert LineageEvent.objects.count() == before
    with transaction.atomic():
        event = record("jobs.approved", actor="system", subject="jobs.job:1", payload={})
    assert type(event.event_type) is str and event.event_type == "jobs.approved"


def test_every_recorded_type_is_an_event_type_member_with_a_label():
    """No action passes a string of its own (a literal or an f-string) to record(); each type
    has the words the pages show for it, in both languages."""
    import ast
    from pathlib import Path

    from django.utils import translation

    from kernel.events import EventType
    from portal.readable import event_label

    platform = Path(__file__).resolve().parents[2] / "platform"
    loose = []
    for path in platform.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "record"
                    and node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr))):
                loose.append(f"{path.relative_to(platform)}:{node.lineno}")
    assert loose == []
    assert len(EventType.values) == len(set(EventType.values)) >= 70
    for language in ("zh-hans", "en"):
        with translation.override(language):
            labels = {event_label(t) for t in EventType.values}
            assert len(labels) == len(EventType.values)  # each its own words
    with translation.override("en"):
        assert event_label(EventType.INNOVATION_SCENARIO_FOLLOWED) == "Scenario followed"
