"""Flower's deployment engine as real processes: a SuperLink beside the platform and one
SuperNode per data holder, driven with Flower's own CLI (`flwr run`, `flwr ls`,
`flwr supernode ls`, `flwr stop`, `flwr log`).

`LocalDeployment` starts the SuperNodes itself, each pointed at its holder's partition
folder: what the demo, the tests and a single-machine pilot use. It runs the federation the
way a real one runs: the SuperLink serves TLS with a certificate of the federation's own CA
and accepts only SuperNodes whose public keys were registered with `flwr supernode
register`; each SuperNode verifies the SuperLink against the CA and signs in with its private
key. In a real deployment each district starts its own SuperNode on its own machine (see
sandbox/README.md) and the platform only runs the SuperLink; `start_node` is then never called.
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


@dataclass
class LocalDeployment:
    root: Path
    threads_per_node: int = 1
    port: int = 0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.tls = make_certificates(self.root / "tls")
        self.cli_home = self.root / "cli"
        self.cli_home.mkdir(exist_ok=True)
        (self.cli_home / "config.toml").write_text(
            f'[superlink]\ndefault = "miliao"\n\n[superlink.miliao]\naddress = "127.0.0.1:{self.port}"\n'
            f'root-certificates = "{self.tls["ca"]}"\n')

    # --- processes ---------------------------------------------------------------------

    def env(self, home: Path) -> dict:
        bin_dir = str(Path(sys.executable).parent)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATABASE_", "CHAIN_", "DJANGO_", "CELERY_", "MILIAO_", "EMAIL_"))}
        env.update(PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", FLWR_HOME=str(home),
                   PYTHONPATH=str(REPO), FLWR_TELEMETRY_ENABLED="0", FLWR_DISABLE_UPDATE_CHECK="1",
                   FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1", PYTHONUNBUFFERED="1",
                   FLWR_SUPEREXEC_TASK_POLL_INTERVAL="0.1",
                   OMP_NUM_THREADS=str(self.threads_per_node), MKL_NUM_THREADS=str(self.threads_per_node))
        return env

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        home = self.root / f"home-{name}"
        home.mkdir(exist_ok=True)
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen([str(Path(sys.executable).parent / argv[0]), *argv[1:]], env=self.env(home),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                start_new_session=True)
        log.close()
        self.processes[name] = proc
        return proc

    def start_superlink(self, timeout: float = 60) -> None:
        self._spawn("superlink", ["flower-superlink", "--ssl-ca-certfile", str(self.tls["ca"]),
                                  "--ssl-certfile", str(self.tls["cert"]), "--ssl-keyfile", str(self.tls["key"]),
                                  "--enable-supernode-auth", "--host", "127.0.0.1", "--port", str(self.port),
                                  "--isolation", "subprocess", "--database", str(self.root / "superlink.db"),
                                  "--disable-runtime-dependency-installation"])
        trusted = ssl.create_default_context(cafile=str(self.tls["ca"]))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes["superlink"].poll() is not None:
                raise FederationError(f"the SuperLink exited: {self.log_tail('superlink')}")
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{self.port}/health", timeout=2, context=trusted):
                    return
            except OSError:
                time.sleep(0.3)
        raise FederationError(f"the SuperLink did not answer on port {self.port} within {timeout:.0f} s")

    def start_node(self, name: str, data_path: Path, *, register: bool = True) -> None:
        """A SuperNode for `data_path`, its key registered with the SuperLink first (a district
        sends its public key to the platform once; `register=False` is a node nobody vouched for)."""
        private, public = make_node_keys(self.root / "keys", name)
        if register:
            self.cli("supernode", "register", str(public), "--name", name)
        config = node_config({"data-path": str(data_path), "node-name": name})
        self._spawn(f"node-{name}", ["flower-supernode", "--root-certificates", str(self.tls["ca"]),
                                     "--superlink", f"127.0.0.1:{self.port}", "--auth-supernode-private-key",
                                     str(private), "--max-retries", "5", "--host", "127.0.0.1", "--port",
                                     str(free_port()), "--node-config", config])

    def kill_node(self, name: str) -> None:
        """SIGKILL a node and what it started: a holder's machine dying."""
        self._kill(self.processes[f"node-{name}"], signal.SIGKILL)

    def superlink_alive(self, wait: float = 0) -> bool:
        """Whether the SuperLink process still runs (giving it `wait` seconds to exit)."""
        proc = self.processes.get("superlink")
        if proc is None:
            return False
        try:
            proc.wait(timeout=wait) if wait else None
        except subprocess.TimeoutExpired:
            pass
        return proc.poll() is None

    def nodes_alive(self) -> list[str]:
        return [n.removeprefix("node-") for n, p in self.processes.items() if n.startswith("node-") and p.poll() is None]

    def failure(self, name: str) -> str:
        """What a process's log says went wrong: its error lines, without colour codes."""
        lines = [ANSI.sub("", line).strip() for line in self.log_tail(name, 5000).splitlines()]
        wanted = [line for line in lines if any(w in line for w in ("ERROR", "Error", "Failed", "[code"))]
        return " ".join(wanted[-4:]) or (lines[-1] if lines else "no output")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    @staticmethod
    def _kill(proc: subprocess.Popen, sig: int) -> None:
        try:
            family = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        for p in [*family]:
            try:
                os.killpg(p.pid, sig) if p.pid == os.getpgid(p.pid) else p.send_signal(sig)
            except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
                pass
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Stop every process this deployment started, and what they started."""
        for proc in self.processes.values():
            self._kill(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill(proc, signal.SIGKILL)
                proc.wait()

    # --- Flower's CLI --------------------------------------------------------------------

    def cli(self, *args: str) -> dict:
        done = subprocess.run([str(Path(sys.executable).parent / "flwr"), *args, "--format", "json"],
                              env=self.env(self.cli_home), capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                              cwd=self.root)
        try:
            answer = json.loads(done.stdout)
        except ValueError:
            raise FederationError(f"flwr {args[0]}: {(done.stderr or done.stdout).strip()[-500:]}") from None
        if done.returncode != 0 or answer.get("success") is False:
            raise FederationError(f"flwr {args[0]}: {answer.get('error-message') or answer}")
        return answer

    def online_nodes(self) -> int:
        return sum(1 for n in self.cli("supernode", "ls")["nodes"] if n.get("status") == "online")

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
        staged = self.root / "app"  # `flwr run` builds the FAB from a folder; stage a clean copy
        if staged.exists():
            shutil.rmtree(staged)
        shutil.copytree(app, staged, ignore=shutil.ignore_patterns("__pycache__"))
        values = self.root / "run-config.toml"
        values.write_text(run_config_toml(config))
        return int(self.cli("run", str(staged), "miliao", "--run-config", str(values))["run-id"])

    def status(self, run_id: int) -> RunStatus:
        runs = self.cli("ls", "--run-id", str(run_id))["runs"]
        run = runs[0]
        status, _, sub = str(run.get("status", "")).partition(":")
        return RunStatus(status, sub, str(run.get("status-details", "") or ""))

    def stop(self, run_id: int) -> None:
        try:
            self.cli("stop", str(run_id))
        except FederationError:
            pass  # already finished

    def run_log(self, run_id: int) -> str:
        done = subprocess.run([str(Path(sys.executable).parent / "flwr"), "log", str(run_id), "miliao", "--show"],
                              env=self.env(self.cli_home), capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                              cwd=self.root)
        return (done.stdout + done.stderr)[-8000:]
