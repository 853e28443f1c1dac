"""Per-release keys, stored only encrypted under the master key from the environment."""
from __future__ import annotations

import secrets

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    return Fernet(settings.MILIAO_MASTER_KEY.encode())


def new_release_key() -> tuple[bytes, str]:
    """A fresh 32-byte key and its encrypted form for the database."""
    key = secrets.token_bytes(32)
    return key, _fernet().encrypt(key).decode()


def open_release_key(encrypted: str) -> bytes:
    try:
        return _fernet().decrypt(encrypted.encode())
    except InvalidToken as exc:
        raise RuntimeError(
            "a release key cannot be decrypted: MILIAO_MASTER_KEY is not the key it was stored under"
        ) from exc
