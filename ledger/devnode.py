"""Run anvil, a local EVM JSON-RPC node, as a real process for tests and benchmarks.

    with Anvil().start(state_path=tmp / "chain.json") as node:
        w3 = Web3(Web3.HTTPProvider(node.url))

With ``state_path`` the chain is loaded from that file at start and written back
when anvil exits on SIGTERM or SIGINT, so a node can be stopped and started again
with its contracts and their storage in place; SIGKILL loses everything since the
last write, which ``state_interval`` (seconds) makes periodic (the demo's node). On Linux the node gets SIGTERM when the thread that started it dies.
Plain Python, no Django: the binary comes from the pinned npm package
(``npm ci --prefix ledger/contracts``) or, failing that, from PATH.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Self

__all__ = ["CHAIN_ID", "DEV_PRIVATE_KEY", "Anvil", "AnvilError", "anvil_binary", "chain_id_at"]

CHAIN_ID = 31337
"""anvil's default chain id."""

DEV_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
"""The first account of anvil's default test mnemonic, funded with 10,000 ether.
Public knowledge: it must never hold anything on a real chain."""

# Where `npm ci --prefix ledger/contracts` puts the pinned binary (the package's "bin").
_NPM_BINARY = Path(__file__).resolve().parent / "contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"


class AnvilError(RuntimeError):
    """anvil is missing, would not start, or would not stop."""


def anvil_binary() -> Path:
    """The pinned anvil from ledger/contracts/node_modules, else the one on PATH."""
    if _NPM_BINARY.is_file() and os.access(_NPM_BINARY, os.X_OK):
        return _NPM_BINARY
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise AnvilError(
        f"anvil not found at {_NPM_BINARY} nor on PATH: run `npm ci --prefix ledger/contracts` "
        "from the repository root to install the pinned one"
    )


def chain_id_at(url: str, timeout: float = 2.0) -> int | None:
    """The chain id that the JSON-RPC node at ``url`` reports, or None if none answers."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(json.loads(response.read())["result"], 16)
    except (OSError, ValueError, KeyError, TypeError):
        return None


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec, so it only makes one system call through
    # a function looked up beforehand. Linux then sends the node SIGTERM (it still writes
    # its state) when the thread that started it dies, so a crashed or killed test run
    # leaves no node holding a port. Elsewhere the node must be stopped explicitly.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_loopback_port() -> int:
    # Another process could take the port before anvil binds it; start() then fails
    # with anvil's own message in the error, which is rare enough for tests.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Anvil:
    """One anvil process at a time; ``start`` again after ``stop`` to restart it."""

    chain_id = CHAIN_ID

    def __init__(self, *, binary: str | os.PathLike | None = None):
        self.binary = Path(binary) if binary is not None else anvil_binary()
        # The log keeps anvil's per-request chatter out of the test output; its tail
        # goes into any error raised here.
        self.log_dir = Path(tempfile.mkdtemp(prefix="anvil-"))
        self.log_path = self.log_dir / "anvil.log"
        self.port: int | None = None
        self.state_path: Path | None = None
        self._process: subprocess.Popen | None = None
        self._log_start = 0

    # ---- lifecycle -----------------------------------------------------------------

    def start(
        self,
        port: int | None = None,
        state_path: str | os.PathLike | None = None,
        block_time: float | None = None,
        *,
        state_interval: float | None = None,
        timeout: float = 30.0,
    ) -> Self:
        """Start anvil on 127.0.0.1 and wait until it answers; returns self.

        ``port=None`` picks a free one. ``block_time=None`` mines each transaction
        at once; a number mines a block every that many seconds.
        """
        if self.running:
            raise AnvilError(f"anvil is already running at {self.url}")
        if block_time is not None and block_time <= 0:
            raise ValueError(f"block_time must be positive seconds, got {block_time!r}")
        if state_interval is not None and (state_path is None or state_interval <= 0):
            raise ValueError(f"state_interval needs a state_path and positive seconds, got {state_interval!r}")
        self.port = port if port is not None else _free_loopback_port()
        self.state_path = Path(state_path) if state_path is not None else None
        args = [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--chain-id", str(CHAIN_ID)]
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            args += ["--state", str(self.state_path)]
        if state_interval is not None:
            args += ["--state-interval", str(state_interval)]
        if block_time is not None:
            args += ["--block-time", str(block_time)]
        with open(self.log_path, "ab") as log:
            log.write(f"\n$ {' '.join(args)}\n".encode())
            log.flush()
            self._log_start = log.tell()
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (one syscall; see there)
                # Not in the terminal's process group: Ctrl-C stops the process that owns
                # the node, which then stops it after what still writes to it (the demo).
                start_new_session=True,
            )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until this process listens and answers eth_chainId, or raise AnvilError."""
        deadline = time.monotonic() + timeout
        while True:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise AnvilError(f"anvil exited (status {code}) before it was ready:\n{self.log_tail()}")
            try:
                # The log line proves that this process holds the port: an answer alone
                # could come from another node already on it, before this one gives up.
                if self._listening() and int(self._rpc("eth_chainId"), 16) == CHAIN_ID:
                    return
            except (OSError, ValueError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise AnvilError(f"anvil did not answer on {self.url} within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 30.0) -> int:
        """Send ``sig`` (SIGTERM writes the state file) and wait for exit; returns the
        exit status. Stopping a node that is not running does nothing."""
        process = self._process
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AnvilError(
                    f"anvil ignored signal {sig} for {timeout}s and was killed:\n{self.log_tail()}"
                ) from None
        self._process = None
        return process.returncode

    def kill(self) -> int:
        """SIGKILL: a crash. Nothing is written to the state file."""
        return self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        if self.port is None:
            raise AnvilError("anvil has not been started")
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def close(self) -> None:
        """Stop anvil (writing its state file) and delete its log."""
        self.stop()
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- plumbing ------------------------------------------------------------------

    def _listening(self) -> bool:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_start)
            return f"Listening on 127.0.0.1:{self.port}".encode() in log.read()

    def _rpc(self, method: str, params: list | None = None):
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=2) as response:
            reply = json.loads(response.read())
        if "error" in reply:
            raise AnvilError(f"{method}: {reply['error']}")
        return reply["result"]
