"""Which chain this process anchors to: the backend, the anchoring account and the registry.

The chain is a JSON-RPC node at CHAIN_RPC_URL: in development the anvil node that
`manage.py demo` starts (ledger/devnode.py), in production the operator's own. Everything
above this module (anchoring, verification) only sees a :class:`ledger.registry.Registry`.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from web3 import Web3

from ledger.keystore import KeystoreError, create_keystore, load_account
from ledger.registry import ChainUnavailable, Registry, RegistryError

from .models import ChainRegistry

__all__ = ["ChainConfigError", "ChainUnavailable", "Connection", "connect", "reset_for_tests"]

RPC_TIMEOUT_S = 10
DEV_FUNDING_WEI = 10**24  # what a development account is given on anvil


class ChainConfigError(RegistryError):
    """The chain settings do not describe a usable chain (wrong id, key, registry)."""


@dataclass
class Connection:
    web3: Web3
    chain_id: int
    backend: str  # the RPC URL
    account: object  # eth_account LocalAccount
    registry: Registry
    registry_row: ChainRegistry


_lock = threading.RLock()
_cached: dict[int, tuple] = {}  # pid -> (web3, chain_id, backend, account); a fork starts afresh


def _account():
    path = settings.CHAIN_KEYSTORE
    if not path.exists():
        if settings.PRODUCTION:
            raise ChainConfigError(f"CHAIN_KEYSTORE: no keystore at {path}")
        create_keystore(path, settings.CHAIN_KEYSTORE_PASSWORD)
    try:
        account = load_account(path, settings.CHAIN_KEYSTORE_PASSWORD)
    except KeystoreError as exc:
        raise ChainConfigError(str(exc)) from exc
    expected = settings.CHAIN_ACCOUNT_ADDRESS
    if expected and account.address.lower() != expected.lower():
        raise ChainConfigError(
            f"CHAIN_KEYSTORE holds {account.address}, but CHAIN_ACCOUNT_ADDRESS is {expected}"
        )
    return account


def _fund_dev_account(web3: Web3, account) -> None:
    """A local anvil node gives the development account gas money; real chains do not."""
    try:
        if not web3.client_version.lower().startswith("anvil"):
            return
        if web3.eth.get_balance(account.address) < DEV_FUNDING_WEI // 2:
            web3.provider.make_request("anvil_setBalance", [account.address, hex(DEV_FUNDING_WEI)])
    except OSError:
        pass  # node down: anchoring reports it when it tries


def base_connection() -> tuple:
    """(web3, chain id, node URL, account) for this process, opened once.

    The node is asked first, so a node that is down is reported before the keystore is
    unlocked (a second of scrypt)."""
    pid = os.getpid()
    with _lock:
        if pid not in _cached:
            backend = settings.CHAIN_RPC_URL
            web3 = Web3(Web3.HTTPProvider(backend, request_kwargs={"timeout": RPC_TIMEOUT_S}))
            try:
                chain_id = web3.eth.chain_id
            except OSError as exc:
                raise ChainUnavailable(_unreachable(backend, exc)) from exc
            if settings.CHAIN_ID is not None and chain_id != settings.CHAIN_ID:
                raise ChainConfigError(f"CHAIN_ID is {settings.CHAIN_ID}, but the node at {shown_url(backend)} reports {chain_id}")
            account = _account()
            if not settings.PRODUCTION:
                _fund_dev_account(web3, account)
            _cached[pid] = (web3, chain_id, backend, account)
        return _cached[pid]


def _unreachable(url: str, exc: BaseException) -> str:
    hint = (
        "start the demo's node with `make demo` (or `manage.py demo`), or point CHAIN_RPC_URL at a running node"
        if not settings.PRODUCTION and url == settings.DEV_CHAIN_RPC_URL
        else "check that the node runs and that CHAIN_RPC_URL names it"
    )
    return f"no chain node answers at CHAIN_RPC_URL={shown_url(url)} ({type(exc).__name__}): {hint}"


def shown_url(url: str) -> str:
    """A node's URL as stored in the ledger's status and shown on pages: scheme, host and port
    only, since CHAIN_RPC_URL may carry credentials in its user part, path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


_registries: dict[tuple[int, str], Registry] = {}  # (pid, address) -> a client whose code was seen


def connect(*, recheck: bool = False) -> Connection:
    """The chain, account and registry, deploying the registry in development if none exists.

    The registry's code is looked for once per process (``recheck`` looks again:
    anchoring does, each run, so a node reset to an empty chain is noticed).
    """
    web3, chain_id, backend, account = base_connection()
    with _lock:
        row = _registry_row(web3, chain_id, account, recheck)
        registry = _registries.get((os.getpid(), row.address))
        if registry is None:
            registry = _registries[(os.getpid(), row.address)] = Registry(web3, row.address)
    return Connection(web3, chain_id, backend, account, registry, row)


def _check_deployed(web3, address: str, recheck: bool) -> None:
    if recheck or (os.getpid(), address) not in _registries:
        Registry(web3, address).check_deployed()


def _registry_row(web3, chain_id: int, account, recheck: bool) -> ChainRegistry:
    address = settings.CHAIN_REGISTRY_ADDRESS
    if address:
        row, _ = ChainRegistry.objects.get_or_create(chain_id=chain_id, address=Web3.to_checksum_address(address))
        _check_deployed(web3, row.address, recheck)
        return row
    row = ChainRegistry.objects.filter(chain_id=chain_id).order_by("-pk").first()
    if row is not None:
        try:
            _check_deployed(web3, row.address, recheck)
        except ChainUnavailable:
            raise
        except RegistryError as exc:
            raise ChainConfigError(
                f"{exc}. The database anchors to that registry, so the chain it lives on must come back "
                "(for the demo's anvil: its state file, STATE_DIR/chain/anvil-state.json) before anchoring can go on"
            ) from exc
        return row
    if settings.PRODUCTION:
        raise ChainConfigError(
            "CHAIN_REGISTRY_ADDRESS is not set: deploy the registry with "
            "`manage.py chain_setup --deploy` and set it"
        )
    registry, tx = Registry.deploy(web3, account)
    with transaction.atomic():
        return ChainRegistry.objects.create(
            chain_id=chain_id, address=registry.address, deploy_tx=tx.tx_hash, deployed_block=tx.block_number
        )


def reset_for_tests() -> None:
    """Forget the cached connection (tests that point the process at another node)."""
    with _lock:
        _cached.clear()
        _registries.clear()
