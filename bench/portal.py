"""Benchmark: the portal under load, on PostgreSQL, under gunicorn against `runserver`.

    bash scripts/services.sh .venv/bin/python bench/portal.py [--sizes 10,2000] [--workers N]

scripts/services.sh starts a throwaway PostgreSQL (and Redis, anvil) and removes it afterwards;
the database must start empty. In this one process the bench:
1. migrates, creates a bureau, a district, a startup and an audit office with a steward, an
   applicant and an auditor (API tokens, a logged-in session for the steward's dashboard);
2. for each catalogue size (--sizes, default 10 and 2,000 datasets, registered through
   catalog.actions with zh/en titles, descriptions, themes, districts and keywords, one in 10
   applied for), runs each server as a child process with DEBUG off:
   - gunicorn (sync workers, --workers, --timeout, --backlog; with the settings of
     platform/miliao/gunicorn_conf.py where that file exists, these flags on top);
   - `manage.py runserver --noreload` (threaded), the baseline a user would otherwise run;
3. drives each with an open-loop client (asyncio + aiohttp; requests are sent at fixed times
   whatever the answers do, each new connection, at most --max-in-flight open; one that cannot
   be sent, times out after --timeout-s or answers other than 200 is an error; latency is
   measured from the time the request was due, so a stalled server is not hidden by a client
   that waits for it): the catalogue (/api/datasets/) at each of --rates, then search, DCAT,
   the steward's dashboard and the event log (/api/events/) at fixed rates, then a burst at
   DCAT (--burst-rate for --burst-s) while the catalogue is probed at 10 requests/s before,
   during and for 30 s after it;
4. prints, per server, size and stream: the rate asked, the achieved rate (200 answers per
   second), p50/p95/p99, errors, the mean response size and the server's CPU ms per answer
   (its processes' user + system time over the stream; PostgreSQL's is not counted); for the burst, the probe's p99 during and
   after it and the seconds from its end until the probe answered within 1 s again; the peak
   memory of the server (all its processes) and of this process.

The last line is:
RESULT catalog_p99_ms_200rps_10=A catalog_p99_ms_200rps_2000=B flat=B/A errors=E
       runserver_p99_ms_200rps_2000=C ratio=C/B burst_probe_p99_ms=D recovery_s=R server_peak_mb=M
(the sizes are the first and last of --sizes, the rate the last of --rates).
The client shares the machine with the server; on this 2-core machine it takes a share of the
CPU the server would otherwise have.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "platform"), str(REPO)]
PYTHON = sys.executable
GUNICORN_CONF = REPO / "platform" / "miliao" / "gunicorn_conf.py"

TARGET_P99_MS = 100
TARGET_RATE = 200
TARGET_FLAT = 1.5

# Streams besides the catalogue: (name, rate per second).
FIXED_STREAMS = [("search", 50), ("dcat", 5), ("dashboard", 20), ("events", 50)]
SEARCHES = ["管线", "roads", "浦东", "rent", "交通 3", "建筑", "parcel", "用地"]
PROBE_RATE = 10
AFTER_BURST_S = 30
RECOVERED_MS = 1000


def refuse(message: str) -> None:
    print(f"bench/portal.py: {message}\nRun it through scripts/services.sh, which starts a throwaway "
          "PostgreSQL:\n    bash scripts/services.sh .venv/bin/python bench/portal.py", file=sys.stderr)
    sys.exit(2)


def setup_django():
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        refuse("DATABASE_URL is not a PostgreSQL database")
    os.environ["DJANGO_DEBUG"] = "0"  # no query log growing in memory, as in production
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "miliao.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from catalog.models import Dataset

    if Dataset.objects.exists():
        refuse("the database already holds datasets; the bench needs an empty one")


# --- the world ------------------------------------------------------------------

@dataclass
class World:
    steward: object
    applicant: object
    tokens: dict[str, str]
    session: str
    added: int = 0


def build_world() -> World:
    from django.test import Client

    from accounts import actions as account_actions
    from rest_framework.authtoken.models import Token

    def org(code, name, kind):
        return account_actions.create_organisation(actor=None, code=code, name=name, name_en=code, kind=kind)

    bureau = org("sh-planning", "上海市规划和自然资源局", "bureau")
    org("pudong", "浦东新区规划资源局", "district")
    startup = org("mili-tech", "米粒空间科技有限公司", "startup")
    audit = org("sh-audit", "上海市审计局", "audit_office")
    users = {}
    for username, role, organisation in [("steward", "steward", bureau), ("applicant", "applicant", startup),
                                         ("auditor", "auditor", audit)]:
        users[username] = account_actions.create_user(
            actor=None, username=username, password="Bench-portal-42", role=role, organisation=organisation
        )
    tokens = {name: Token.objects.get_or_create(user=user)[0].key for name, user in users.items()}
    client = Client()
    client.force_login(users["steward"])
    return World(users["steward"], users["applicant"], tokens, client.cookies["sessionid"].value)


THEMES = [("buildings", "建筑", "buildings"), ("infrastructure", "管线", "pipes"), ("land_use", "用地", "parcels"),
          ("transport", "交通", "roads"), ("environment", "环境", "environment"), ("other", "其他", "other")]
DISTRICTS = ["黄浦区", "浦东新区", "徐汇区", "静安区", "长宁区", "普陀区", "虹口区", "杨浦区"]
CLASSES = ["open", "conditional", "compute_only"]


def grow(w: World, size: int) -> float:
    """Register datasets until the catalogue holds `size`; one in 10 of those that need an
    application gets one. Returns the seconds it took."""
    from access import actions as access_actions
    from catalog import actions as catalog_actions
    from django.db import connection

    from accounts.models import Organisation

    district = Organisation.objects.get(code="pudong")
    t0 = time.perf_counter()
    for i in range(w.added, size):
        theme, zh, en = THEMES[i % len(THEMES)]
        place = DISTRICTS[i % len(DISTRICTS)]
        data_class = CLASSES[i % len(CLASSES)]
        dataset = catalog_actions.register_dataset(
            actor=w.steward, slug=f"{en}-{i:05d}", title=f"{place}{zh}数据 {i}", title_en=f"{en.title()} of {i}",
            description=f"{place}的{zh}要素及其属性，第 {i} 批。", description_en=f"The {en} of batch {i}, with attributes.",
            theme=theme, district=place, keywords=[zh, en, f"批次{i}"], data_class=data_class,
            holders=[district] if data_class == "compute_only" else [],
        )
        if data_class != "open" and i % 10 < 3:
            access_actions.submit_application(actor=w.applicant, dataset=dataset, purpose=f"benchmark study {i}")
    w.added = size
    # A catalogue in use, not one just loaded in bulk: vacuumed and analysed now, rather than
    # by autovacuum in the middle of a measurement (it wakes within a minute of the inserts).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


# --- servers ----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server as a child process group, with the peak resident memory of all its processes."""

    def __init__(self, kind: str, args, log_dir: Path):
        self.kind, self.port = kind, free_port()
        bind = f"127.0.0.1:{self.port}"
        if kind == "gunicorn":
            if GUNICORN_CONF.exists():
                conf = ["-c", str(GUNICORN_CONF)]
            else:  # import every view in the master (--preload), as that file does, before forking
                (log_dir / "gunicorn_bench_conf.py").write_text(
                    "def when_ready(server):\n    from django.urls import get_resolver\n\n"
                    "    get_resolver().url_patterns\n")
                conf = ["-c", str(log_dir / "gunicorn_bench_conf.py")]
            cmd = [str(Path(PYTHON).parent / "gunicorn"), *conf, "miliao.wsgi:application",
                   "--pythonpath", f"{REPO / 'platform'},{REPO}", "--bind", bind, "--workers", str(args.workers),
                   "--worker-class", "sync", "--timeout", str(args.worker_timeout), "--backlog", str(args.backlog),
                   "--graceful-timeout", "5", "--preload", "--access-logfile", "/dev/null"]
        else:
            cmd = [PYTHON, str(REPO / "manage.py"), "runserver", "--noreload", bind]
        self.log = open(log_dir / f"{kind}.log", "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ}, start_new_session=True)
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """CPU seconds (user + system) spent so far by the server's live processes."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def _sample(self):
        import psutil

        while not self._stop.wait(0.5):
            try:
                root = psutil.Process(self.proc.pid)
                procs = [root, *root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
            except psutil.Error:
                continue
            self.peak_mb = max(self.peak_mb, rss / 2**20)

    def fail(self, why: str):
        self.log.flush()
        tail = Path(self.log.name).read_text(errors="replace")[-3000:]
        self.stop()
        raise SystemExit(f"{self.kind} {why}; the end of its log:\n{tail}")

    def wait_ready(self, token: str, timeout: float = 180):
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail("exited")
            try:
                req = urllib.request.Request(self.base + "/api/datasets/", headers={"Authorization": f"Token {token}"})
                if urllib.request.urlopen(req, timeout=5).status == 200:
                    self._sampler.start()
                    return
            except OSError:
                time.sleep(0.3)
        self.fail(f"did not answer within {timeout} s")

    def stop(self):
        self._stop.set()
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.log.close()


# --- the open-loop client --------------------------------------------------------

@dataclass
class Stream:
    name: str
    paths: list[str]
    headers: dict
    rate: float
    start: float  # seconds after the run starts
    stop: float
    due: list[float] = field(default_factory=list)  # when each request was due (s after start)
    latency: list[float] = field(default_factory=list)  # ms from due to the whole answer read; nan if failed
    nbytes: list[int] = field(default_factory=list)
    errors: dict = field(default_factory=dict)


async def drive(base: str, streams: list[Stream], *, max_in_flight: int, timeout_s: float):
    import aiohttp

    in_flight = 0
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    client_timeout = aiohttp.ClientTimeout(total=timeout_s)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2
    tasks = []

    def fail(stream, why):
        stream.errors[why] = stream.errors.get(why, 0) + 1
        stream.latency.append(float("nan"))
        stream.nbytes.append(0)

    async def one(session, stream: Stream, path: str, due: float):
        nonlocal in_flight
        try:
            async with session.get(base + path, headers=stream.headers, timeout=client_timeout,
                                   allow_redirects=False) as response:
                body = await response.read()
                if response.status != 200:
                    fail(stream, f"http {response.status}")
                    return
            stream.latency.append((loop.time() - t0 - due) * 1000)
            stream.nbytes.append(len(body))
        except TimeoutError:
            fail(stream, "timeout")
        except aiohttp.ClientError as exc:
            fail(stream, type(exc).__name__)
        finally:
            in_flight -= 1

    async def feed(session, stream: Stream):
        nonlocal in_flight
        paths = itertools.cycle(stream.paths)
        for k in itertools.count():
            due = stream.start + k / stream.rate
            if due >= stream.stop:
                return
            await asyncio.sleep(max(0.0, t0 + due - loop.time()))
            stream.due.append(due)
            if in_flight >= max_in_flight:
                fail(stream, "client bound")
                continue
            in_flight += 1
            tasks.append(asyncio.create_task(one(session, stream, next(paths), due)))

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(feed(session, s) for s in streams))
        await asyncio.gather(*tasks)


def summary(stream: Stream, within=None) -> dict:
    import numpy as np

    due = np.asarray(stream.due)
    lat = np.asarray(stream.latency)
    keep = np.ones(len(due), bool) if within is None else (due >= within[0]) & (due < within[1])
    lat, nbytes = lat[keep], np.asarray(stream.nbytes)[keep]
    ok = ~np.isnan(lat)
    span = (within[1] - within[0]) if within else (stream.stop - stream.start)
    pct = np.percentile(lat[ok], [50, 95, 99]) if ok.any() else [float("nan")] * 3
    return {"due": int(keep.sum()), "rate": ok.sum() / span, "p50": pct[0], "p95": pct[1], "p99": pct[2],
            "errors": int((~ok).sum()), "kb": float(nbytes[ok].mean() / 1024) if ok.any() else 0.0}


def row(server: str, size: int, name: str, target: float, s: dict, note: str = "") -> str:
    cpu = f"{s['cpu_ms']:7.1f}" if "cpu_ms" in s else f"{'':7}"
    return (f"{server:9} {size:6,} {name:14} {target:6.0f} {s['rate']:8.1f} {s['p50']:8.1f} {s['p95']:8.1f} "
            f"{s['p99']:8.1f} {s['errors']:6} {s['kb']:8.1f} {cpu}  {note}")


HEADER = (f"{'server':9} {'sets':>6} {'stream':14} {'rate':>6} {'achieved':>8} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'p99 ms':>8} {'errors':>6} {'KB':>8} {'cpu ms':>7}")


def run(base, streams, args, server=None):
    """Drive the streams; with `server`, return its CPU ms per 200 answer (web server
    processes only: PostgreSQL's share is not in it; requests it dropped or answered 499
    cost it little and are not counted)."""
    cpu0 = server.cpu_s() if server else 0.0
    # The client's own pauses are not the server's latency: what this process built so far
    # (Django, the registered datasets) is frozen, so its collector walks only the requests'.
    gc.collect()
    gc.freeze()
    asyncio.run(drive(base, streams, max_in_flight=args.max_in_flight, timeout_s=args.timeout_s))
    answered = sum(sum(1 for v in s.latency if not math.isnan(v)) for s in streams)
    return (server.cpu_s() - cpu0) * 1000 / max(answered, 1) if server else None


def measure(server: Server, w: World, size: int, args, results: dict):
    api = {"Authorization": f"Token {w.tokens['applicant']}"}
    auditor = {"Authorization": f"Token {w.tokens['auditor']}"}
    paths = {
        "catalog": (["/api/datasets/"], api),
        "search": ([f"/api/datasets/?q={q}" for q in SEARCHES], api),
        "dcat": (["/api/datasets/dcat/"], api),
        "dashboard": (["/"], {"Cookie": f"sessionid={w.session}"}),
        "events": (["/api/events/"], auditor),
    }
    run(server.base, [Stream("warm-up", *paths["catalog"], 5, 0, 2)], args)  # workers' first requests
    for rate in args.rates:
        s = Stream("catalog", *paths["catalog"], rate, 0, args.seconds)
        cpu = run(server.base, [s], args, server)
        results[server.kind, size, "catalog", rate] = {**summary(s), "cpu_ms": cpu}
        print(row(server.kind, size, "catalog", rate, results[server.kind, size, "catalog", rate],
                  ", ".join(f"{k} {v}" for k, v in s.errors.items())), flush=True)
    for name, rate in FIXED_STREAMS:
        s = Stream(name, *paths[name], rate, 0, args.seconds)
        cpu = run(server.base, [s], args, server)
        results[server.kind, size, name, rate] = {**summary(s), "cpu_ms": cpu}
        print(row(server.kind, size, name, rate, results[server.kind, size, name, rate],
                  ", ".join(f"{k} {v}" for k, v in s.errors.items())), flush=True)
    # The burst: DCAT at --burst-rate for --burst-s, the catalogue probed throughout.
    b0, b1 = 5.0, 5.0 + args.burst_s
    probe = Stream("probe", *paths["catalog"], PROBE_RATE, 0, b1 + AFTER_BURST_S)
    burst = Stream("burst", *paths["dcat"], args.burst_rate, b0, b1)
    run(server.base, [probe, burst], args)
    before, during, after = (summary(probe, (0, b0)), summary(probe, (b0, b1)),
                             summary(probe, (b1, b1 + AFTER_BURST_S)))
    recovery = recovered_after(probe, b1)
    results[server.kind, size, "burst"] = {"during": during, "after": after, "recovery": recovery,
                                           "burst": summary(burst)}
    print(row(server.kind, size, "burst dcat", args.burst_rate, summary(burst),
              ", ".join(f"{k} {v}" for k, v in burst.errors.items())))
    for label, s in (("probe before", before), ("probe during", during), ("probe after", after)):
        print(row(server.kind, size, label, PROBE_RATE, s))
    text = f"{recovery:.1f} s" if recovery is not None else f"not within {AFTER_BURST_S} s"
    print(f"{server.kind:9} {size:6,} the catalogue answered within {RECOVERED_MS} ms again {text} after the burst",
          flush=True)


def recovered_after(probe: Stream, end: float) -> float | None:
    """Seconds from `end` to the first probe due after it from which every later probe
    answered within RECOVERED_MS; None if the last one did not."""
    pairs = sorted((d, lat) for d, lat in zip(probe.due, probe.latency) if d >= end)
    good_from = None
    for due, lat in pairs:
        if not math.isnan(lat) and lat <= RECOVERED_MS:
            good_from = due if good_from is None else good_from
        else:
            good_from = None
    return None if good_from is None else good_from - end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,2000", help="catalogue sizes, ascending")
    parser.add_argument("--rates", default="50,100,200", help="catalogue request rates per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each fixed-rate stream")
    parser.add_argument("--workers", type=int, default=max(2, len(os.sched_getaffinity(0))),
                        help="gunicorn workers (default: one per core, as gunicorn_conf.py)")
    parser.add_argument("--worker-timeout", type=int, default=30, help="gunicorn --timeout (s)")
    parser.add_argument("--backlog", type=int, default=64, help="gunicorn --backlog")
    parser.add_argument("--max-in-flight", type=int, default=256, help="the client's bound")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="the client gives up on a request after")
    parser.add_argument("--burst-rate", type=float, default=100.0)
    parser.add_argument("--burst-s", type=float, default=20.0)
    parser.add_argument("--servers", default="gunicorn,runserver")
    args = parser.parse_args()
    args.sizes = [int(v) for v in args.sizes.split(",")]
    args.rates = [int(v) for v in args.rates.split(",")]
    servers = args.servers.split(",")

    t0 = time.perf_counter()
    setup_django()
    w = build_world()
    print(f"load average at the start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; gunicorn {args.workers} sync workers, timeout {args.worker_timeout} s, "
          f"backlog {args.backlog}" + (f", with {GUNICORN_CONF.relative_to(REPO)}" if GUNICORN_CONF.exists() else ""))
    results: dict = {}
    peaks: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-portal-") as log_dir:
        for size in args.sizes:
            seconds = grow(w, size)
            print(f"\n{size:,} datasets registered ({seconds:.1f} s)\n{HEADER}", flush=True)
            for kind in servers:
                server = Server(kind, args, Path(log_dir))
                try:
                    server.wait_ready(w.tokens["applicant"])
                    measure(server, w, size, args, results)
                finally:
                    server.stop()
                peaks[kind, size] = server.peak_mb
                print(f"{kind:9} {size:6,} server peak memory (all processes) {server.peak_mb:.0f} MiB; "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)

    small, large, rate = args.sizes[0], args.sizes[-1], args.rates[-1]
    g_small = results.get(("gunicorn", small, "catalog", rate))
    g_large = results.get(("gunicorn", large, "catalog", rate))
    base = results.get(("runserver", large, "catalog", rate))
    burst = results.get(("gunicorn", large, "burst"))
    errors = sum(v["errors"] for k, v in results.items() if k[0] == "gunicorn" and len(k) == 4)
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nbench process peak {peak_self:.0f} MiB; {time.perf_counter() - t0:.0f} s in all; "
          f"load average at the end {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if g_small and g_large:
        flat = g_large["p99"] / g_small["p99"]
        saturated = [n for n, r in ((small, g_small), (large, g_large)) if r["rate"] < 0.95 * rate]
        if saturated:
            print(f"SATURATED at {', '.join(f'{n:,}' for n in saturated)} datasets: gunicorn answered fewer than "
                  f"{rate}/s, so these p99s are the client's {args.timeout_s:.0f} s timeout and the queue, not the "
                  "cost of a page; compare the CPU ms per answer instead")
        print(f"goals: catalogue p99 <= {TARGET_P99_MS} ms at {TARGET_RATE}/s: {g_large['p99']:.1f} ms "
              f"({'met' if g_large['p99'] <= TARGET_P99_MS else 'NOT met'}); flat <= {TARGET_FLAT}x from "
              f"{small:,} to {large:,} datasets: {flat:.2f}x ({'met' if flat <= TARGET_FLAT else 'NOT met'}); "
              f"errors under gunicorn: {errors}")
        fields = [f"catalog_p99_ms_{rate}rps_{small}={g_small['p99']:.1f}",
                  f"catalog_p99_ms_{rate}rps_{large}={g_large['p99']:.1f}", f"flat={flat:.2f}", f"errors={errors}"]
        if base:
            fields += [f"runserver_p99_ms_{rate}rps_{large}={base['p99']:.1f}", f"ratio={base['p99'] / g_large['p99']:.2f}"]
        if burst:
            rec = burst["recovery"]
            fields += [f"burst_probe_p99_ms={burst['during']['p99']:.1f}",
                       f"recovery_s={rec:.1f}" if rec is not None else f"recovery_s=>{AFTER_BURST_S}"]
        fields.append(f"server_peak_mb={max(v for (k, _), v in peaks.items() if k == 'gunicorn'):.0f}")
        print("RESULT " + " ".join(fields))


if __name__ == "__main__":
    main()
