"""Benchmark: recording and anchoring the provenance log in batches, against one tx per event.

    bash scripts/services.sh .venv/bin/python bench/ledger.py --events 1000000

It needs PostgreSQL and a JSON-RPC chain node (anvil), which scripts/services.sh starts and
removes afterwards; the event log must start empty. In this one process it:
1. connects to the chain (keystore scrypt, registry deployment: a once-per-process cost,
   printed apart and not timed);
2. records N events in transactions of --batch events (provenance.record_many), with lineage
   mixed in (a dataset, its corpus version, policy, application and release, recorded with their
   inputs and spread over the log), and runs the anchoring job (anchor_pending) every
   --anchor-every events (or every --beat-s seconds), as the beat would, and once at the end.
   Recording plus anchoring is the timed figure; the peak memory is read right after it;
3. verifies the lineage of --verify releases spread across the log (verify_lineage: every event
   re-hashed, its chain neighbours checked, its Merkle path proved into the root on the chain),
   with all N events in PostgreSQL: once right after the load, then, timed for the RESULT, after
   ANALYZE (the statistics autovacuum keeps for a table that grew over time), then once more
   with a few functions wrapped to show where the time goes;
4. runs the baseline on --baseline-events more events: one transaction per event, each
   recorded in its own transaction and anchored by its own on-chain transaction, waiting for
   its receipt; its rate is scaled to N.

The last line is:
RESULT events=N events_per_s=R ratio_vs_tx_per_event=X onchain_txs=T verify_ms_p50=V
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import os
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO)]

TARGET_EVENTS_PER_S = 20_000
TARGET_RATIO = 100
TARGET_VERIFY_MS = 50
LINEAGE_STEPS = 8  # events per lineage family, see family_event(); 7 of them are in its release's lineage


def refuse(message: str) -> None:
    print(
        f"bench/ledger.py: {message}\n"
        "Run it through scripts/services.sh, which starts a throwaway PostgreSQL and anvil node:\n"
        "    bash scripts/services.sh .venv/bin/python bench/ledger.py --events 1000000",
        file=sys.stderr,
    )
    sys.exit(2)


def check_environment() -> None:
    database = os.environ.get("DATABASE_URL", "")
    if not database.startswith(("postgres://", "postgresql://")):
        refuse(f"DATABASE_URL must be a PostgreSQL URL, not {database!r}" if database else
               "DATABASE_URL is not set, so Django would use SQLite; the figures are for PostgreSQL")
    rpc = os.environ.get("CHAIN_RPC_URL", "")
    if not rpc:
        refuse("CHAIN_RPC_URL is not set, so the platform would use the demo's node; the benchmark needs "
               "a throwaway JSON-RPC node of its own (scripts/services.sh starts one)")
    if os.environ.get("MILIAO_ENV", "development") == "production":
        refuse("MILIAO_ENV is production; the benchmark writes a million junk events")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timers:
    """Seconds spent in a few functions of the anchoring and recording path, by wrapping them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.inner: dict[str, tuple] = {}  # what was wrapped, to put back

    def wrap(self, module, name: str, label: str) -> None:
        inner = getattr(module, name)
        self.inner.setdefault(f"{module.__name__}.{name}", (module, name, inner))

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(module, name, timed)

    def restore(self) -> None:
        """Put the wrapped functions back."""
        for module, name, inner in self.inner.values():
            setattr(module, name, inner)


# ---- the events ------------------------------------------------------------------------


def sha(*parts) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def family_event(f: int, step: int):
    """Step ``step`` of lineage family ``f``: how a dataset becomes a published release.

    Event types, subjects, payloads and inputs are those the platform's actions record.
    """
    from provenance.recorder import NewEvent

    steward = f"user:{1000 + f % 37}:steward{f % 37}"
    dataset, corpus = f"catalog.dataset:{f}", f"corpora.corpusversion:{f}"
    policy, release = f"releases.releasepolicy:{f}", f"releases.release:{f}"
    application = f"access.application:{f}"
    slug = f"district-{f:05d}"
    if step == 0:
        return NewEvent("catalog.dataset_registered", steward, dataset, {
            "slug": slug, "data_class": "internal", "owner": f"B{f % 16:02d}",
            "holders": sorted({f"B{f % 16:02d}", f"B{(f + 3) % 16:02d}"})})
    if step == 1:
        return NewEvent("admin.object_changed", steward, dataset, {"fields": ["description", "title_en"]})
    if step == 2:
        return NewEvent("corpora.version_ingested", steward, corpus, {
            "dataset": slug, "version": 1, "source": "survey-2025.gpkg", "source_crs": "EPSG:4549",
            "units": 40_000 + f, "kinds": {"building": 3_000 + f, "room": 36_000, "floor": 1_000},
            "sha256": sha("corpus", f)}, inputs=(dataset,))
    if step == 3:
        return NewEvent("releases.policy_saved", steward, policy, {
            "dataset": slug, "version": 1, "sha256": sha("policy", f)}, inputs=(dataset,))
    if step == 4:
        return NewEvent("releases.release_started", steward, release, {
            "dataset": slug, "corpus_version": 1, "corpus_sha256": sha("corpus", f),
            "policy_version": 1, "policy_sha256": sha("policy", f)}, inputs=(corpus, policy))
    if step == 5:
        return NewEvent("access.application_submitted", f"user:{5000 + f}:analyst{f}", application, {
            "dataset": slug, "organisation": f"U{f % 40:02d}", "purpose": "城市更新规划研究"},
            inputs=(dataset,))
    if step == 6:
        return NewEvent("releases.release_built", "system", release, {
            "hashes": {"geoparquet": sha("gpq", f), "geojson": sha("gj", f)},
            "units_in": 40_000 + f, "units_out": 38_500 + f, "k_reached": 5, "l_reached": 2})
    if step == 7:
        return NewEvent("releases.release_published", steward, release, {
            "outputs": {"geoparquet": sha("gpq", f), "geojson": sha("gj", f)}})
    raise ValueError(step)


def filler_event(i: int):
    """The everyday traffic between lineage events: admin edits, API tokens issued and rotated."""
    from provenance.recorder import NewEvent

    user = i % 20_000
    actor = f"user:{user}:u{user}"
    kind = i % 3
    if kind == 0:
        return NewEvent("admin.object_changed", actor, f"accounts.user:{user}",
                        {"fields": ["email", "phone"]})
    if kind == 1:
        return NewEvent("accounts.api_token_issued", actor, f"accounts.apitoken:{i}", {
            "user": user, "scopes": ["catalog:read", "releases:download"],
            "expires_at": "2026-12-31T00:00:00Z"})
    return NewEvent("accounts.api_token_rotated", actor, f"accounts.apitoken:{i}", {"user": user})


class EventStream:
    """N event slots; lineage families start every ``every`` slots and take a step every ``stride``."""

    def __init__(self, total: int, families: int):
        self.total = total
        # A family's events land on different pages, some in different anchors.
        self.stride = max(1, min(7_919, total // 20))
        room = total - (LINEAGE_STEPS - 1) * self.stride - LINEAGE_STEPS
        self.families = max(1, min(families, room // LINEAGE_STEPS))
        self.every = max(1, room // self.families)
        self.due = [(f * self.every + s * self.stride, f + 1, s) for f in range(self.families)
                    for s in range(LINEAGE_STEPS)]
        heapq.heapify(self.due)
        self.next = 0
        self.published: list[tuple[int, str]] = []  # (slot, release) of every release published
        self.lineage_events = 0

    def take(self, n: int) -> list:
        events = []
        end = min(self.total, self.next + n)
        due = self.due
        for i in range(self.next, end):
            if due and due[0][0] <= i:
                _at, f, step = heapq.heappop(due)
                events.append(family_event(f, step))
                self.lineage_events += 1
                if step == LINEAGE_STEPS - 1:
                    self.published.append((i, f"releases.release:{f}"))
            else:
                events.append(filler_event(i))
        self.next = end
        return events


# ---- the runs --------------------------------------------------------------------------


def main_run(args, stream: EventStream, timers: Timers) -> dict:
    from django.db import transaction
    from provenance.anchoring import anchor_pending
    from provenance.recorder import record_many

    record_s = anchor_s = gen_s = 0.0
    runs = []  # (events anchored by the run, seconds, on-chain txs it sent)
    since_anchor = 0
    last_anchor_at = time.perf_counter()

    def anchor() -> None:
        nonlocal anchor_s, since_anchor, last_anchor_at
        started = time.perf_counter()
        run = anchor_pending(force=True)
        seconds = time.perf_counter() - started
        anchor_s += seconds
        if run.error or run.pending is not None or run.resent:
            raise SystemExit(f"anchoring failed: {run}")
        runs.append((since_anchor, seconds, len(run.anchored)))
        since_anchor = 0
        last_anchor_at = time.perf_counter()

    while stream.next < stream.total:
        started = time.perf_counter()
        batch = stream.take(args.batch)
        gen_s += time.perf_counter() - started
        started = time.perf_counter()
        with transaction.atomic():
            record_many(batch)
        record_s += time.perf_counter() - started
        since_anchor += len(batch)
        beat_due = (time.perf_counter() - last_anchor_at >= args.beat_s) if args.beat_s else (
            since_anchor >= args.anchor_every)
        if beat_due:
            anchor()
    if since_anchor:
        anchor()
    return {"record_s": record_s, "anchor_s": anchor_s, "gen_s": gen_s, "runs": runs}


def verify_picks(args, stream: EventStream) -> list[str]:
    published = [subject for _slot, subject in stream.published]
    if not published:
        raise SystemExit("no release was published in the stream; use more --events")
    count = min(args.verify, len(published))
    return [published[round(k * (len(published) - 1) / max(count - 1, 1))] for k in range(count)]


def verify_releases(picks: list[str]) -> dict:
    """verify_lineage on each release, timed; every one must verify, every event anchored."""
    from provenance.lineage import verify_lineage

    times, events = [], []
    for subject in picks:
        started = time.perf_counter()
        report = verify_lineage(subject)
        times.append((time.perf_counter() - started) * 1000)
        if not report.ok or report.unanchored or report.anchored != report.events:
            raise SystemExit(f"the lineage of {subject} did not verify: {report.to_dict()}")
        events.append(report.events)
    times.sort()
    return {
        "count": len(picks),
        "p50": statistics.median(times),
        "p90": times[min(len(times) - 1, int(0.9 * len(times)))],
        "max": times[-1],
        "events": events,
    }


def verify_breakdown(picks: list[str]) -> dict:
    """Where a verification's time goes, in a separate pass (the wrappers cost a little)."""
    from ledger import merkle
    from ledger.registry import Registry
    from provenance import chain, lineage

    timers = Timers()
    timers.wrap(chain, "connect", "connect")
    timers.wrap(Registry, "anchor_of_seq", "anchor_of_seq")
    for name in ("root_of_nodes", "audit_path"):  # not leaf_hash: called per leaf, its wrapper would weigh
        timers.wrap(merkle, name, "merkle")
    timers.wrap(lineage, "lineage_graph", "graph")
    timers.wrap(lineage, "_verify_anchor", "anchor_check")  # registry read, page read, paths
    timers.wrap(lineage, "_check_links", "links")
    started = time.perf_counter()
    for subject in picks:
        lineage.verify_lineage(subject)
    total = time.perf_counter() - started
    timers.restore()
    per = {label: 1000 * seconds / len(picks) for label, seconds in timers.seconds.items()}
    per["total"] = 1000 * total / len(picks)
    per["anchor_reads"] = timers.calls["anchor_of_seq"] / len(picks)
    return per


def baseline(args, stream_offset: int) -> dict:
    """One transaction per event: record it in its own transaction, anchor it in its own on-chain tx."""
    from django.db import transaction
    from provenance.anchoring import anchor_pending
    from provenance.recorder import record

    n = args.baseline_events
    record_s = anchor_s = 0.0
    for k in range(n):
        new = filler_event(stream_offset + k)
        started = time.perf_counter()
        with transaction.atomic():
            record(new.event_type, actor=new.actor, subject=new.subject, payload=new.payload)
        middle = time.perf_counter()
        run = anchor_pending(force=True)
        done = time.perf_counter()
        if run.error or len(run.anchored) != 1:
            raise SystemExit(f"baseline anchoring of event {k} failed: {run}")
        record_s += middle - started
        anchor_s += done - middle
    return {"events": n, "seconds": record_s + anchor_s, "record_s": record_s, "anchor_s": anchor_s}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000, help="events recorded per transaction")
    parser.add_argument("--anchor-every", type=int, default=250_000,
                        help="run the anchoring job after this many events (a beat interval's worth)")
    parser.add_argument("--beat-s", type=float, default=0,
                        help="instead of --anchor-every, run the anchoring job every this many seconds")
    parser.add_argument("--lineages", type=int, default=200,
                        help="lineage families (dataset to published release) spread across the log")
    parser.add_argument("--verify", type=int, default=30, help="releases whose lineage is verified")
    parser.add_argument("--baseline-events", type=int, default=300,
                        help="events the one-transaction-per-event baseline runs on; scaled to --events")
    args = parser.parse_args()
    if args.events < 1_000:
        parser.error("--events must be at least 1000")
    check_environment()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "miliao.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from ledger import merkle
    from ledger.registry import Registry
    from provenance import anchoring, chain, recorder
    from provenance.anchoring import ledger_status
    from provenance.models import Anchor, AnchorStatus, LineageEvent, LineageLink

    call_command("migrate", verbosity=0)
    if LineageEvent.objects.exists():
        refuse("the event log of DATABASE_URL already holds events; the benchmark needs an empty, "
               "throwaway database")

    started = time.perf_counter()
    conn = chain.connect()
    setup_s = time.perf_counter() - started
    print(f"chain:     {conn.backend} (chain id {conn.chain_id}), registry {conn.registry.address}; "
          f"keystore + deployment {setup_s:.2f} s, once per process, not timed")

    timers = Timers()
    timers.wrap(recorder, "_copy_events", "copy")
    timers.wrap(anchoring, "_new_batch", "new_batch")
    timers.wrap(merkle, "page_roots", "merkle")
    timers.wrap(Registry, "send_anchor", "send")
    timers.wrap(Registry, "wait_for_receipt", "receipt")

    stream = EventStream(args.events, args.lineages)
    main = main_run(args, stream, timers)
    peak = peak_mb()
    timers.restore()
    seconds = main["record_s"] + main["anchor_s"]
    rate = args.events / seconds
    status = ledger_status()
    onchain_txs = Anchor.objects.filter(status=AnchorStatus.CONFIRMED).count()
    if status.unanchored or status.head_seq != args.events or conn.registry.anchor_count() != onchain_txs:
        raise SystemExit(f"not everything was anchored: {status.to_dict()}")
    t = timers.seconds
    print(f"events:    {args.events:,} in transactions of {args.batch:,}, {stream.lineage_events:,} of them "
          f"lineage ({stream.families} datasets to published releases, a step every {stream.stride:,} "
          f"events); making them {main['gen_s']:.2f} s, not timed")
    print(f"miliao:    {seconds:8.2f} s  {rate:10,.0f} events/s  recorded and anchored  peak {peak:,.0f} MiB")
    print(f"  record   {main['record_s']:8.2f} s  {args.events / main['record_s']:10,.0f} events/s  "
          f"(COPY {t['copy']:.2f} s, hashing the chain and the rest {main['record_s'] - t['copy']:.2f} s)")
    rpc = main["anchor_s"] - t["new_batch"]
    print(f"  anchor   {main['anchor_s']:8.2f} s  {args.events / main['anchor_s']:10,.0f} events/s  "
          f"(reading the hashes and writing the anchor rows {t['new_batch'] - t['merkle']:.2f} s, "
          f"Merkle {t['merkle']:.2f} s, chain {rpc:.2f} s of which sending {t['send']:.2f} s "
          f"and receipts {t['receipt']:.2f} s)")
    runs = main["runs"]
    sizes = ", ".join(f"{n:,}" for n, _s, _t in runs[:5]) + (", …" if len(runs) > 5 else "")
    beat = settings.ANCHOR_INTERVAL_S
    print(f"on chain:  {onchain_txs} txs for {args.events:,} events ({args.events / onchain_txs:,.0f} events "
          f"per tx): {len(runs)} anchoring runs of {sizes} events, {max(n for _n, _s, n in runs)} tx each "
          f"at most. Txs follow the runs, not the events: the beat runs every {beat} s, so "
          f"{3600 // beat:,} txs an hour at most below {settings.ANCHOR_MAX_BATCH // beat:,} events/s")

    picks = verify_picks(args, stream)
    verify_releases(picks[:2])  # warm-up: the connection, the registry, query plans
    cold = verify_releases(picks)
    started = time.perf_counter()
    with connection.cursor() as cursor:  # what autovacuum does within a minute of such a load
        for model in (LineageEvent, LineageLink, Anchor):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    analyze_s = time.perf_counter() - started
    verify_releases(picks[:2])
    verify = verify_releases(picks)
    part = verify_breakdown(picks)
    in_db = LineageEvent.objects.count()
    print(f"verify:    {verify['count']} release lineages with {in_db:,} events in PostgreSQL: "
          f"p50 {verify['p50']:.1f} ms, p90 {verify['p90']:.1f} ms, max {verify['max']:.1f} ms; "
          f"{statistics.median(verify['events']):.0f} events per lineage, each re-hashed, checked "
          f"against its chain neighbours and proved by its Merkle path into the root on the chain")
    part = {k: part.get(k, 0.0) for k in ("connect", "anchor_of_seq", "merkle", "anchor_check", "graph", "links",
                                          "total", "anchor_reads")}
    # anchor_check contains the registry reads and the Merkle paths; count them once.
    pages = part["anchor_check"] - part["anchor_of_seq"] - part["merkle"]
    known = ("connect", "anchor_check", "graph", "links")
    rest = part["total"] - sum(part[k] for k in known)
    print(f"  per lineage (mean {part['total']:.1f} ms, a separate pass): "
          f"chain.connect {part['connect']:.1f} ms, "
          f"{part['anchor_reads']:.1f} registry reads {part['anchor_of_seq']:.1f} ms, "
          f"Merkle trees and paths {part['merkle']:.1f} ms, page reads and the rest of the proof {pages:.1f} ms, "
          f"graph {part['graph']:.1f} ms, "
          f"link checks {part['links']:.1f} ms, the rest (leaf hashes, hash chain, anchors) {rest:.1f} ms")
    print(f"  right after the load, before PostgreSQL had statistics: p50 {cold['p50']:.1f} ms, "
          f"p90 {cold['p90']:.1f} ms; the figure above is after ANALYZE ({analyze_s:.1f} s), which "
          f"autovacuum does for a table as it grows")

    base = baseline(args, args.events)
    base_rate = base["events"] / base["seconds"]
    scaled = args.events / base_rate
    ratio = rate / base_rate
    each_ms = {k: 1000 * base[f"{k}_s"] / base["events"] for k in ("record", "anchor")}
    print(f"baseline:  {base['seconds']:8.2f} s  {base_rate:10,.1f} events/s  on {base['events']:,} events, "
          f"each in its own transaction and its own on-chain tx (record {each_ms['record']:.1f} ms, "
          f"anchor {each_ms['anchor']:.1f} ms an event); {scaled:,.0f} s and {args.events:,} txs "
          f"scaled to {args.events:,}")
    print(f"ratio:     {ratio:,.0f}x the events per second of one transaction per event, "
          f"with {onchain_txs} on-chain txs instead of {args.events:,}")
    checks = [
        (f"events/s >= {TARGET_EVENTS_PER_S:,}", rate >= TARGET_EVENTS_PER_S),
        (f"ratio >= {TARGET_RATIO}", ratio >= TARGET_RATIO),
        (f"verify p50 <= {TARGET_VERIFY_MS} ms", verify["p50"] <= TARGET_VERIFY_MS),
    ]
    print("targets:   " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in checks))
    print(
        f"RESULT events={args.events} events_per_s={rate:.0f} ratio_vs_tx_per_event={ratio:.0f} "
        f"onchain_txs={onchain_txs} verify_ms_p50={verify['p50']:.1f}"
    )


if __name__ == "__main__":
    main()
