"""Flower's deployment engine as real processes: a standing SuperLink beside the platform and
one SuperNode per data holder, driven with Flower's own CLI (`flwr run`, `flwr ls`,
`flwr supernode register|ls|unregister`, `flwr stop`, `flwr log`).

`SuperLink` is the platform's one long-lived SuperLink: TLS with a certificate of the
federation's own CA (made once, kept in its state folder with its database), accepting only
SuperNodes whose public keys were registered with `flwr supernode register`. `Federation`
is Flower's CLI against its Control API: what the job runner submits runs to, follows and
stops them with, and what node onboarding registers and revokes keys with. District nodes
run on the districts' machines (sandbox.federated.node); the platform starts none.

`LocalDeployment` is a test and benchmark helper: a SuperLink and SuperNodes of its own,
each pointed at a partition folder, taken down with it.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import ssl
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
APP = Path(__file__).resolve().parent / "app"
CLI_TIMEOUT_S = 120
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FederationError(RuntimeError):
    """The SuperLink or the nodes did not come up, or a CLI call failed."""


def make_certificates(folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 30) -> dict:
    """A CA (ca.crt) and the SuperLink's certificate for `hosts` signed by it (superlink.crt,
    superlink.key), as Flower's --ssl-* and --root-certificates options take them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    until = now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Miliao federation CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA384()))
    key = ec.generate_private_key(ec.SECP384R1())
    names = [x509.IPAddress(ipaddress.ip_address(h)) if h.replace(".", "").isdigit() else x509.DNSName(h)
             for h in hosts]
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(until)
            .add_extension(x509.SubjectAlternativeName(names), critical=False).sign(ca_key, hashes.SHA384()))
    paths = {"ca": folder / "ca.crt", "cert": folder / "superlink.crt", "key": folder / "superlink.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    paths["key"].chmod(0o600)
    return paths


def make_node_keys(folder: Path, name: str) -> tuple[Path, Path]:
    """A SuperNode's authentication key pair, EC P-384 in OpenSSH format (what
    `ssh-keygen -t ecdsa -b 384` writes): (private key, public key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private, public = folder / name, folder / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH))
    return private, public


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a TOML basic string (\uXXXX escapes included)


def node_config(values: dict) -> str:
    """`flower-supernode --node-config` text: key=value pairs, strings quoted."""
    return " ".join(f"{key}={_toml_value(value)}" for key, value in values.items())


def run_config_toml(values: dict) -> str:
    """A run config as the TOML file `flwr run --run-config FILE.toml` reads: any string
    survives it, which the key=value form does not (quotes, spaces)."""
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in values.items())


@dataclass
class RunStatus:
    status: str  # pending, starting, running, finished
    sub_status: str  # completed, failed, stopped (when finished)
    details: str

    @property
    def finished(self) -> bool:
        return self.status == "finished"


def flower_env(home: Path, threads: int = 1, task_poll: float = 0.1) -> dict:
    """A Flower process's environment: the platform's Python, no platform secrets, Flower's
    telemetry and runtime installs off. `task_poll` is how often a SuperExec asks for a task
    to start: a node's ClientApps wait for it at every message; the SuperLink's ServerApp
    only once a job, and each ask costs the SuperLink a database query."""
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "CHAIN_", "DJANGO_", "CELERY_", "MILIAO_", "EMAIL_"))}
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", FLWR_HOME=str(home),
               PYTHONPATH=str(REPO), FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1",
               FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1", PYTHONUNBUFFERED="1",
               FLWR_SUPEREXEC_TASK_POLL_INTERVAL=str(task_poll), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    return env


def spawn(argv: list[str], *, log: Path, home: Path, cwd: Path, threads: int = 1,
          task_poll: float = 0.1) -> subprocess.Popen:
    """A Flower executable of this environment as a process of its own (its own session, so
    that it and what it starts can be signalled together), its output appended to `log`."""
    home.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen([str(Path(sys.executable).parent / argv[0]), *argv[1:]],
                                env=flower_env(home, threads, task_poll), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)


def kill_tree(proc: subprocess.Popen | psutil.Process, sig: int) -> None:
    """Signal a process started by `spawn` and everything it started."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            os.killpg(p.pid, sig) if p.pid == os.getpgid(p.pid) else p.send_signal(sig)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            pass
    try:  # its group when it leads one (spawn's), else the process alone (the demo's nodes)
        os.killpg(proc.pid, sig) if os.getpgid(proc.pid) == proc.pid else os.kill(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    kill_tree(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc, signal.SIGKILL)
        proc.wait()


def log_failure(path: Path) -> str:
    """What a process's log says went wrong: its error lines, without colour codes."""
    text = path.read_text(errors="replace")[-5000:] if path.exists() else ""
    lines = [ANSI.sub("", line).strip() for line in text.splitlines()]
    wanted = [line for line in lines if any(w in line for w in ("ERROR", "Error", "Failed", "[code"))]
    return " ".join(wanted[-4:]) or (lines[-1] if lines else "no output")


@dataclass
class Federation:
    """Flower's CLI against a standing SuperLink's Control API at `address` (host:port),
    verified against the federation's CA; `home` is the CLI's FLWR_HOME."""

    address: str
    root_certificates: Path
    home: Path

    def __post_init__(self) -> None:
        self.home, self.root_certificates = Path(self.home), Path(self.root_certificates)
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "miliao"\n\n[superlink.miliao]\naddress = "{self.address}"\n'
            f'root-certificates = "{self.root_certificates}"\n')

    def healthy(self, timeout: float = 2) -> bool:
        """Whether the SuperLink answers its health check over TLS."""
        try:
            trusted = ssl.create_default_context(cafile=str(self.root_certificates))
            with urllib.request.urlopen(f"https://{self.address}/health", timeout=timeout, context=trusted):
                return True
        except (OSError, ssl.SSLError):
            return False

    def wait_healthy(self, timeout: float = 60, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise FederationError(f"the SuperLink exited: {log_failure(log) if log else proc.returncode}")
            if self.healthy():
                return
            time.sleep(0.3)
        raise FederationError(f"the SuperLink did not answer at {self.address} within {timeout:.0f} s")

    def cli(self, *args: str) -> dict:
        try:
            done = subprocess.run([str(Path(sys.executable).parent / "flwr"), *args, "--format", "json"],
                                  env=flower_env(self.home), capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                                  cwd=self.home)
        except subprocess.TimeoutExpired:
            raise FederationError(f"flwr {args[0]}: no answer from the SuperLink at {self.address} "
                                  f"in {CLI_TIMEOUT_S} s") from None
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            raise FederationError(f"flwr {args[0]}: {(done.stderr or done.stdout).strip()[-500:]}") from None
        if done.returncode != 0 or answer.get("success") is False:
            raise FederationError(f"flwr {args[0]}: {answer.get('error-message') or answer}")
        return answer

    # --- nodes -------------------------------------------------------------------------

    def supernodes(self) -> list[dict]:
        """The SuperLink's nodes: node-id, status (registered, online, offline, unregistered),
        created-at, online-at, offline-at, deleted-at."""
        return self.cli("supernode", "ls")["nodes"]

    def online_nodes(self) -> int:
        return sum(1 for n in self.supernodes() if n.get("status") == "online")

    def register(self, public_key: Path, name: str) -> str:
        """Register a node's public key (OpenSSH text in a file); its Flower node id."""
        return str(self.cli("supernode", "register", str(public_key), "--name", name)["node-id"])

    def unregister(self, node_id: str) -> None:
        self.cli("supernode", "unregister", str(node_id))

    # --- runs --------------------------------------------------------------------------

    def submit(self, config: dict, stage: Path, app: Path = APP) -> int:
        """`flwr run` the Flower App with `config`, built from a clean copy staged in `stage`."""
        staged = stage / "app"
        if staged.exists():
            shutil.rmtree(staged)
        shutil.copytree(app, staged, ignore=shutil.ignore_patterns("__pycache__"))
        values = stage / "run-config.toml"
        values.write_text(run_config_toml(config))
        return int(self.cli("run", str(staged), "miliao", "--run-config", str(values))["run-id"])

    def status(self, run_id: int) -> RunStatus:
        run = self.cli("ls", "--run-id", str(run_id))["runs"][0]
        status, _, sub = str(run.get("status", "")).partition(":")
        return RunStatus(status, sub, str(run.get("status-details", "") or ""))

    def stop(self, run_id: int) -> None:
        try:
            self.cli("stop", str(run_id))
        except FederationError:
            pass  # already finished

    def run_log(self, run_id: int) -> str:
        try:
            done = subprocess.run([str(Path(sys.executable).parent / "flwr"), "log", str(run_id), "miliao", "--show"],
                                  env=flower_env(self.home), capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                                  cwd=self.home)
        except subprocess.TimeoutExpired:
            return ""
        return (done.stdout + done.stderr)[-8000:]


@dataclass
class SuperLink:
    """The standing SuperLink, in `state` (its TLS files, made once, and its database: a
    restart keeps the registered nodes and the runs), serving every API on `host:port`."""

    state: Path
    port: int
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.state = Path(self.state)
        self.state.mkdir(parents=True, exist_ok=True)
        tls = self.state / "tls"
        if not (tls / "ca.crt").exists():
            make_certificates(tls, hosts=tuple(dict.fromkeys((self.host, "127.0.0.1", "localhost"))))
        self.tls = {"ca": tls / "ca.crt", "cert": tls / "superlink.crt", "key": tls / "superlink.key"}

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.state / "superlink.log"

    def argv(self) -> list[str]:
        return ["flower-superlink", "--ssl-ca-certfile", str(self.tls["ca"]), "--ssl-certfile", str(self.tls["cert"]),
                "--ssl-keyfile", str(self.tls["key"]), "--enable-supernode-auth", "--host", self.host,
                "--port", str(self.port), "--isolation", "subprocess", "--database", str(self.state / "superlink.db"),
                "--disable-runtime-dependency-installation"]

    def federation(self, home: Path | None = None) -> Federation:
        return Federation(self.address, self.tls["ca"], home or self.state / "cli")

    def start(self, timeout: float = 60) -> None:
        self.proc = spawn(self.argv(), log=self.log, home=self.state / "home", cwd=self.state, task_poll=1.0)
        self.federation().wait_healthy(timeout, proc=self.proc, log=self.log)

    def alive(self, wait: float = 0) -> bool:
        if self.proc is None:
            return False
        try:
            self.proc.wait(timeout=wait) if wait else None
        except subprocess.TimeoutExpired:
            pass
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            kill_tree(self.proc, signal.SIGKILL)
            self.proc.wait()


@dataclass
class LocalDeployment:
    """A SuperLink and SuperNodes of its own, for tests and the benchmark's per-job path."""

    root: Path
    threads_per_node: int = 1
    port: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.superlink = SuperLink(self.root / "superlink", self.port)
        self.tls = self.superlink.tls
        self.federation = self.superlink.federation(self.root / "cli")

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        proc = spawn(argv, log=self.root / f"{name}.log", home=self.root / f"home-{name}", cwd=self.root,
                     threads=self.threads_per_node)
        self.processes[name] = proc
        return proc

    def start_superlink(self, timeout: float = 60) -> None:
        self.superlink.start(timeout)
        self.processes["superlink"] = self.superlink.proc

    def start_node(self, name: str, data_path: Path, *, register: bool = True) -> None:
        """A SuperNode for `data_path`, its key registered with the SuperLink first (a district
        sends its public key to the platform once; `register=False` is a node nobody vouched for)."""
        private, public = make_node_keys(self.root / "keys", name)
        if register:
            self.federation.register(public, name)
        config = node_config({"data-path": str(data_path), "node-name": name})
        self._spawn(f"node-{name}", ["flower-supernode", "--root-certificates", str(self.tls["ca"]),
                                     "--superlink", f"127.0.0.1:{self.port}", "--auth-supernode-private-key",
                                     str(private), "--max-retries", "5", "--host", "127.0.0.1", "--port",
                                     str(free_port()), "--node-config", config])

    def kill_node(self, name: str) -> None:
        """SIGKILL a node and what it started: a holder's machine dying."""
        kill_tree(self.processes[f"node-{name}"], signal.SIGKILL)

    def superlink_alive(self, wait: float = 0) -> bool:
        """Whether the SuperLink process still runs (giving it `wait` seconds to exit)."""
        return self.superlink.alive(wait)

    def nodes_alive(self) -> list[str]:
        return [n.removeprefix("node-") for n, p in self.processes.items() if n.startswith("node-") and p.poll() is None]

    def failure(self, name: str) -> str:
        return log_failure(self.superlink.log if name == "superlink" else self.root / f"{name}.log")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.superlink.log if name == "superlink" else self.root / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def close(self) -> None:
        """Stop every process this deployment started, and what they started."""
        for proc in self.processes.values():
            kill_tree(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_tree(proc, signal.SIGKILL)
                proc.wait()

    # --- Flower's CLI, on this deployment's SuperLink ------------------------------------

    def cli(self, *args: str) -> dict:
        return self.federation.cli(*args)

    def online_nodes(self) -> int:
        return self.federation.online_nodes()

    def wait_nodes(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = [n for n, p in self.processes.items() if n.startswith("node-") and p.poll() is not None]
            if exited:
                name = exited[0]
                raise FederationError(f"SuperNode {name.removeprefix('node-')} exited while starting: "
                                      f"{self.failure(name)}")
            if self.online_nodes() >= count:
                return
            time.sleep(0.5)
        raise FederationError(f"only {self.online_nodes()} of {count} SuperNodes came online in {timeout:.0f} s")

    def submit(self, config: dict, app: Path = APP) -> int:
        return self.federation.submit(config, self.root, app)

    def status(self, run_id: int) -> RunStatus:
        return self.federation.status(run_id)

    def stop(self, run_id: int) -> None:
        self.federation.stop(run_id)

    def run_log(self, run_id: int) -> str:
        return self.federation.run_log(run_id)
