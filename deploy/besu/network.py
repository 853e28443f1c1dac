"""The consortium chain's files: node keys, the QBFT genesis, and each validator's Besu config.

    python deploy/besu/network.py key DIR
        On a member's own machine: a new node key (DIR/key, mode 0600, never leaves it) and
        its public half (DIR/key.pub). Prints the public key and the validator address; the
        member sends the public key to whoever assembles the network.

    python deploy/besu/network.py genesis CONSORTIUM.toml OUT [--generate-missing-keys]
        From the members' public keys (CONSORTIUM.toml, see consortium.example.toml): the
        genesis with the QBFT validator set in its extraData (OUT/genesis.json), the validator
        list (OUT/validators.json) and, per member, OUT/<name>/ with config.toml, genesis.json
        and static-nodes.json, the folder that member's node mounts at /config. With
        --generate-missing-keys, a member without a public_key gets a key made here
        (OUT/<name>/key): for a pilot on one host, never for a real consortium.

    python deploy/besu/network.py check OUT/genesis.json CONSORTIUM.toml
        Decodes the genesis's extraData and checks it against the consortium file: the
        validator set, chain id, block period, QBFT's mixHash and difficulty. Exit 1 on a mismatch.

Only the standard library, `rlp` and `eth-keys` (both come with web3) are used.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from pathlib import Path

import rlp
import rlp.exceptions
from eth_keys import keys
from eth_keys.exceptions import ValidationError
from eth_utils import keccak, to_checksum_address

# QBFT's genesis constants (Besu's documentation): the mixHash that marks a BFT block, and the
# difficulty every block has.
QBFT_MIX_HASH = "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
DIFFICULTY = "0x1"
GAS_LIMIT = "0x1fffffffffffff"
VANITY = bytes(32)
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Where the node's files are inside its container (compose and the Kubernetes StatefulSet
# mount a member's folder at /config, its chain database at /opt/besu/data).
CONFIG_DIR = "/config"
DATA_DIR = "/opt/besu/data"
P2P_PORT = 30303
RPC_PORT = 8545


class NetworkError(ValueError):
    """A consortium file or genesis that is wrong; the message names the field."""


# --- keys -------------------------------------------------------------------------------


def new_key(folder: Path) -> keys.PrivateKey:
    """A fresh secp256k1 node key in `folder`/key (hex, as Besu's --node-private-key-file
    reads it; mode 0600) and its public key in key.pub. Refuses to overwrite a key."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "key"
    if path.exists():
        raise NetworkError(f"{path} already exists; refusing to overwrite a node key")
    private = keys.PrivateKey(os.urandom(32))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private.to_hex())
    (folder / "key.pub").write_text(private.public_key.to_hex() + "\n")
    return private


def public_key(text: str, where: str) -> keys.PublicKey:
    raw = text.strip().removeprefix("0x")
    if len(raw) == 130 and raw.startswith("04"):
        raw = raw[2:]
    try:
        key = keys.PublicKey(bytes.fromhex(raw))
    except (ValueError, ValidationError) as exc:
        raise NetworkError(f"{where}: not a secp256k1 public key (128 hex digits): {exc}") from None
    return key


def validator_address(key: keys.PublicKey) -> str:
    return to_checksum_address(keccak(key.to_bytes())[-20:])


# --- the consortium file ----------------------------------------------------------------


def load_consortium(path: Path) -> dict:
    try:
        conf = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise NetworkError(f"{path}: {exc}") from None
    for field in ("chain_id", "block_period_seconds", "request_timeout_seconds", "epoch_length"):
        value = conf.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise NetworkError(f"{path}: {field} must be a positive integer, not {value!r}")
    members = conf.get("members")
    if not isinstance(members, list) or not members:
        raise NetworkError(f"{path}: members: at least one [[members]] entry is needed")
    seen = set()
    for i, member in enumerate(members):
        where = f"{path}: members[{i}]"
        name = member.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise NetworkError(f"{where}.name must be lower-case letters, digits and '-', not {name!r}")
        if name in seen:
            raise NetworkError(f"{where}.name {name!r} appears twice")
        seen.add(name)
        if member.get("kind") not in {"bureau", "audit_office"}:
            raise NetworkError(f"{where}.kind must be 'bureau' or 'audit_office', not {member.get('kind')!r}")
        if not isinstance(member.get("host"), str) or not member["host"]:
            raise NetworkError(f"{where}.host: the address the other validators reach this node at")
        port = member.get("p2p_port", P2P_PORT)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise NetworkError(f"{where}.p2p_port must be a TCP port, not {port!r}")
    if not any(m["kind"] == "audit_office" for m in members):
        raise NetworkError(f"{path}: members: the audit office must run a validator")
    for address, balance in conf.get("alloc", {}).items():
        if not re.fullmatch(r"0x[0-9a-fA-F]{40}", address) or not str(balance).isdigit():
            raise NetworkError(f"{path}: alloc: {address!r} = {balance!r} is not an address and a wei amount")
    return conf


# --- genesis ----------------------------------------------------------------------------


def qbft_extra_data(validators: list[str]) -> str:
    """QBFT's genesis extraData: RLP([32-byte vanity, [validator addresses], no vote (an empty
    list), round 0, no seals (an empty list)])."""
    addresses = [bytes.fromhex(a.removeprefix("0x")) for a in validators]
    return "0x" + rlp.encode([VANITY, addresses, [], 0, []]).hex()


def decode_extra_data(extra_data: str) -> dict:
    """The fields of a QBFT extraData; raises NetworkError when it is not one."""
    try:
        fields = rlp.decode(bytes.fromhex(extra_data.removeprefix("0x")))
    except (ValueError, rlp.exceptions.DecodingError) as exc:  # not hex, or not RLP
        raise NetworkError(f"extraData is not RLP: {exc}") from None
    if not isinstance(fields, list) or len(fields) != 5:
        raise NetworkError("extraData must be a list of 5 items (vanity, validators, vote, round, seals)")
    vanity, validators, vote, round_, seals = fields
    if not isinstance(vanity, bytes) or len(vanity) != 32:
        raise NetworkError("extraData: the vanity must be 32 bytes")
    if not isinstance(validators, list) or not validators or any(
            not isinstance(v, bytes) or len(v) != 20 for v in validators):
        raise NetworkError("extraData: the validators must be a non-empty list of 20-byte addresses")
    if vote != [] or seals != []:
        raise NetworkError("extraData: a genesis carries no vote and no seals")
    if not isinstance(round_, bytes) or rlp.sedes.big_endian_int.deserialize(round_) != 0:
        raise NetworkError("extraData: the genesis round must be 0")
    return {"validators": [to_checksum_address(v) for v in validators]}


def genesis(conf: dict, validators: list[str]) -> dict:
    return {
        "config": {
            "chainId": conf["chain_id"],
            "berlinBlock": 0,
            "londonBlock": 0,
            # The registry is compiled for Cancun (ledger/contracts/build.js).
            "shanghaiTime": 0,
            "cancunTime": 0,
            # Gas is free for the members' accounts (validators also run min-gas-price=0).
            "zeroBaseFee": True,
            "qbft": {
                "blockperiodseconds": conf["block_period_seconds"],
                "epochlength": conf["epoch_length"],
                "requesttimeoutseconds": conf["request_timeout_seconds"],
            },
        },
        "nonce": "0x0",
        "timestamp": "0x0",
        "gasLimit": GAS_LIMIT,
        "difficulty": DIFFICULTY,
        "mixHash": QBFT_MIX_HASH,
        "coinbase": "0x0000000000000000000000000000000000000000",
        "alloc": {a.removeprefix("0x").lower(): {"balance": str(b)} for a, b in conf.get("alloc", {}).items()},
        "extraData": qbft_extra_data(validators),
    }


def enode(key: keys.PublicKey, member: dict) -> str:
    return f"enode://{key.to_hex().removeprefix('0x')}@{member['host']}:{member.get('p2p_port', P2P_PORT)}"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))


def node_config(conf: dict, member: dict) -> str:
    """The member's Besu configuration file (its options are Besu's command-line options)."""
    options = {
        "genesis-file": f"{CONFIG_DIR}/genesis.json",
        "data-path": DATA_DIR,
        "data-storage-format": "FOREST",
        "sync-mode": "FULL",
        "node-private-key-file": f"{CONFIG_DIR}/key",
        # A closed network: each validator dials the others from the static list (enode URLs
        # with host names, hence DNS), no discovery and no bootnodes.
        "static-nodes-file": f"{CONFIG_DIR}/static-nodes.json",
        "discovery-enabled": False,
        "Xdns-enabled": True,
        "Xdns-update-enabled": True,
        "p2p-interface": "0.0.0.0",
        "p2p-port": member.get("p2p_port", P2P_PORT),
        "nat-method": "NONE",
        "min-gas-price": 0,
        # JSON-RPC for the platform's ledger worker and outside verifiers (behind the member's
        # TLS proxy: Besu serves plain HTTP here).
        "rpc-http-enabled": True,
        "rpc-http-host": "0.0.0.0",
        "rpc-http-port": RPC_PORT,
        "rpc-http-api": ["ETH", "NET", "WEB3", "QBFT"],
        "host-allowlist": conf.get("rpc", {}).get("host_allowlist", ["localhost", "127.0.0.1"]),
        "metrics-enabled": True,
        "metrics-host": "0.0.0.0",
    }
    head = (f"# Besu configuration of {member['name']} ({member.get('title', member['kind'])}), a QBFT "
            f"validator of chain {conf['chain_id']}.\n# Written by deploy/besu/network.py; the node key "
            f"({CONFIG_DIR}/key) stays on this member's machine.\n")
    return head + "".join(f"{k} = {_toml(v)}\n" for k, v in options.items())


def build_network(conf: dict, out: Path, *, generate_missing_keys: bool = False) -> dict:
    """Write the genesis and every member's folder under `out`; returns {name: address}."""
    out.mkdir(parents=True, exist_ok=True)
    public = {}
    for member in conf["members"]:
        name = member["name"]
        if member.get("public_key"):
            public[name] = public_key(member["public_key"], f"members[{name}].public_key")
        elif generate_missing_keys:
            key_file = out / name / "key"
            private = (keys.PrivateKey(bytes.fromhex(key_file.read_text().strip().removeprefix("0x")))
                       if key_file.exists() else new_key(out / name))
            public[name] = private.public_key
        else:
            raise NetworkError(f"members[{name}].public_key is missing: run `network.py key DIR` on that "
                               "member's machine and copy the public key here")
    validators = {name: validator_address(key) for name, key in public.items()}
    if len(set(validators.values())) != len(validators):
        raise NetworkError("two members have the same node key")
    doc = genesis(conf, sorted(validators.values(), key=str.lower))
    text = json.dumps(doc, indent=2) + "\n"
    (out / "genesis.json").write_text(text)
    enodes = {m["name"]: enode(public[m["name"]], m) for m in conf["members"]}
    (out / "validators.json").write_text(json.dumps(
        [{"name": m["name"], "kind": m["kind"], "address": validators[m["name"]], "enode": enodes[m["name"]]}
         for m in conf["members"]], indent=2) + "\n")
    for member in conf["members"]:
        folder = out / member["name"]
        folder.mkdir(parents=True, exist_ok=True)
        peers = [e for n, e in enodes.items() if n != member["name"]]
        (folder / "genesis.json").write_text(text)
        (folder / "static-nodes.json").write_text(json.dumps(peers, indent=2) + "\n")
        (folder / "config.toml").write_text(node_config(conf, member))
    return validators


def check_genesis(doc: dict, conf: dict) -> list[str]:
    """What is wrong with a genesis for this consortium (empty when it is right)."""
    problems = []
    try:
        validators = decode_extra_data(doc.get("extraData", ""))["validators"]
    except NetworkError as exc:
        return [str(exc)]
    config = doc.get("config", {})
    if config.get("chainId") != conf["chain_id"]:
        problems.append(f"config.chainId is {config.get('chainId')!r}, the consortium's is {conf['chain_id']}")
    qbft = config.get("qbft")
    if not isinstance(qbft, dict):
        problems.append("config.qbft is missing: not a QBFT genesis")
    elif qbft.get("blockperiodseconds") != conf["block_period_seconds"]:
        problems.append(f"config.qbft.blockperiodseconds is {qbft.get('blockperiodseconds')!r}, "
                        f"the consortium's is {conf['block_period_seconds']}")
    if doc.get("mixHash") != QBFT_MIX_HASH:
        problems.append("mixHash is not QBFT's")
    if doc.get("difficulty") != DIFFICULTY:
        problems.append("difficulty must be 0x1")
    keyed = [m for m in conf["members"] if m.get("public_key")]
    if len(keyed) == len(conf["members"]):
        expected = {validator_address(public_key(m["public_key"], m["name"])) for m in keyed}
        if set(validators) != expected:
            problems.append(f"the validators {sorted(validators)} are not the members' {sorted(expected)}")
    if len(validators) != len(conf["members"]):
        problems.append(f"{len(validators)} validators for {len(conf['members'])} members")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_key = sub.add_parser("key", help="make this member's node key")
    p_key.add_argument("folder", type=Path)
    p_gen = sub.add_parser("genesis", help="write the genesis and each member's node folder")
    p_gen.add_argument("consortium", type=Path)
    p_gen.add_argument("out", type=Path)
    p_gen.add_argument("--generate-missing-keys", action="store_true",
                       help="make keys here for members without a public_key (a pilot on one host)")
    p_check = sub.add_parser("check", help="check a genesis against the consortium file")
    p_check.add_argument("genesis", type=Path)
    p_check.add_argument("consortium", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "key":
            private = new_key(args.folder)
            print(f"public_key = \"{private.public_key.to_hex()}\"")
            print(f"validator address: {validator_address(private.public_key)}")
        elif args.command == "genesis":
            validators = build_network(load_consortium(args.consortium), args.out,
                                       generate_missing_keys=args.generate_missing_keys)
            for name, address in validators.items():
                print(f"{name}: validator {address}")
            print(f"genesis and node folders written to {args.out}")
        else:
            try:
                doc = json.loads(args.genesis.read_text())
            except (OSError, ValueError) as exc:
                raise NetworkError(f"{args.genesis}: {exc}") from None
            problems = check_genesis(doc, load_consortium(args.consortium))
            for problem in problems:
                print(f"{args.genesis}: {problem}", file=sys.stderr)
            if problems:
                return 1
            print(f"{args.genesis}: a QBFT genesis of chain {doc['config']['chainId']} with "
                  f"{len(decode_extra_data(doc['extraData'])['validators'])} validators")
    except NetworkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
