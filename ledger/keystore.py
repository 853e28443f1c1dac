"""The anchoring account's key, kept in an encrypted Web3 Secret Storage (V3) keystore.

The key never sits on disk in clear: it is written with scrypt + AES-128-CTR by
eth-account, the format geth, Foundry's ``cast wallet`` and every wallet read,
so an operator can create or rotate it with their usual tools instead.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

__all__ = ["KeystoreError", "create_keystore", "load_account"]


class KeystoreError(Exception):
    """The keystore is missing, unreadable, or the password does not open it."""


def create_keystore(path: Path, password: str, private_key: str | None = None) -> LocalAccount:
    """Write a new keystore (a fresh key unless one is given); refuses to overwrite."""
    if not password:
        raise KeystoreError("a keystore needs a non-empty password")
    if path.exists():
        raise KeystoreError(f"{path} already exists; refusing to overwrite a key")
    account = Account.from_key(private_key) if private_key else Account.create()
    keystore = Account.encrypt(account.key, password, kdf="scrypt")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keystore, handle)
    os.replace(tmp, path)
    return account


def load_account(path: Path, password: str) -> LocalAccount:
    """Decrypt the keystore at ``path``; the error says which of file or password is wrong."""
    try:
        keystore = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise KeystoreError(f"CHAIN_KEYSTORE: no keystore at {path}") from exc
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"CHAIN_KEYSTORE: {path} is not a readable keystore: {exc}") from exc
    if not isinstance(keystore, dict) or "crypto" not in {k.lower() for k in keystore}:
        raise KeystoreError(f"CHAIN_KEYSTORE: {path} is not a V3 keystore (no 'crypto' section)")
    try:
        key = Account.decrypt(keystore, password)
    except ValueError as exc:
        raise KeystoreError(f"CHAIN_KEYSTORE_PASSWORD does not open {path}: {exc}") from exc
    return Account.from_key(key)
