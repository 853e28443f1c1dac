"""A client for the ProvenanceRegistry contract, over any web3 connection.

Plain Python (no Django): the platform's anchoring service, the benchmark and
the tests use it alike. Transactions are signed locally by the anchoring
account and sent raw, so the node never holds a key; this works the same on
anvil and on any other JSON-RPC node.
"""
from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass

import requests
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3Exception

from .contracts import decode_registry_error, registry_abi, registry_bytecode

__all__ = [
    "ChainUnavailable",
    "OnChainAnchor",
    "Registry",
    "RegistryError",
    "Reverted",
]

GAS_HEADROOM = 1.25
"""Estimates are exact for the state they ran on; a little room covers a new block."""


class RegistryError(Exception):
    """Something about the registry or the chain is not as the platform expects."""


class ChainUnavailable(RegistryError):
    """The chain node cannot be reached (down, restarting, or the network)."""


class Reverted(RegistryError):
    """The contract refused a call; ``name`` and ``args`` are its custom error."""

    def __init__(self, name: str, args: tuple):
        self.name = name
        self.args_ = args
        super().__init__(f"{name}{args}")


@dataclass(frozen=True)
class OnChainAnchor:
    index: int
    root: str  # hex, no 0x
    prev_root: str
    first_seq: int
    last_seq: int
    block_number: int
    timestamp: int
    writer: str


@dataclass(frozen=True)
class AnchorTx:
    tx_hash: str
    block_number: int
    block_hash: str


_REVERTS = (ContractCustomError, ContractLogicError)

class _RpcError(Exception):
    def __init__(self, data):
        super().__init__(data)
        self.data = data


@functools.cache
def _signatures() -> dict[str, tuple[bytes, list[str], list[str]]]:
    """Selector, input types and output types of each function, from the ABI."""

    def kind(param: dict) -> str:
        if param["type"].startswith("tuple"):
            return "(" + ",".join(kind(c) for c in param["components"]) + ")" + param["type"][5:]
        return param["type"]

    table = {}
    for item in registry_abi():
        if item.get("type") == "function":
            ins = [kind(p) for p in item["inputs"]]
            selector = keccak(text=f"{item['name']}({','.join(ins)})")[:4]
            table[item["name"]] = (selector, ins, [kind(p) for p in item["outputs"]])
    return table


_UNREACHABLE = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError, OSError)


@contextlib.contextmanager
def _rpc() -> Iterator[None]:
    """Turn "the node is not there" into one exception the caller can back off on."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise ChainUnavailable(f"the chain node cannot be reached: {exc}") from exc


def _b32(hex_root: str) -> bytes:
    raw = bytes.fromhex(hex_root.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"a root is 32 bytes of hex, got {len(raw)} bytes")
    return raw


class Registry:
    """One deployed registry, read and written through ``web3``."""

    def __init__(self, web3: Web3, address: str):
        self.web3 = web3
        self.address = to_checksum_address(address)
        self.contract = web3.eth.contract(address=self.address, abi=registry_abi())

    # ---- deployment and administration -------------------------------------

    @classmethod
    def deploy(cls, web3: Web3, account, *, timeout: float = 60) -> tuple["Registry", AnchorTx]:
        """Deploy a new registry; ``account`` becomes its owner and first writer."""
        factory = web3.eth.contract(abi=registry_abi(), bytecode=registry_bytecode())
        with _rpc():
            tx = factory.constructor().build_transaction(cls._tx_defaults(web3, account))
            tx_hash = cls._send(web3, account, tx)
            receipt = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=0.05)
        if receipt["status"] != 1 or not receipt.get("contractAddress"):
            raise RegistryError(f"deploying the registry failed in tx {tx_hash}")
        registry = cls(web3, receipt["contractAddress"])
        return registry, AnchorTx(tx_hash, receipt["blockNumber"], receipt["blockHash"].to_0x_hex())

    def check_deployed(self) -> None:
        with _rpc():
            code = self.web3.eth.get_code(self.address)
        if not code or code == b"":
            raise RegistryError(
                f"there is no contract at {self.address} on chain {self.web3.eth.chain_id}; "
                "set CHAIN_REGISTRY_ADDRESS to the deployed registry"
            )

    def add_writer(self, account, writer: str) -> str:
        return self._transact(account, self.contract.functions.addWriter(to_checksum_address(writer)))

    def is_writer(self, address: str) -> bool:
        return self._call(self.contract.functions.isWriter(to_checksum_address(address)))

    # ---- anchoring ---------------------------------------------------------

    def send_anchor(
        self, account, *, root: str, first_seq: int, last_seq: int, prev_root: str, nonce: int | None = None
    ) -> tuple[str, int]:
        """Send anchor(); returns (tx hash, nonce) without waiting for it to be mined.

        Gas is estimated first, so a call the contract would refuse raises
        :class:`Reverted` naming the rule instead of burning gas.
        """
        fn = self.contract.functions.anchor(_b32(root), first_seq, last_seq, _b32(prev_root))
        return self._transact(account, fn, nonce=nonce, with_nonce=True)

    def receipt(self, tx_hash: str) -> dict | None:
        with _rpc():
            try:
                return self.web3.eth.get_transaction_receipt(tx_hash)
            except TransactionNotFound:
                return None

    def wait_for_receipt(self, tx_hash: str, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.receipt(tx_hash)
            if receipt is not None or time.monotonic() >= deadline:
                return receipt
            time.sleep(0.05)

    def tx_known(self, tx_hash: str) -> bool:
        """True while the node still has the transaction, pending or mined."""
        with _rpc():
            try:
                self.web3.eth.get_transaction(tx_hash)
                return True
            except TransactionNotFound:
                return False

    # ---- reads -------------------------------------------------------------

    def last_seq(self) -> int:
        return self._read("lastSeq")[0]

    def last_root(self) -> str:
        return self._call(self.contract.functions.lastRoot()).hex()

    def anchor_count(self) -> int:
        return self._call(self.contract.functions.anchorCount())

    def anchor_of_root(self, root: str) -> OnChainAnchor | None:
        try:
            index, fields = self._read("anchorOfRoot", _b32(root))
        except Reverted as exc:
            if exc.name == "RootNotAnchored":
                return None
            raise
        return self._anchor(index, fields)

    def anchor_of_seq(self, seq: int) -> OnChainAnchor | None:
        try:
            index, fields = self._read("anchorOfSeq", seq)
        except Reverted as exc:
            if exc.name == "SeqNotAnchored":
                return None
            raise
        return self._anchor(index, fields)

    def find_anchor_tx(self, root: str, from_block: int = 0) -> AnchorTx | None:
        """The transaction that anchored ``root``, from the contract's Anchored log."""
        topic = "0x" + _b32(root).hex()
        with _rpc():
            logs = self.contract.events.Anchored().get_logs(
                from_block=from_block, to_block="latest", argument_filters={"root": topic}
            )
        if not logs:
            return None
        log = logs[-1]
        return AnchorTx(log["transactionHash"].to_0x_hex(), log["blockNumber"], log["blockHash"].to_0x_hex())

    def head(self) -> int:
        with _rpc():
            return self.web3.eth.block_number

    def block_hash(self, number: int) -> str | None:
        with _rpc():
            try:
                return self.web3.eth.get_block(number)["hash"].to_0x_hex()
            except Web3Exception:
                return None

    # ---- plumbing ----------------------------------------------------------

    @staticmethod
    def _anchor(index: int, fields) -> OnChainAnchor:
        root, prev_root, first_seq, last_seq, block_number, timestamp, writer = fields
        return OnChainAnchor(index, root.hex(), prev_root.hex(), first_seq, last_seq, block_number, timestamp, writer)

    @staticmethod
    def _revert(exc: Exception) -> Reverted | None:
        data = getattr(exc, "data", None)
        if isinstance(data, dict):
            data = data.get("data")
        if not data:
            return None
        try:
            name, args = decode_registry_error(data)
        except ValueError:
            return None
        return Reverted(name, tuple("0x" + v.hex() if isinstance(v, bytes) else v for v in args.values()))

    def _read(self, name: str, *args) -> tuple:
        """A view call as one raw eth_call over JSON-RPC.

        Verification makes a few of these per lineage; going through web3's
        contract layer and middleware cost ten times the node's own answer.
        Other providers (IPC, WebSocket) take the contract path.
        """
        selector, in_types, out_types = _signatures()[name]
        if not isinstance(self.web3.provider, HTTPProvider):
            result = self._call(getattr(self.contract.functions, name)(*args))
            return tuple(result) if len(out_types) > 1 else (result,)
        data = "0x" + (selector + abi_encode(in_types, args)).hex()
        with _rpc():
            response = self.web3.provider.make_request("eth_call", [{"to": self.address, "data": data}, "latest"])
        error = response.get("error")
        if error:
            reverted = self._revert(_RpcError(error.get("data")))
            raise reverted or Reverted("Reverted", (error.get("message", ""),))
        return tuple(abi_decode(out_types, bytes.fromhex(response["result"][2:])))

    def _call(self, fn):
        with _rpc():
            try:
                return fn.call()
            except _REVERTS as exc:
                raise self._revert(exc) or Reverted("Reverted", (str(exc),)) from exc

    @staticmethod
    def _tx_defaults(web3: Web3, account, nonce: int | None = None) -> dict:
        return {
            "from": account.address,
            "chainId": web3.eth.chain_id,
            "nonce": web3.eth.get_transaction_count(account.address, "pending") if nonce is None else nonce,
        }

    @staticmethod
    def _send(web3: Web3, account, tx: dict) -> str:
        tx = dict(tx)
        tx["gas"] = int(web3.eth.estimate_gas(tx) * GAS_HEADROOM)
        signed = account.sign_transaction(tx)
        return web3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex()

    def _transact(self, account, fn, *, nonce: int | None = None, with_nonce: bool = False):
        with _rpc():
            try:
                tx = fn.build_transaction(self._tx_defaults(self.web3, account, nonce))
                tx_hash = self._send(self.web3, account, tx)
            except _REVERTS as exc:
                raise self._revert(exc) or Reverted("Reverted", (str(exc),)) from exc
        return (tx_hash, tx["nonce"]) if with_nonce else tx_hash
