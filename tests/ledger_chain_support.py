"""The chain the registry tests run on, without Django or a database.

A JSON-RPC node, anvil (the ``chain`` fixture in conftest.py uses ``CHAIN_RPC_URL`` when
it names a node, funded key ``CHAIN_PRIVATE_KEY``, anvil's first dev key by default).
Transactions are built, signed here with the sender's key and sent raw, as the platform
sends them. Test modules import these helpers from here: in tests/ledger,
``from conftest import`` means tests/conftest.py.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractCustomError

from ledger.contracts import decode_registry_error, registry_abi, registry_bytecode


@dataclass
class Chain:
    name: str
    w3: Web3
    funder: LocalAccount

    def new_account(self, ether: int = 10) -> LocalAccount:
        """A fresh key, funded, so no test shares a nonce or a role with another."""
        account = Account.create()
        self.transact(self.funder, {"to": account.address, "value": Web3.to_wei(ether, "ether")})
        return account

    def transact(self, sender: LocalAccount, tx_or_call, **fields):
        """Build (estimating gas, which is where a refusal surfaces), sign, send, and
        wait; returns the receipt. ``tx_or_call`` is a contract function call or a dict."""
        base = {"from": sender.address, "nonce": self.w3.eth.get_transaction_count(sender.address, "pending"),
                "chainId": self.w3.eth.chain_id, **fields}
        if isinstance(tx_or_call, dict):
            tx = {**base, **tx_or_call}
            tx.setdefault("gas", self.w3.eth.estimate_gas(tx))
            tx.setdefault("maxFeePerGas", 2 * self.w3.eth.gas_price + 1)
            tx.setdefault("maxPriorityFeePerGas", 1)
        else:
            tx = tx_or_call.build_transaction(base)
        signed = sender.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)

    def deploy_registry(self, owner: LocalAccount):
        factory = self.w3.eth.contract(abi=registry_abi(), bytecode=registry_bytecode())
        receipt = self.transact(owner, factory.constructor())
        assert receipt.status == 1, receipt
        return self.w3.eth.contract(address=receipt.contractAddress, abi=registry_abi()), receipt


def refusal(call, sender: LocalAccount) -> tuple[str, dict]:
    """The registry's custom error for ``call`` sent by ``sender``, decoded from the
    revert data of the gas estimate the platform's send path makes first."""
    with pytest.raises(ContractCustomError) as excinfo:
        call.build_transaction({"from": sender.address})
    return decode_registry_error(excinfo.value.data)


# ---- anvil -------------------------------------------------------------------------


def rpc_chain(url: str, name: str = "anvil") -> Chain:
    from ledger.devnode import DEV_PRIVATE_KEY

    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    if not w3.is_connected():
        raise RuntimeError(f"no JSON-RPC node answers at {url}")
    return Chain(name, w3, Account.from_key(os.environ.get("CHAIN_PRIVATE_KEY", DEV_PRIVATE_KEY)))


def random_root() -> bytes:
    return secrets.token_bytes(32)
