"""Anchoring the event log on the chain: batches, exactly-once, dropped and reorged
transactions, the node going down, and the beat that drives it.

`make test` points CHAIN_RPC_URL at a real anvil node it started; every test gets a
fresh registry (the test database starts empty, so the first anchoring run deploys one).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import transaction

from conftest import REPO, wait_for

pytestmark = [pytest.mark.ledger]


def record_events(n: int, *, subject: str = "tests.thing:1", start: int = 0):
    from provenance.recorder import NewEvent, record_many

    with transaction.atomic():
        return record_many(
            [NewEvent("admin.object_changed", "system", subject, {"n": start + i}) for i in range(n)]
        )


def connection():
    from provenance import chain

    return chain.connect()


def rpc(method, params):
    response = connection().web3.provider.make_request(method, params)
    assert "error" not in response, response
    return response.get("result")


def nonce():
    conn = connection()
    return conn.web3.eth.get_transaction_count(conn.account.address)


@pytest.mark.django_db
def test_new_events_are_anchored_as_one_merkle_root_and_each_has_a_proof():
    from ledger import merkle
    from provenance.anchoring import anchor_pending, ledger_status
    from provenance.lineage import inclusion_proof
    from provenance.models import Anchor

    events = record_events(600)
    assert ledger_status().unanchored == 600
    run = anchor_pending()
    assert run.error == "" and len(run.anchored) == 1
    anchor = Anchor.objects.get()
    assert (anchor.first_seq, anchor.last_seq, anchor.status) == (1, 600, "confirmed")
    assert anchor.tx_hash.startswith("0x") and anchor.block_number >= 1 and anchor.confirmations >= 1
    on_chain = connection().registry.anchor_of_root(anchor.root)
    assert (on_chain.first_seq, on_chain.last_seq, on_chain.prev_root) == (1, 600, "0" * 64)
    for event in (events[0], events[255], events[256], events[599]):
        proof = inclusion_proof(event.seq)
        assert proof["root"] == on_chain.root and proof["tree_size"] == 600
        assert merkle.InclusionProof(proof["leaf_index"], 600, tuple(proof["path"]), proof["root"]).verify(event.hash)
    status = ledger_status()
    assert (status.unanchored, status.anchored_seq, status.lag_seconds) == (0, 600, None)


@pytest.mark.django_db
def test_each_run_anchors_only_what_is_new_and_an_idle_run_sends_nothing():
    from provenance.anchoring import anchor_pending
    from provenance.models import Anchor

    record_events(10)
    anchor_pending()
    record_events(5, start=10)
    anchor_pending()
    first, second = Anchor.objects.order_by("first_seq")
    assert (second.first_seq, second.last_seq, second.prev_root) == (11, 15, first.root)
    sent = nonce()
    run = anchor_pending()
    assert run.anchored == [] and nonce() == sent, "an idle run sent a transaction"
    assert connection().registry.anchor_count() == 2


@pytest.mark.django_db
def test_a_mined_anchor_whose_receipt_was_lost_is_found_on_chain_not_sent_twice(monkeypatch):
    from ledger.registry import Registry
    from provenance.anchoring import anchor_pending
    from provenance.models import Anchor

    connection()  # deploy the registry first, so the nonce count below is anchoring only
    before = nonce()
    record_events(20)
    # The process "crashes" right after sending: the receipt never reaches us, and the
    # tx hash was never written down either.
    monkeypatch.setattr(Registry, "wait_for_receipt", lambda self, tx, timeout: None)
    run = anchor_pending()
    assert run.pending is not None
    Anchor.objects.update(tx_hash="")
    monkeypatch.undo()

    run = anchor_pending()
    anchor = Anchor.objects.get()
    assert run.recovered == [anchor.pk] and anchor.status == "confirmed"
    assert anchor.tx_hash.startswith("0x"), "the tx was found from the contract's log"
    assert nonce() == before + 1, "the batch was sent more than once"
    assert connection().registry.anchor_count() == 1


@pytest.mark.django_db
def test_a_dropped_transaction_is_sent_again():
    from provenance.anchoring import anchor_pending
    from provenance.models import Anchor

    connection()
    record_events(8)
    rpc("evm_setAutomine", [False])
    try:
        run = anchor_pending(receipt_timeout=0.3)
        assert run.pending is not None
        dropped = Anchor.objects.get().tx_hash
        rpc("anvil_dropAllTransactions", [])
        assert not connection().registry.tx_known(dropped)
    finally:
        rpc("evm_setAutomine", [True])
    run = anchor_pending()
    anchor = Anchor.objects.get()
    assert run.resent == [anchor.pk] and anchor.status == "confirmed"
    # Same nonce and content, so the resent tx may well have the same hash; what counts is
    # that it was sent again and is now on the chain.
    assert anchor.attempts == 2 and connection().registry.receipt(anchor.tx_hash)["status"] == 1
    assert connection().registry.anchor_count() == 1


@pytest.mark.django_db
def test_anchors_lost_in_a_reorg_are_anchored_again_in_order():
    from provenance.anchoring import anchor_pending
    from provenance.models import Anchor

    record_events(5)
    anchor_pending()
    snapshot = rpc("evm_snapshot", [])
    record_events(5, start=5)
    anchor_pending()
    record_events(5, start=10)
    anchor_pending()
    assert connection().registry.anchor_count() == 3
    rpc("evm_revert", [snapshot])  # the chain forgets the blocks of the last two anchors
    assert connection().registry.last_seq() == 5

    run = anchor_pending()
    lost = list(Anchor.objects.filter(first_seq__gt=5).values_list("pk", flat=True))
    assert sorted(run.resent) == sorted(lost)
    registry = connection().registry
    assert registry.anchor_count() == 3 and registry.last_seq() == 15
    for anchor in Anchor.objects.all():
        on_chain = registry.anchor_of_root(anchor.root)
        assert (on_chain.first_seq, on_chain.last_seq) == (anchor.first_seq, anchor.last_seq)


@pytest.mark.django_db
def test_an_anchor_the_chain_holds_for_another_range_is_a_conflict_not_a_retry():
    from provenance.anchoring import anchor_pending
    from provenance.models import Anchor, AnchoringState

    record_events(4)
    anchor_pending()
    record_events(3, start=4)
    # Someone rewrote the database's record of the first anchor's root.
    Anchor.objects.update(root="ab" * 32)
    run = anchor_pending()
    assert "root this database did not anchor" in run.error or "cannot follow" in run.error, run.error
    assert AnchoringState.get().last_error == run.error
    assert connection().registry.anchor_count() == 1


@pytest.mark.django_db
def test_anvil_killed_and_restarted_on_its_state_loses_nothing_and_anchors_nothing_twice(settings, tmp_path):
    """The issue's test: record, anchor, stop the node, keep recording, restart, catch up."""
    from ledger.devnode import Anvil
    from provenance import chain
    from provenance.anchoring import anchor_pending, ledger_status
    from provenance.models import Anchor, AnchoringState, LineageEvent

    state = tmp_path / "anvil-state.json"
    node = Anvil()
    node.start(state_path=state)
    settings.CHAIN_RPC_URL = node.url
    settings.CHAIN_ID = None
    chain.reset_for_tests()
    try:
        record_events(50)
        assert anchor_pending().anchored
        node.stop()  # SIGTERM: anvil writes its state file

        record_events(30, start=50)  # recording never waits for the chain
        run = anchor_pending()
        assert "cannot be reached" in run.error
        status = ledger_status()
        assert status.unanchored == 30 and status.failures == 1 and status.lag_seconds is not None
        assert "cannot be reached" in status.last_error and status.next_attempt_at
        assert anchor_pending().skipped.startswith("backing off"), "a run inside the backoff tried the node"

        record_events(20, start=80)
        node.start(port=node.port, state_path=state)
        wait_for(lambda: anchor_pending().anchored, timeout=30, interval=0.5, what="anchoring to resume")
        assert AnchoringState.get().failures == 0

        registry = chain.connect().registry
        anchors = list(Anchor.objects.order_by("first_seq"))
        assert [(a.first_seq, a.last_seq) for a in anchors] == [(1, 50), (51, 100)]
        assert registry.anchor_count() == 2 and registry.last_seq() == LineageEvent.objects.count() == 100
        for anchor in anchors:
            assert registry.anchor_of_root(anchor.root).first_seq == anchor.first_seq
        assert ledger_status().unanchored == 0
    finally:
        node.stop()
        chain.reset_for_tests()


def test_no_node_at_the_chain_url_is_a_clear_error(settings):
    from provenance import chain

    settings.CHAIN_RPC_URL = settings.DEV_CHAIN_RPC_URL = "http://127.0.0.1:1"  # nothing listens on port 1
    chain.reset_for_tests()
    try:
        with pytest.raises(chain.ChainUnavailable, match=r"no chain node answers at CHAIN_RPC_URL=http://127\.0\.0\.1:1 "
                                                         r"\(ConnectionError\): start the demo's node with `make demo`"):
            chain.connect()
        settings.DEV_CHAIN_RPC_URL = "http://127.0.0.1:8545"  # a node that is not development's default
        with pytest.raises(chain.ChainUnavailable, match="check that the node runs and that CHAIN_RPC_URL names it"):
            chain.connect()
    finally:
        chain.reset_for_tests()


def test_anchoring_beat_schedule_runs_the_task():
    from django.conf import settings

    from provenance.tasks import anchor_events_task

    entry = settings.CELERY_BEAT_SCHEDULE["anchor-events"]
    assert entry["task"] == anchor_events_task.name
    assert entry["schedule"] == float(settings.ANCHOR_INTERVAL_S)


@pytest.mark.django_db(transaction=True)
def test_celery_beat_and_a_worker_anchor_new_events_on_their_own(celery_worker, tmp_path):
    """A real `celery beat` process schedules the anchoring task; the real worker runs it."""
    from provenance.models import Anchor

    record_events(12)
    from django.conf import settings

    db = settings.DATABASES["default"]
    env = dict(os.environ, ANCHOR_INTERVAL_S="1")
    env["DATABASE_URL"] = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "platform"), str(REPO)])
    log = open(tmp_path / "beat.log", "w")
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "miliao", "beat", "--loglevel=INFO",
         "--schedule", str(tmp_path / "beat-schedule"), "--pidfile", ""],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        anchor = wait_for(
            lambda: Anchor.objects.filter(status="confirmed").first(), timeout=60, interval=0.5,
            what="beat + worker to anchor the events",
        )
        assert (anchor.first_seq, anchor.last_seq) == (1, 12)
        record_events(3, start=12)
        wait_for(lambda: Anchor.objects.filter(status="confirmed", last_seq=15).exists(), timeout=30,
                 interval=0.5, what="the next beat to anchor the new events")
    finally:
        beat.terminate()
        beat.wait(timeout=15)
        log.close()
