"""The persistent embedded chain (ledger/embedded.py): state survives a restart.

The contract used throughout is hand-written EVM bytecode, so nothing is compiled:
a call with a 32-byte argument stores it in slot 0, stores block.timestamp in
slot 1 and logs the value under TOPIC; a call without data returns slot 0.
Restores are checked in a fresh Python process, as a restarted demo would do it.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from eth_account import Account
from eth_tester.backends.pyevm.main import PyEVMBackend
from eth_utils import keccak
from web3.exceptions import TransactionNotFound

from ledger.embedded import (
    FORMAT_VERSION,
    EmbeddedChain,
    EmbeddedChainError,
    StateFileLockedError,
)

pytestmark = pytest.mark.ledger

REPO = Path(__file__).resolve().parents[2]
TESTER_CHAIN_ID = 131277322940537
TOPIC = bytes(range(32))
PLATFORM = Account.from_key(b"\x42" * 32)
WORKER = Account.from_key(b"\x43" * 32)


def runtime_code(topic: bytes = TOPIC) -> bytes:
    store = (
        bytes.fromhex(
            "600035 80 6000 55 42 6001 55 6000 52".replace(" ", "")
        )  # slot0 = arg; slot1 = TIMESTAMP
        + b"\x7f"
        + topic
        + bytes.fromhex("6020 6000 a1 00".replace(" ", ""))  # LOG1(mem[0:32], TOPIC); STOP
    )
    read = bytes.fromhex("5b 600054 600052 6020 6000 f3".replace(" ", ""))  # return slot0
    head = bytes.fromhex("3615") + bytes([0x60, 5 + len(store), 0x57])  # no calldata -> jump to read
    return head + store + read


def init_code(topic: bytes = TOPIC) -> bytes:
    runtime = runtime_code(topic)
    n = len(runtime)
    # CODECOPY(0, 12, n); RETURN(0, n)
    return bytes([0x60, n, 0x60, 12, 0x60, 0, 0x39, 0x60, n, 0x60, 0, 0xF3]) + runtime


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def send(chain: EmbeddedChain, account, *, to=None, data=b"", value=0):
    """Sign locally and send raw, the way the platform does: EIP-1559 fields, estimated gas."""
    w3 = chain.web3
    base_fee = w3.eth.get_block("latest")["baseFeePerGas"]
    tx = {
        "type": 2,
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(account.address),
        "maxFeePerGas": 2 * base_fee + w3.eth.max_priority_fee,
        "maxPriorityFeePerGas": w3.eth.max_priority_fee,
        "value": value,
        "data": data,
    }
    if to is not None:
        tx["to"] = to
    tx["gas"] = w3.eth.estimate_gas({**tx, "from": account.address})
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt.status == 1, receipt
    return receipt


def deploy(chain: EmbeddedChain, account=PLATFORM) -> str:
    return send(chain, account, data=init_code()).contractAddress


READ_BACK = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from ledger.embedded import EmbeddedChain
    path, contract, account, tx_hash, extra = sys.argv[1:6]
    chain = EmbeddedChain(Path(path))
    w3 = chain.web3
    head = w3.eth.get_block("latest")
    out = {
        "chain_id": w3.eth.chain_id,
        "head_number": head.number,
        "head_hash": head.hash.hex(),
        "hashes": [w3.eth.get_block(n).hash.hex() for n in range(head.number + 1)],
        "slot0": w3.eth.get_storage_at(contract, 0).hex(),
        "call": w3.eth.call({"to": contract}).hex(),
        "code": w3.eth.get_code(contract).hex(),
        "nonce": w3.eth.get_transaction_count(account),
        "balance": w3.eth.get_balance(account),
        "receipt_block": w3.eth.get_transaction_receipt(tx_hash).blockNumber,
        "logs": len(w3.eth.get_logs({"address": contract, "fromBlock": 0})),
    }
    if extra == "continue":
        # Keep going on the restored chain: one more store, in a new block, then close.
        from eth_account import Account
        key = Account.from_key(b"\\x42" * 32)
        tx = {"type": 2, "chainId": w3.eth.chain_id, "nonce": w3.eth.get_transaction_count(key.address),
              "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "gas": 100000,
              "to": contract, "data": (777).to_bytes(32, "big")}
        h = w3.eth.send_raw_transaction(key.sign_transaction(tx).raw_transaction)
        out["continued_status"] = w3.eth.get_transaction_receipt(h).status
        out["continued_head"] = w3.eth.block_number
    chain.close()
    print(json.dumps(out))
    """
)


def run_python(*args: str, script: str = READ_BACK, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def snapshot(chain: EmbeddedChain, contract: str, account: str) -> dict:
    w3 = chain.web3
    head = w3.eth.get_block("latest")
    return {
        "chain_id": w3.eth.chain_id,
        "head_number": head.number,
        "head_hash": head.hash.hex(),
        "hashes": [w3.eth.get_block(n).hash.hex() for n in range(head.number + 1)],
        "slot0": w3.eth.get_storage_at(contract, 0).hex(),
        "call": w3.eth.call({"to": contract}).hex(),
        "code": w3.eth.get_code(contract).hex(),
        "nonce": w3.eth.get_transaction_count(account),
        "balance": w3.eth.get_balance(account),
    }


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "chain" / "state.sqlite"


# --------------------------------------------------------------------------- #


def test_fresh_chain_is_funded_and_saved_at_once(state):
    with EmbeddedChain(state, fund={PLATFORM.address: 5 * 10**18}) as chain:
        assert chain.chain_id == TESTER_CHAIN_ID == chain.web3.eth.chain_id
        assert chain.web3.eth.get_balance(PLATFORM.address) == 5 * 10**18
        assert chain.web3.eth.block_number == 0  # genesis alloc, no transfer block
        assert len(chain.web3.eth.accounts) == 10  # eth-tester's own accounts are still there
        assert state.exists() and state.with_name("state.sqlite.lock").exists()
        with closing(sqlite3.connect(state)) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
            meta = dict(db.execute("SELECT key, value FROM meta"))
        assert meta["chain_id"] == str(TESTER_CHAIN_ID) and meta["head_number"] == "0"
        assert json.loads(meta["forks"]) == [[0, "prague"]]


def test_fund_validates_addresses(state):
    with pytest.raises(ValueError, match="checksummed"):
        EmbeddedChain(None, fund={PLATFORM.address.lower(): 1})
    with pytest.raises(ValueError, match="non-negative"):
        EmbeddedChain(None, fund={PLATFORM.address: -1})


def test_fund_tops_up_a_restored_chain_only_when_short(state):
    with EmbeddedChain(state, fund={PLATFORM.address: 10**18}):
        pass
    with EmbeddedChain(state, fund={PLATFORM.address: 10**17, WORKER.address: 3 * 10**18}) as chain:
        assert chain.web3.eth.get_balance(PLATFORM.address) == 10**18  # already enough: untouched
        assert chain.web3.eth.get_balance(WORKER.address) == 3 * 10**18
        assert chain.web3.eth.block_number == 1  # one transfer block for WORKER
        send(chain, WORKER, to=PLATFORM.address, value=1)  # the funded key can pay gas
    with EmbeddedChain(state) as chain:
        assert chain.web3.eth.get_balance(PLATFORM.address) == 10**18 + 1


def test_locally_signed_transactions_calls_logs_and_timestamps(state):
    with EmbeddedChain(state, fund={PLATFORM.address: 10**18}) as chain:
        w3 = chain.web3
        before = int(time.time())
        receipt = send(chain, PLATFORM, data=init_code())
        contract = receipt.contractAddress
        assert receipt.type == 2 and w3.eth.get_code(contract) == runtime_code()
        stored = send(chain, PLATFORM, to=contract, data=word(1234))
        assert w3.eth.call({"to": contract}) == word(1234)
        assert w3.eth.get_storage_at(contract, 0) == word(1234)

        # Logs, by address and topic, and a filter that matches nothing.
        logs = w3.eth.get_logs({"address": contract, "fromBlock": 0, "topics": ["0x" + TOPIC.hex()]})
        assert [(log.blockNumber, log.data) for log in logs] == [(stored.blockNumber, word(1234))]
        assert w3.eth.get_logs({"address": contract, "fromBlock": 0, "topics": ["0x" + "ff" * 32]}) == []
        assert w3.eth.get_logs({"address": PLATFORM.address, "fromBlock": 0}) == []

        # Timestamps: strictly increasing, not behind the wall clock, and the
        # contract saw the timestamp of the block it ran in.
        blocks = [w3.eth.get_block(n) for n in range(w3.eth.block_number + 1)]
        stamps = [b.timestamp for b in blocks]
        assert stamps == sorted(set(stamps))
        assert before - 5 <= stamps[-1] <= int(time.time()) + len(stamps)
        assert (
            int.from_bytes(w3.eth.get_storage_at(contract, 1), "big") == blocks[stored.blockNumber].timestamp
        )

        # A reverting eth_call is reported (REVERT(0, 0) as creation code).
        with pytest.raises(Exception, match="revert"):
            w3.eth.call({"from": PLATFORM.address, "data": "0x5f5ffd"})


def test_block_after_an_idle_period_carries_the_current_time(state, monkeypatch):
    with EmbeddedChain(state, fund={PLATFORM.address: 10**18}) as chain:
        contract = deploy(chain)
        later = time.time() + 3600
        monkeypatch.setattr(time, "time", lambda: later)
        receipt = send(chain, PLATFORM, to=contract, data=word(1))
        block = chain.web3.eth.get_block(receipt.blockNumber)
        # Stock eth-tester would stamp it with the time the previous block was mined.
        assert block.timestamp >= int(later)
        assert int.from_bytes(chain.web3.eth.get_storage_at(contract, 1), "big") == block.timestamp


def test_restore_in_a_new_process_then_continue_and_restore_again(state):
    with EmbeddedChain(state, fund={PLATFORM.address: 10**18}) as chain:
        deployed = send(chain, PLATFORM, data=init_code())
        contract = deployed.contractAddress
        send(chain, PLATFORM, to=contract, data=word(42))
        send(chain, PLATFORM, to=WORKER.address, value=12345)
        chain.web3.eth.send_transaction(  # eth-tester's own account, too
            {"from": chain.web3.eth.accounts[1], "to": WORKER.address, "value": 5}
        )
        before = snapshot(chain, contract, PLATFORM.address)
        worker_balance = chain.web3.eth.get_balance(WORKER.address)
    assert before["head_number"] == 4 and before["nonce"] == 3

    out = json.loads(
        run_python(str(state), contract, PLATFORM.address, deployed.transactionHash.hex(), "-").stdout
    )
    assert {k: out[k] for k in before} == before
    assert out["slot0"].endswith(f"{42:064x}") and out["receipt_block"] == deployed.blockNumber
    assert out["logs"] == 1

    # The restarted process keeps adding blocks and saves; a third process sees them.
    out = json.loads(
        run_python(str(state), contract, PLATFORM.address, deployed.transactionHash.hex(), "continue").stdout
    )
    assert out["continued_status"] == 1 and out["continued_head"] == 5
    with EmbeddedChain(state) as chain:
        after = snapshot(chain, contract, PLATFORM.address)
        assert after["hashes"][:5] == before["hashes"]  # history unchanged
        assert after["head_number"] == 5 and after["nonce"] == 4
        assert chain.web3.eth.call({"to": contract}) == word(777)
        assert chain.web3.eth.get_balance(WORKER.address) == worker_balance
        send(chain, PLATFORM, to=contract, data=word(778))  # and still usable here
        assert len(chain.web3.eth.get_logs({"address": contract, "fromBlock": 0})) == 3


def test_a_killed_process_keeps_every_block_it_reported(state):
    """With autosave, a block is on disk before send_raw_transaction returns."""
    script = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from eth_account import Account
        from ledger.embedded import EmbeddedChain
        key = Account.from_key(b"\\x42" * 32)
        chain = EmbeddedChain(Path(sys.argv[1]), fund={key.address: 10**18})
        w3 = chain.web3
        for nonce in range(3):
            tx = {"type": 2, "chainId": chain.chain_id, "nonce": nonce, "maxFeePerGas": 10**10,
                  "maxPriorityFeePerGas": 10**9, "gas": 21000, "to": "0x" + "00" * 19 + "01", "value": 1}
            w3.eth.send_raw_transaction(key.sign_transaction(tx).raw_transaction)
        print(w3.eth.get_block("latest").hash.hex(), flush=True)
        os._exit(0)  # no close(), no final save, lock file left behind
        """
    )
    head_hash = run_python(str(state), script=script).stdout.strip()
    with EmbeddedChain(state) as chain:
        assert chain.web3.eth.block_number == 3
        assert chain.web3.eth.get_block("latest").hash.hex() == head_hash
        assert chain.web3.eth.get_transaction_count(PLATFORM.address) == 3


def test_saves_are_incremental(state):
    with EmbeddedChain(state, fund={PLATFORM.address: 10**18}, autosave=False) as chain:
        contract = deploy(chain)
        chain.save()
        results = []
        for i in range(30):
            send(chain, PLATFORM, to=contract, data=word(i))
            results.append(chain.save())
        assert {r.mode for r in results} == {"incremental"}
        assert [r.head_number for r in results] == list(range(2, 32))
        # Each block changes a few dozen keys at most, however long the chain is.
        assert max(r.keys_written for r in results) < 60
        assert chain.save().keys_written == 0  # nothing new
        full = chain.save(full=True)
        assert full.mode == "full" and full.keys_written > 20 * max(r.keys_written for r in results)
        send(chain, PLATFORM, to=contract, data=word(99))
    with EmbeddedChain(state) as chain:  # close() saved the last block
        assert chain.web3.eth.call({"to": contract}) == word(99)


def test_without_autosave_unsaved_blocks_are_not_on_disk(state):
    chain = EmbeddedChain(state, fund={PLATFORM.address: 10**18}, autosave=False)
    contract = deploy(chain)
    chain.save()
    send(chain, PLATFORM, to=contract, data=word(5))
    # Simulate a crash: drop the lock without saving.
    chain._closed = True
    chain._release()
    with EmbeddedChain(state) as restored:
        assert restored.web3.eth.block_number == 1
        assert restored.web3.eth.call({"to": contract}) == word(0)


def test_a_failed_full_save_leaves_the_old_file_and_is_retried(state, monkeypatch):
    with EmbeddedChain(state, fund={PLATFORM.address: 10**18}, autosave=False) as chain:
        contract = deploy(chain)
        chain.save()
        send(chain, PLATFORM, to=contract, data=word(8))

        def boom(src, dst):
            raise OSError("disk full (simulated)")

        with monkeypatch.context() as m:
            m.setattr(os, "replace", boom)
            with pytest.raises(EmbeddedChainError, match="disk full"):
                chain.save(full=True)
        with closing(sqlite3.connect(state)) as db:  # still the previous save, intact
            assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            assert db.execute("SELECT value FROM meta WHERE key = 'head_number'").fetchone()[0] == "1"
        assert not list(state.parent.glob(".state.sqlite.tmp-*"))
        chain.save()  # everything is still marked unsaved, and goes out now
    with EmbeddedChain(state) as chain:
        assert chain.web3.eth.call({"to": contract}) == word(8)


# --------------------------------------------------------------------------- #
# Files that must not be restored


def _saved_chain(state: Path) -> str:
    with EmbeddedChain(state, fund={PLATFORM.address: 10**18}) as chain:
        contract = deploy(chain)
        for i in range(3):
            send(chain, PLATFORM, to=contract, data=word(i))
    return contract


def _sql(state: Path, *statements: str) -> None:
    with closing(sqlite3.connect(state)) as db, db:
        for statement in statements:
            db.execute(statement)


CORRUPTIONS = {
    "garbage": (lambda p: p.write_bytes(os.urandom(8192)), "not a readable SQLite database"),
    "empty file": (lambda p: p.write_bytes(b""), "not an embedded chain state file"),
    "truncated to 100 bytes": (
        lambda p: p.write_bytes(p.read_bytes()[:100]),
        "not a readable SQLite database",
    ),
    "truncated to half": (
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        "damaged, truncated|integrity",
    ),
    "foreign sqlite": (
        lambda p: (p.unlink(), _sql(p, "CREATE TABLE t (x)")),
        "not an embedded chain state file",
    ),
    "newer format": (lambda p: _sql(p, "PRAGMA user_version = 99"), "format version 99"),
    "other chain id": (
        lambda p: _sql(p, "UPDATE meta SET value = '1' WHERE key = 'chain_id'"),
        "different chain configuration: chain_id",
    ),
    "other fork schedule": (
        lambda p: _sql(p, """UPDATE meta SET value = '[[0, "cancun"]]' WHERE key = 'forks'"""),
        "different chain configuration: forks",
    ),
    "altered value": (
        lambda p: _sql(p, "UPDATE kv SET v = CAST(v || x'00' AS BLOB) WHERE k = (SELECT min(k) FROM kv)"),
        "checksum mismatch",
    ),
    "lost row": (
        lambda p: _sql(p, "DELETE FROM kv WHERE k = (SELECT k FROM kv ORDER BY k DESC LIMIT 1)"),
        "rows but its last save recorded",
    ),
    "head moved": (
        lambda p: _sql(p, "UPDATE meta SET value = '99' WHERE key = 'head_number'"),
        "canonical head is block 4",
    ),
}


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_damaged_or_foreign_files_are_refused_and_left_alone(state, damage):
    _saved_chain(state)
    corrupt, message = CORRUPTIONS[damage]
    corrupt(state)
    damaged = state.read_bytes()
    with pytest.raises(EmbeddedChainError, match=message) as raised:
        EmbeddedChain(state, fund={PLATFORM.address: 10**18})
    assert str(state) in str(raised.value)
    assert state.read_bytes() == damaged  # never replaced by a fresh chain
    with pytest.raises(EmbeddedChainError):  # and the refusal is not a one-off
        EmbeddedChain(state)


def test_a_refused_file_does_not_keep_the_lock(state):
    state.parent.mkdir(parents=True)
    state.write_bytes(b"not a chain")
    with pytest.raises(EmbeddedChainError):
        EmbeddedChain(state)
    state.unlink()
    with EmbeddedChain(state):  # the failed attempt released the lock
        pass


# --------------------------------------------------------------------------- #
# One process per file, threads within it


def test_second_opener_in_this_process_is_refused(state):
    with EmbeddedChain(state), pytest.raises(StateFileLockedError, match="already open by this process"):
        EmbeddedChain(state)
    with EmbeddedChain(state):  # free again after close
        pass


def test_a_dropped_chain_releases_its_file_when_collected(state):
    import gc

    chain = EmbeddedChain(state)
    web3 = chain.web3
    del chain
    with pytest.raises(StateFileLockedError):  # still referenced through web3
        EmbeddedChain(state)
    del web3
    gc.collect()
    with EmbeddedChain(state):
        pass


def test_second_opener_in_another_process_is_refused(state):
    with EmbeddedChain(state):
        result = run_python(
            str(state),
            script=(
                "import sys\nfrom pathlib import Path\nfrom ledger.embedded import EmbeddedChain\n"
                "EmbeddedChain(Path(sys.argv[1]))\n"
            ),
            check=False,
        )
    assert result.returncode != 0
    assert "StateFileLockedError" in result.stderr
    assert f"already open by process {os.getpid()}" in result.stderr
    assert "only one process" in result.stderr


def test_a_forked_child_may_not_use_the_chain(state):
    with EmbeddedChain(state) as chain:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                _ = chain.web3.eth.block_number
            except EmbeddedChainError as exc:
                code = 0 if "forked process" in str(exc) else 2
            except BaseException:  # noqa: BLE001 - any other failure is reported by exit code
                code = 3
            chain.close()  # must neither save nor release the parent's lock
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert chain.web3.eth.block_number == 0  # the parent is unaffected
        assert chain.save().mode == "incremental"
        with pytest.raises(StateFileLockedError):
            EmbeddedChain(state)


def test_web_and_worker_threads_share_one_chain(state):
    with EmbeddedChain(state, fund={PLATFORM.address: 10**18, WORKER.address: 10**18}) as chain:
        contract = deploy(chain)
        errors = []

        def work(account, values):
            try:
                for value in values:
                    with chain.lock:  # read nonce + sign + send as one step
                        send(chain, account, to=contract, data=word(value))
                    chain.web3.eth.get_logs({"address": contract, "fromBlock": "latest"})
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        def saver(stop):
            while not stop.is_set():
                try:
                    chain.save()
                except BaseException as exc:  # noqa: BLE001
                    errors.append(exc)

        stop = threading.Event()
        threads = [
            threading.Thread(target=work, args=(PLATFORM, range(100, 115))),
            threading.Thread(target=work, args=(WORKER, range(200, 215))),
        ]
        save_thread = threading.Thread(target=saver, args=(stop,))
        for t in [*threads, save_thread]:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        save_thread.join()
        assert errors == []
        assert chain.web3.eth.block_number == 31
        expected = snapshot(chain, contract, WORKER.address)
    with EmbeddedChain(state) as chain:
        assert snapshot(chain, contract, WORKER.address) == expected
        assert chain.web3.eth.get_transaction_count(PLATFORM.address) == 16


# --------------------------------------------------------------------------- #
# Smaller guarantees


def test_receipts_found_through_the_index_match_eth_testers_scan(state):
    with EmbeddedChain(state, fund={PLATFORM.address: 10**18}) as chain:
        contract = deploy(chain)
        hashes = [send(chain, PLATFORM, to=contract, data=word(i)).transactionHash for i in range(5)]
        for tx_hash in hashes:
            ours = chain.backend.get_transaction_receipt(bytes(tx_hash))
            stock = PyEVMBackend.get_transaction_receipt(chain.backend, bytes(tx_hash))
            assert ours == stock
            assert chain.backend.get_transaction_by_hash(
                bytes(tx_hash)
            ) == PyEVMBackend.get_transaction_by_hash(chain.backend, bytes(tx_hash))
        with pytest.raises(TransactionNotFound):
            chain.web3.eth.get_transaction_receipt("0x" + "ab" * 32)


def test_log_queries_skip_blocks_by_bloom_with_eth_testers_results(state):
    from eth_tester import EthereumTester

    other_topic = b"\xee" * 32
    with EmbeddedChain(state, fund={PLATFORM.address: 10**18}) as chain:
        a = deploy(chain)
        b = send(chain, PLATFORM, data=init_code(other_topic)).contractAddress
        for i in range(4):
            send(chain, PLATFORM, to=a, data=word(i))
            send(chain, PLATFORM, to=WORKER.address, value=1)  # a block without logs
            send(chain, PLATFORM, to=b, data=word(100 + i))
        head = chain.web3.eth.block_number
        t1, t2 = "0x" + TOPIC.hex(), "0x" + other_topic.hex()
        filters = [
            {},
            {"from_block": 0},
            {"from_block": 0, "to_block": head},
            {"from_block": 3, "to_block": 7},
            {"from_block": 0, "address": a},
            {"from_block": 0, "address": [a, b]},
            {"from_block": 0, "address": [WORKER.address]},
            {"from_block": 0, "topics": [t2]},
            {"from_block": 0, "topics": [[t1, t2]]},
            {"from_block": 0, "topics": [None]},
            {"from_block": 0, "topics": [t1, None]},
            {"from_block": 0, "topics": ["0x" + "ab" * 32]},
            {"from_block": 0, "address": b, "topics": [t1]},
            {"from_block": "earliest"},
        ]
        for kwargs in filters:
            ours = chain.tester.get_logs(**kwargs)
            stock = EthereumTester.get_logs(chain.tester, **kwargs)
            assert ours == stock, kwargs
        assert len(chain.tester.get_logs(from_block=0, address=[a, b])) == 8


def test_evm_runs_shanghai_and_cancun_opcodes_but_not_osaka(state):
    """Contracts for this chain must be compiled with evmVersion cancun or prague:
    py-evm's newest fork is Prague, and solc >= 0.8.31 defaults to osaka."""
    programs = {
        "PUSH0": "5f5ff3",
        "TSTORE/TLOAD": "600760015d60015c5f5260205ff3",
        "MCOPY": "602060005f5e60205ff3",
        "BLOBBASEFEE": "4a5f5260205ff3",
    }
    chain = EmbeddedChain(None)
    sender = chain.web3.eth.accounts[0]
    for code in programs.values():
        chain.web3.eth.call({"from": sender, "data": "0x" + code})  # raises if the opcode is unknown
    with pytest.raises(Exception, match="Invalid opcode 0x1e"):  # CLZ (EIP-7939, osaka)
        chain.web3.eth.call({"from": sender, "data": "0x60011e5f5260205ff3"})
    chain.close()


def test_in_memory_chain_and_refused_operations(state):
    chain = EmbeddedChain(None)
    assert chain.save().mode == "skipped"
    with pytest.raises(EmbeddedChainError, match="reset_to_genesis"):
        chain.tester.reset_to_genesis()
    chain.close()
    with pytest.raises(EmbeddedChainError, match="closed"):
        _ = chain.web3.eth.block_number


def test_state_file_is_plain_sqlite_readable_without_this_code(state):
    contract = _saved_chain(state)
    copy = state.with_name("copy.sqlite")
    shutil.copy(state, copy)
    with closing(sqlite3.connect(copy)) as db:
        (count,) = db.execute("SELECT count(*) FROM kv").fetchone()
        meta = dict(db.execute("SELECT key, value FROM meta"))
        # The contract's code is stored under its keccak hash, as py-evm keeps it.
        (code,) = db.execute("SELECT v FROM kv WHERE k = ?", (keccak(runtime_code()),)).fetchone()
    assert code == runtime_code()
    assert int(meta["key_count"]) == count and meta["head_number"] == "4"
    assert contract
