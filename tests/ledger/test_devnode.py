"""ledger.devnode runs anvil as a real process whose chain survives a clean restart."""

import signal

import pytest
from ledger_chain_support import random_root, rpc_chain

from ledger import devnode
from ledger.devnode import Anvil, AnvilError

pytestmark = pytest.mark.ledger

ZERO = bytes(32)


def test_registry_survives_sigterm_and_restart_on_the_same_state_file(tmp_path):
    state = tmp_path / "chain" / "state.json"
    node = Anvil()
    try:
        node.start(state_path=state)
        chain = rpc_chain(node.url)
        assert chain.w3.eth.chain_id == node.chain_id == 31337
        owner = chain.new_account()
        registry, _ = chain.deploy_registry(owner)
        root = random_root()
        chain.transact(owner, registry.functions.anchor(root, 1, 42, ZERO))
        before = registry.functions.anchorAt(0).call()
        height = chain.w3.eth.block_number

        assert node.stop(signal.SIGTERM) == 0
        assert state.is_file()  # written on the way out

        node.start(state_path=state)
        chain = rpc_chain(node.url)
        registry = chain.w3.eth.contract(address=registry.address, abi=registry.abi)
        assert chain.w3.eth.block_number == height
        assert registry.functions.anchorAt(0).call() == before
        assert registry.functions.anchorOfRoot(root).call() == [0, before]
        # The restarted chain goes on from where it stopped, nonces included.
        receipt = chain.transact(owner, registry.functions.anchor(random_root(), 43, 50, root))
        assert receipt.status == 1
        assert registry.functions.lastSeq().call() == 50
    finally:
        node.close()


def test_sigkill_loses_what_happened_since_the_last_start(tmp_path):
    state = tmp_path / "state.json"
    node = Anvil()
    try:
        node.start(state_path=state)
        chain = rpc_chain(node.url)
        chain.new_account()
        assert chain.w3.eth.block_number == 1
        node.kill()
        assert not state.exists()  # a crash writes nothing

        node.start(state_path=state)
        assert rpc_chain(node.url).w3.eth.block_number == 0
    finally:
        node.close()


def test_start_refuses_a_second_start_and_reports_a_failed_one():
    with Anvil() as node:
        with pytest.raises(AnvilError, match="already running"):
            node.start()
        # A port that is taken: this anvil exits, and the error carries its log, even
        # though the node already there answers on that port.
        late = Anvil()
        with pytest.raises(AnvilError, match="Address already in use"):
            late.start(port=node.port)
        late.close()


def test_missing_binary_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(devnode, "_NPM_BINARY", tmp_path / "no-anvil")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AnvilError, match=r"npm ci --prefix ledger/contracts"):
        devnode.anvil_binary()
