"""The committed build of ProvenanceRegistry.sol, for deploying and calling it.

The files next to this module are written by ``build.js`` (``npm run build --prefix
ledger/contracts``), and ``node build.js --check`` proves they match the source, so
reading them needs neither Node.js nor solc at run time.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

__all__ = ["decode_registry_error", "registry_abi", "registry_build", "registry_bytecode"]

_DIR = Path(__file__).resolve().parent
_NAME = "ProvenanceRegistry"


@functools.cache
def _read_json(suffix: str):
    return json.loads((_DIR / f"{_NAME}{suffix}").read_text())


def registry_abi() -> list[dict]:
    """The contract's ABI (a copy, so a caller cannot change what the next one gets)."""
    return copy.deepcopy(_read_json(".abi.json"))


@functools.cache
def registry_bytecode() -> str:
    """The 0x-prefixed creation bytecode; the constructor takes no arguments."""
    text = (_DIR / f"{_NAME}.bin").read_text().strip()
    if not text or len(text) % 2 or text.strip("0123456789abcdef"):
        raise ValueError(f"{_NAME}.bin is not lowercase hex: run npm run build --prefix ledger/contracts")
    return "0x" + text


def registry_build() -> dict:
    """How the bytecode was built: compiler, settings, and the source and runtime-code hashes."""
    return copy.deepcopy(_read_json(".build.json"))


@functools.cache
def _errors_by_selector() -> dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    errors = {}
    for entry in _read_json(".abi.json"):
        if entry["type"] == "error":
            types = tuple(i["type"] for i in entry["inputs"])
            selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
            errors[selector] = (entry["name"], types, tuple(i["name"] for i in entry["inputs"]))
    return errors


def decode_registry_error(data: bytes | str) -> tuple[str, dict]:
    """The registry's custom error in revert data: its name and its arguments by name,
    e.g. ``("SequenceGap", {"expectedFirstSeq": 11, "firstSeq": 12})``.

    ``data`` is what web3 puts on ``ContractCustomError.data`` (0x-hex) or raw bytes.
    Raises ValueError when it is not one of the registry's errors.
    """
    raw = bytes.fromhex(data.removeprefix("0x")) if isinstance(data, str) else bytes(data)
    known = _errors_by_selector().get(raw[:4])
    if known is None:
        raise ValueError(f"revert data 0x{raw.hex()} is not a ProvenanceRegistry error")
    name, types, names = known
    values = (
        to_checksum_address(value) if kind == "address" else value
        for kind, value in zip(types, abi_decode(list(types), raw[4:]), strict=True)
    )
    return name, dict(zip(names, values, strict=True))
