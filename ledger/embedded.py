"""A persistent embedded EVM chain: eth-tester + py-evm in this process, kept on disk.

The platform's zero-setup chain backend runs an EVM inside its own process.  Plain
eth-tester keeps that chain in memory, so a restart loses every contract and
anchored root while the database still refers to them.  :class:`EmbeddedChain` is
the same chain (same ``PyEVMBackend``, same ``Web3(EthereumTesterProvider)``), with
py-evm's key/value store mirrored into an SQLite file and restored from it.

How py-evm keeps its data
-------------------------
``backend.chain`` is a ``MiningChain`` subclass that eth-tester defines inside
``setup_tester_chain`` (chain id 131277322940537, one ``PragueVM`` from block 0).
Everything it knows -- headers, bodies, receipts, the state trie (balances, nonces,
code, storage), the canonical ``number -> hash`` index, the ``tx hash -> (block,
index)`` index and the canonical head pointer -- lives in one key/value store:
``chain.chaindb.db`` is an ``AtomicDB`` wrapping a ``MemoryDB`` whose ``kv_store``
is a plain ``dict[bytes, bytes]``.  The chain object holds only one thing that is
not in that store: ``chain.header``, the *pending* block being built.  Its
constructor, ``ChainClass(base_db)``, reads the canonical head from the store and
builds a new pending header on top of it.  So restoring is: load the dict, wrap it
in ``AtomicDB``, call the chain class's constructor, put the chain on a backend.

Here the ``MemoryDB`` is a subclass that also records which keys were written or
deleted since the last save, so a save writes only those rows.

On-disk format (``FORMAT_VERSION`` 1)
-------------------------------------
One SQLite 3 file, ``PRAGMA application_id`` = ``0x4D4C4543`` ("MLEC") and
``PRAGMA user_version`` = the format version, with two tables::

    kv(k BLOB PRIMARY KEY, v BLOB NOT NULL, crc INTEGER NOT NULL) WITHOUT ROWID
    meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)

``kv`` is py-evm's store, row for row; ``crc`` is ``zlib.crc32(v, zlib.crc32(k))``,
checked for every row on load.  ``meta`` holds text: ``format``, ``format_version``,
``chain_id``, ``forks`` (JSON ``[[block, fork name], ...]``), ``genesis_hash``,
``head_hash``, ``head_number``, ``head_timestamp``, ``key_count`` (rows in ``kv``),
``saved_at``, ``created_at``, and the py-evm / eth-tester versions that wrote it.
Only data is stored, never code: no pickle, so opening a file cannot run anything,
and any SQLite client can inspect it.  SQLite was chosen over a flat file because
it can apply a save's few changed rows as one atomic, durable transaction.

Saving, atomicity and crash safety
----------------------------------
The first save of a new file writes everything to a temporary file in the same
directory, fsyncs it and ``os.replace``-s it into place, so a crash never leaves a
half-written file under the real name.  Later saves are incremental: the rows
changed since the previous save, plus the ``meta`` rows, in one SQLite transaction
(write-ahead log, ``synchronous=FULL``).  SQLite's commit is atomic: after a crash
the file holds either the previous save or the new one, never a mix, and the WAL
(``<file>-wal``) is recovered on the next open.  ``save(full=True)`` rewrites the
whole file through the temporary-file path again.  With the default
``autosave=True`` every request that adds a block saves before it returns, so once
``send_raw_transaction`` has returned, that block is on disk.

What is not saved: the pending block when auto-mining is turned off (eth-tester's
default is to mine each transaction into its own block, which this module keeps),
eth-tester's filters (``eth_newFilter`` ids) and snapshot ids (a revert to a
snapshot *is* saved, as a new head), and accounts added with ``add_account``.
``eth_getLogs`` reads blocks and works after a restore.

Differences from plain eth-tester
---------------------------------
* A new block carries the current time (``max(now, parent + 1)``), not the time
  the previous block was mined; a burst of blocks still runs up to one second a
  block ahead of the clock, because timestamps must strictly increase.
* Receipts and transactions are found through py-evm's ``tx hash`` index instead
  of a scan back from the head.
* ``eth_getLogs`` skips blocks whose header bloom rules out the filter.  Blocks
  that do match cost one receipt each, and a receipt recovers its sender with
  secp256k1: ~10 ms in eth-keys' pure-Python backend, far less with ``coincurve``.
* ``reset_to_genesis`` is refused.

The EVM is py-evm's ``PragueVM`` (no Osaka: ``CLZ`` is an invalid opcode), block gas
limit 30,029,122 and constant; contracts must be compiled for ``cancun`` or
``prague``.

Threads and processes
---------------------
One ``threading.RLock`` (:attr:`EmbeddedChain.lock`) serialises every web3 request
and every save, so a web server thread and a Celery worker thread in the same
process can share one chain.  A caller that needs several requests to be atomic
(for example "read nonce, sign, send" with a key that another thread also uses)
holds ``chain.lock`` around them; it is re-entrant.  Code that uses
``chain.tester`` or ``chain.backend`` directly must hold the lock too, and call
:meth:`EmbeddedChain.save` afterwards if it changed the chain.

Only one process may open a state file.  The opener takes an exclusive
``fcntl.flock`` on ``<file>.lock`` (which records its pid) and holds it until
:meth:`EmbeddedChain.close` or process exit; a second opener -- another process,
or a second ``EmbeddedChain`` in the same process -- gets :class:`StateFileLockedError`.
A child created by ``fork()`` (a prefork Celery pool) inherits the lock but must not
use the chain: every request and save checks the pid and refuses.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
import weakref
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Self

from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth.rlp.headers import BlockHeader
from eth_bloom import BloomFilter
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.serializers import serialize_transaction, serialize_transaction_receipt
from eth_tester.exceptions import TransactionNotFound
from eth_utils import encode_hex, is_checksum_address, keccak, to_canonical_address
from web3 import EthereumTesterProvider, Web3

__all__ = [
    "FORMAT_VERSION",
    "EmbeddedChain",
    "EmbeddedChainError",
    "SaveResult",
    "StateFileLockedError",
]

log = logging.getLogger(__name__)

FORMAT_NAME = "miliao-embedded-chain"
FORMAT_VERSION = 1
"""Bumped whenever the layout of the state file changes; other versions are refused."""

APPLICATION_ID = 0x4D4C4543  # "MLEC", in the SQLite header, so other SQLite files are told apart

TESTER_ACCOUNT_COUNT = 10
"""eth-tester's default accounts (private keys 1..10), each with 1,000,000 ether at genesis."""

_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

_ABANDONED_IN_CHILD: list[sqlite3.Connection] = []


class EmbeddedChainError(RuntimeError):
    """A state file cannot be opened, restored or saved; the message names the file."""

    def __init__(self, path: Path | str | None, problem: str) -> None:
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class StateFileLockedError(EmbeddedChainError):
    """Another ``EmbeddedChain`` (in this or another process) has the state file open."""


@dataclass(frozen=True)
class SaveResult:
    """What one :meth:`EmbeddedChain.save` did."""

    mode: str  # "incremental", "full" or "skipped" (no state file)
    keys_written: int
    keys_deleted: int
    head_number: int
    seconds: float


# --------------------------------------------------------------------------- #
# py-evm plumbing
# --------------------------------------------------------------------------- #


class _TrackingMemoryDB(MemoryDB):
    """py-evm's ``MemoryDB`` that remembers which keys changed since the last save.

    Every write reaches the store through ``__setitem__`` / ``__delitem__`` (the
    ``AtomicDB`` batches commit through them too), so nothing escapes the record.
    """

    def __init__(self, kv_store: dict[bytes, bytes] | None = None) -> None:
        super().__init__(kv_store)
        self.dirty: set[bytes] = set()

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.kv_store[key] = value
        self.dirty.add(key)

    def __delitem__(self, key: bytes) -> None:
        del self.kv_store[key]
        self.dirty.add(key)


class _PersistentPyEVMBackend(PyEVMBackend):
    """eth-tester's py-evm backend with three changes for a long-lived chain.

    * Block timestamps: py-evm stamps the pending header when the *previous* block
      is mined, so after an idle hour the next block would carry a time an hour
      old.  Before a transaction goes into an empty pending block (and before
      mining an empty one) its timestamp is moved up to ``max(now, parent + 1)``;
      it never moves back, so ``time_travel`` still works.
    * Transaction lookups by hash use py-evm's ``tx hash -> (block, index)`` index
      instead of eth-tester's scan back from the head, which costs one block read
      per block and grows with the chain.
    * ``reset_to_genesis`` is refused: it would swap in a fresh in-memory store and
      the state file would silently stop following the chain.
    """

    _ready = False

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
        if self._ready:
            raise EmbeddedChainError(
                None,
                "reset_to_genesis is not supported on a persistent embedded chain; "
                "close it and delete its state file to start over",
            )
        super().reset_to_genesis(*args, **kwargs)

    # -- timestamps ---------------------------------------------------------

    def _refresh_pending_timestamp(self) -> None:
        chain = self.chain
        header = chain.header
        if header.gas_used:  # the pending block already holds transactions
            return
        parent = chain.get_canonical_head()
        timestamp = max(header.timestamp, parent.timestamp + 1, int(time.time()))
        if timestamp != header.timestamp:
            chain.set_header_timestamp(timestamp)

    def send_raw_transaction(self, raw_transaction):
        self._refresh_pending_timestamp()
        return super().send_raw_transaction(raw_transaction)

    def send_signed_transaction(self, signed_transaction, block_number="latest"):
        self._refresh_pending_timestamp()
        return super().send_signed_transaction(signed_transaction, block_number)

    def send_transaction(self, transaction):
        self._refresh_pending_timestamp()
        return super().send_transaction(transaction)

    def mine_blocks(self, num_blocks=1, coinbase=b"\x00" * 20):
        self._refresh_pending_timestamp()
        return super().mine_blocks(num_blocks, coinbase)

    # -- transaction lookups ------------------------------------------------

    def _find_transaction(self, transaction_hash: bytes):
        chain = self.chain
        pending = chain.get_block()
        for index, transaction in enumerate(pending.transactions):
            if transaction.hash == transaction_hash:
                return pending, transaction, index
        try:
            block_number, index = chain.chaindb.get_transaction_index(transaction_hash)
        except EVMTransactionNotFound:
            block_number = None
        if block_number is not None and block_number < pending.number:
            block = chain.get_canonical_block_by_number(block_number)
            if index < len(block.transactions) and block.transactions[index].hash == transaction_hash:
                return block, block.transactions[index], index
        raise TransactionNotFound(
            f"No transaction found for transaction hash: {encode_hex(transaction_hash)}"
        )

    def get_transaction_by_hash(self, transaction_hash):
        block, transaction, index = self._find_transaction(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        return serialize_transaction(block, transaction, index, is_pending)

    def get_transaction_receipt(self, transaction_hash):
        block, transaction, index = self._find_transaction(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        receipts = block.get_receipts(self.chain.chaindb)
        return serialize_transaction_receipt(
            block, receipts, transaction, index, is_pending, self.chain.get_vm()
        )


class _BloomPrunedTester(EthereumTester):
    """``EthereumTester`` whose ``get_logs`` skips blocks that cannot hold a match.

    eth-tester builds every receipt of every block in the range, and each receipt
    recovers its transaction's sender (pure-Python secp256k1 unless ``coincurve``
    is installed: about 10 ms a transaction).  A block's header bloom says for sure
    when none of its logs has the wanted address or topics, so such blocks are
    skipped; the others go through eth-tester's own code, one block at a time, so
    the results are exactly eth-tester's.  Block tags other than ``latest`` and
    ranges past the head are left entirely to eth-tester.
    """

    def get_logs(self, from_block=None, to_block=None, address=None, topics=None):
        self.validator.validate_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        raw_from, raw_to, raw_address, raw_topics = self.normalizer.normalize_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        chain = self.backend.chain
        latest = chain.get_canonical_head().block_number
        bounds = []
        for raw in (raw_from, raw_to):
            if raw is None or raw == "latest":
                bounds.append(latest)
            elif isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= latest:
                bounds.append(raw)
            else:
                return super().get_logs(from_block, to_block, address, topics)
        wanted = _bloom_terms(raw_address, raw_topics)
        if wanted is None:  # a filter shape this code does not know: no pruning
            return super().get_logs(from_block, to_block, address, topics)
        found = []
        for number in range(bounds[0], bounds[1] + 1):
            bloom = chain.get_canonical_block_header_by_number(number).bloom
            if not bloom:
                continue  # no logs at all in this block
            bloom_filter = BloomFilter(bloom)
            if all(any(term in bloom_filter for term in group) for group in wanted):
                found.extend(super().get_logs(number, number, address, topics))
        return tuple(found)


def _bloom_terms(raw_address, raw_topics) -> list[tuple[bytes, ...]] | None:
    """Groups of values of which a matching block's bloom must hold at least one each,
    or ``None`` if the filter's shape is not understood."""
    groups: list[tuple[bytes, ...]] = []
    if raw_address is not None:
        addresses = raw_address if isinstance(raw_address, tuple) else (raw_address,)
        if not all(isinstance(a, bytes) for a in addresses):
            return None
        groups.append(addresses)
    if raw_topics is not None:
        if not isinstance(raw_topics, (tuple, list)):
            return None
        for position in raw_topics:
            options = position if isinstance(position, (tuple, list)) else (position,)
            if any(option is None for option in options):
                continue  # a wildcard at this position
            if not all(isinstance(option, bytes) for option in options):
                return None
            groups.append(tuple(options))
    return groups


class _LockedProvider(EthereumTesterProvider):
    """Runs each request under the chain's lock and, with autosave, saves new blocks."""

    def __init__(self, tester: EthereumTester, owner: EmbeddedChain) -> None:
        super().__init__(tester)
        self._owner = owner

    def make_request(self, method, params):
        owner = self._owner
        with owner.lock:
            owner._check_usable()
            chain = owner.backend.chain
            head_before = chain.header.parent_hash
            try:
                return super().make_request(method, params)
            finally:
                # Also after a failed request: a block may have been mined before it failed.
                if owner._autosave and owner.backend.chain.header.parent_hash != head_before:
                    owner.save()


class _Handles:
    """The open SQLite connection and lock descriptor of one chain.  Kept apart from
    the chain object so a ``weakref.finalize`` can release them when a chain that was
    never closed is garbage-collected (or at interpreter exit)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.conn: sqlite3.Connection | None = None
        self.lock_fd: int | None = None

    def release(self) -> None:
        if os.getpid() != self.pid:
            # A forked child shares the parent's SQLite file and lock: closing the
            # connection could checkpoint under the parent's feet, and LOCK_UN would
            # release the parent's lock.  Keep the connection referenced (so garbage
            # collection never closes it) and only drop this process's descriptor.
            if self.conn is not None:
                _ABANDONED_IN_CHILD.append(self.conn)
                self.conn = None
            if self.lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.lock_fd)
                self.lock_fd = None
            return
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()  # the last connection checkpoints and removes the WAL
            self.conn = None
        if self.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.lock_fd, 0)
                fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.close(self.lock_fd)
            self.lock_fd = None


# --------------------------------------------------------------------------- #
# The chain
# --------------------------------------------------------------------------- #


class EmbeddedChain:
    """An eth-tester/py-evm chain in this process whose state survives restarts.

    ``state_path``: the SQLite state file.  If it exists the chain is restored from
    it exactly (same head, blocks and hashes, code, storage, nonces, balances); a
    file that is corrupt, truncated, not a state file, of another format version or
    written by a different chain configuration raises :class:`EmbeddedChainError`
    and is left untouched -- a fresh chain is never started over it.  If it does not
    exist, a fresh genesis is created and saved there at once.  ``None``: in memory
    only, like plain eth-tester; :meth:`save` then does nothing.

    ``fund``: checksummed address -> wei that address must hold.  A fresh chain puts
    it in the genesis allocation; a restored chain tops up any address holding
    less with a transfer from eth-tester's first account (one block each).

    ``autosave`` (default on): every web3 request that adds a block saves before it
    returns.  Turn it off to save only when :meth:`save` is called.

    Use it as a context manager, or call :meth:`close`, to save and release the file.
    A chain dropped without ``close()`` releases the file when it is garbage-collected
    (it references itself through its provider, so that waits for the cycle collector)
    or at interpreter exit, without a final save.
    """

    def __init__(
        self,
        state_path: Path | str | None,
        *,
        fund: Mapping[str, int] | None = None,
        autosave: bool = True,
    ) -> None:
        self.state_path: Path | None = Path(state_path) if state_path is not None else None
        self.lock = threading.RLock()
        self._autosave = autosave
        self._pid = os.getpid()
        self._closed = False
        self._handles = _Handles(self._pid)
        weakref.finalize(self, self._handles.release)
        fund = dict(fund or {})
        for address, wei in fund.items():
            if not isinstance(address, str) or not is_checksum_address(address):
                raise ValueError(f"fund: {address!r} is not a checksummed address")
            if not isinstance(wei, int) or isinstance(wei, bool) or wei < 0:
                raise ValueError(f"fund: amount for {address} must be a non-negative int of wei")

        # eth-tester builds a throwaway in-memory genesis here; its chain *class* is
        # what we need (chain id, VM schedule), the chain object is replaced below.
        self.backend = _PersistentPyEVMBackend()
        self._chain_class = type(self.backend.chain)
        self._created_at: str | None = None

        try:
            if self.state_path is not None:
                self._acquire_file_lock()
                self._remove_stale_temp_files()
            if self.state_path is not None and self.state_path.exists():
                self._db, chain = self._restore()
            else:
                self._db = _TrackingMemoryDB()
                chain = self._chain_class.from_genesis(
                    AtomicDB(self._db),
                    PyEVMBackend.generate_genesis_params(),
                    self._genesis_state(fund),
                )
            self.backend.chain = chain
            self.backend._ready = True
            self.tester = _BloomPrunedTester(self.backend)
            self.web3 = Web3(_LockedProvider(self.tester, self))
            with self.lock:
                self._top_up(fund)
                if self.state_path is not None:
                    self.save(full=self._conn is None)
        except BaseException:
            self._release()
            raise

    # -- public API -----------------------------------------------------------

    @property
    def chain_id(self) -> int:
        """eth-tester's chain id, 131277322940537 (also what ``eth_chainId`` returns)."""
        return self._chain_class.chain_id

    @property
    def head_number(self) -> int:
        """Number of the newest mined block (web3's ``"latest"``)."""
        with self.lock:
            return self.backend.chain.get_canonical_head().block_number

    def save(self, *, full: bool = False) -> SaveResult:
        """Write what changed since the last save (or, ``full=True``, the whole
        store through a temporary file and ``os.replace``).  Atomic either way."""
        started = time.perf_counter()
        with self.lock:
            self._check_usable()
            head = self.backend.chain.get_canonical_head()
            if self.state_path is None:
                return SaveResult("skipped", 0, 0, head.block_number, 0.0)
            kv = self._db.kv_store
            meta = self._meta(head, key_count=len(kv))
            dirty = self._db.dirty
            if full or self._conn is None:
                rows = list(kv.items())
                dirty.clear()
                try:
                    self._write_full(rows, meta)
                except BaseException:
                    dirty.update(kv)  # nothing is known to be on disk; retry everything
                    raise
                return SaveResult("full", len(rows), 0, head.block_number, time.perf_counter() - started)
            if not dirty:  # nothing changed since the last save (every new block dirties keys)
                return SaveResult("incremental", 0, 0, head.block_number, time.perf_counter() - started)
            keys = list(dirty)
            dirty.clear()
            upserts = []
            deletes = []
            for key in keys:
                value = kv.get(key)
                if value is None:
                    deletes.append((key,))
                else:
                    value = bytes(value)
                    upserts.append((key, value, _crc(key, value)))
            try:
                self._write_incremental(upserts, deletes, meta)
            except BaseException:
                dirty.update(keys)
                raise
            return SaveResult(
                "incremental", len(upserts), len(deletes), head.block_number, time.perf_counter() - started
            )

    def close(self) -> None:
        """Save (if there is a state file), then release the file and its lock.
        The chain refuses further requests."""
        with self.lock:
            if self._closed:
                return
            try:
                if self.state_path is not None and os.getpid() == self._pid:
                    self.save()
            finally:
                self._closed = True
                self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<EmbeddedChain {self.state_path or 'in memory'} chain_id={self.chain_id}>"

    # -- genesis and funding ----------------------------------------------------

    def _genesis_state(self, fund: Mapping[str, int]) -> dict[bytes, dict[str, Any]]:
        state = dict(PyEVMBackend.generate_genesis_state(num_accounts=TESTER_ACCOUNT_COUNT))
        for address, wei in fund.items():
            raw = to_canonical_address(address)
            if raw in state:
                state[raw] = {**state[raw], "balance": max(state[raw]["balance"], wei)}
            else:
                state[raw] = {"balance": wei, "nonce": 0, "code": b"", "storage": {}}
        return state

    def _top_up(self, fund: Mapping[str, int]) -> None:
        if not fund:
            return
        payer = self.tester.get_accounts()[0]
        for address, wei in fund.items():
            balance = self.tester.get_balance(address)
            if balance >= wei:
                continue
            base_fee = self.backend.get_base_fee()
            self.tester.send_transaction(
                {
                    "from": payer,
                    "to": address,
                    "value": wei - balance,
                    "gas": 21000,
                    "max_fee_per_gas": 2 * base_fee + 10**9,
                    "max_priority_fee_per_gas": 10**9,
                }
            )
            log.info("embedded chain: topped up %s by %d wei", address, wei - balance)

    # -- file lock ----------------------------------------------------------------

    @property
    def _lock_path(self) -> Path:
        assert self.state_path is not None
        return self.state_path.with_name(self.state_path.name + ".lock")

    def _acquire_file_lock(self) -> None:
        path = self.state_path
        assert path is not None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EmbeddedChainError(path, f"cannot create lock file {self._lock_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 64, 0).decode("ascii").strip()
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f"process {holder}" if holder else "another process"
                if holder == str(os.getpid()):
                    who = "this process (another EmbeddedChain object; close() it first)"
                raise StateFileLockedError(
                    path,
                    f"already open by {who} (lock {self._lock_path}); only one process at a time "
                    "may open an embedded chain state file",
                ) from exc
            raise EmbeddedChainError(path, f"cannot lock {self._lock_path}: {exc}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock_fd = fd

    def _release(self) -> None:
        self._handles.release()

    @property
    def _conn(self) -> sqlite3.Connection | None:
        return self._handles.conn

    @_conn.setter
    def _conn(self, conn: sqlite3.Connection | None) -> None:
        self._handles.conn = conn

    @property
    def _lock_fd(self) -> int | None:
        return self._handles.lock_fd

    @_lock_fd.setter
    def _lock_fd(self, fd: int | None) -> None:
        self._handles.lock_fd = fd

    def _check_usable(self) -> None:
        if self._closed:
            raise EmbeddedChainError(self.state_path, "this embedded chain has been closed")
        if os.getpid() != self._pid:
            raise EmbeddedChainError(
                self.state_path,
                f"opened by process {self._pid} and used from forked process {os.getpid()}; "
                "only the process that opened an embedded chain may use it",
            )

    # -- writing ----------------------------------------------------------------

    def _meta(self, head: BlockHeader, *, key_count: int) -> dict[str, str]:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self._created_at is None:
            self._created_at = now
        return {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            **self._config(),
            "genesis_hash": encode_hex(self.backend.chain.get_canonical_block_hash(0)),
            "head_hash": encode_hex(head.hash),
            "head_number": str(head.block_number),
            "head_timestamp": str(head.timestamp),
            "key_count": str(key_count),
            "saved_at": now,
            "created_at": self._created_at,
            "py_evm_version": _version("py-evm"),
            "eth_tester_version": _version("eth-tester"),
        }

    def _config(self) -> dict[str, str]:
        """What a state file must match to be restored by this chain class."""
        forks = [
            [int(number), getattr(vm, "fork", vm.__name__)]
            for number, vm in self._chain_class.vm_configuration
        ]
        return {"chain_id": str(self._chain_class.chain_id), "forks": json.dumps(forks)}

    def _write_full(self, rows: list[tuple[bytes, bytes]], meta: dict[str, str]) -> None:
        path = self.state_path
        assert path is not None
        if self._conn is not None:
            self._conn.close()  # checkpoints and removes the WAL, so none is left beside the new file
            self._conn = None
        for suffix in _SQLITE_SIDE_FILES:  # stale side files would be applied to the new file
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=OFF")
                conn.execute("PRAGMA synchronous=OFF")  # fsynced explicitly below
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
                conn.execute("BEGIN")
                conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                conn.execute(
                    "CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL, crc INTEGER NOT NULL) WITHOUT ROWID"
                )
                conn.executemany(
                    "INSERT INTO kv (k, v, crc) VALUES (?, ?, ?)",
                    ((k, v, _crc(k, v)) for k, v in ((bytes(k), bytes(v)) for k, v in rows)),
                )
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
                conn.execute("COMMIT")
            finally:
                conn.close()
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if isinstance(exc, (OSError, sqlite3.Error)):
                raise EmbeddedChainError(path, f"could not write state file: {exc}") from exc
            raise
        _fsync_dir(path.parent)
        self._conn = self._connect_for_updates()

    def _connect_for_updates(self) -> sqlite3.Connection:
        assert self.state_path is not None
        conn = sqlite3.connect(
            f"file:{self.state_path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _write_incremental(self, upserts, deletes, meta: dict[str, str]) -> None:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if upserts:
                    conn.executemany("INSERT OR REPLACE INTO kv (k, v, crc) VALUES (?, ?, ?)", upserts)
                if deletes:
                    conn.executemany("DELETE FROM kv WHERE k = ?", deletes)
                conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items())
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise EmbeddedChainError(self.state_path, f"could not save: {exc}") from exc

    def _remove_stale_temp_files(self) -> None:
        # Left behind by a crash during a full save; we hold the lock, so nobody is writing them.
        path = self.state_path
        assert path is not None
        for stale in path.parent.glob(f".{path.name}.tmp-*"):
            with contextlib.suppress(OSError):
                stale.unlink()

    # -- restoring ----------------------------------------------------------------

    def _restore(self):
        path = self.state_path
        assert path is not None

        def bad(problem: str) -> EmbeddedChainError:
            return EmbeddedChainError(path, f"cannot restore the embedded chain: {problem}")

        if not path.is_file():
            raise bad("not a regular file")
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise bad(f"cannot open it as SQLite ({exc})") from exc
        try:
            try:
                app_id = conn.execute("PRAGMA application_id").fetchone()[0]
                user_version = conn.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise bad(
                    f"not a readable SQLite database: damaged, truncated or not SQLite at all ({exc})"
                ) from exc
            if app_id != APPLICATION_ID:
                raise bad(
                    f"not an embedded chain state file (SQLite application_id {app_id:#x}, "
                    f"expected {APPLICATION_ID:#x}; an empty or foreign file?)"
                )
            if user_version != FORMAT_VERSION:
                raise bad(f"format version {user_version}; this code reads version {FORMAT_VERSION}")
            try:
                check = [row[0] for row in conn.execute("PRAGMA quick_check")]
                if check != ["ok"]:
                    raise bad(f"SQLite integrity check failed: {'; '.join(check[:3])}")
                meta = dict(conn.execute("SELECT key, value FROM meta"))
                kv: dict[bytes, bytes] = {}
                for key, value, crc in conn.execute("SELECT k, v, crc FROM kv"):
                    if _crc(key, value) != crc:
                        raise bad(f"checksum mismatch in row {encode_hex(key)}")
                    kv[key] = value
            except sqlite3.DatabaseError as exc:
                raise bad(f"damaged or truncated ({exc})") from exc

            if meta.get("format") != FORMAT_NAME or meta.get("format_version") != str(FORMAT_VERSION):
                raise bad(f"meta says format {meta.get('format')!r} version {meta.get('format_version')!r}")
            expected = self._config()
            for key, want in expected.items():
                if meta.get(key) != want:
                    raise bad(
                        f"written by a different chain configuration: {key} is {meta.get(key)!r} in the "
                        f"file but {want!r} here (file written by py-evm {meta.get('py_evm_version')}, "
                        f"eth-tester {meta.get('eth_tester_version')})"
                    )
            if meta.get("key_count") != str(len(kv)):
                raise bad(f"holds {len(kv)} rows but its last save recorded {meta.get('key_count')}")

            db = _TrackingMemoryDB(kv)
            try:
                chain = self._chain_class(AtomicDB(db))
                head = chain.get_canonical_head()
                genesis_hash = chain.get_canonical_block_hash(0)
            except Exception as exc:  # py-evm raises a variety of lookup errors on a broken store
                raise bad(f"the stored chain is incomplete ({type(exc).__name__}: {exc})") from exc
            if encode_hex(head.hash) != meta.get("head_hash") or str(head.block_number) != meta.get(
                "head_number"
            ):
                raise bad(
                    f"canonical head is block {head.block_number} {encode_hex(head.hash)} but the last "
                    f"save recorded block {meta.get('head_number')} {meta.get('head_hash')}"
                )
            if encode_hex(genesis_hash) != meta.get("genesis_hash"):
                raise bad("genesis hash does not match the recorded one")
            if head.state_root not in kv:
                raise bad(f"state root {encode_hex(head.state_root)} of the head block is missing")
            if keccak(kv[head.hash]) != head.hash:
                raise bad("head header does not hash to its key")
        except BaseException:
            conn.close()
            raise

        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            conn.close()
            raise EmbeddedChainError(path, f"cannot open for writing: {exc}") from exc
        self._conn = conn
        self._created_at = meta.get("created_at")
        log.info("embedded chain restored from %s at block %d", path, head.block_number)
        return db, chain


def _crc(key: bytes, value: bytes) -> int:
    return zlib.crc32(value, zlib.crc32(key))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
