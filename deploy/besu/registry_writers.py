"""Add or check the provenance registry's writers: the accounts that may anchor on it.

The registry (ledger/contracts/ProvenanceRegistry.sol) has one owner, the account that
deployed it (`manage.py chain_setup --deploy`), and a set of writers; only the owner adds or
removes writers. Each bureau whose platform anchors on the consortium chain sends its
anchoring account's address (`manage.py chain_setup` prints CHAIN_ACCOUNT_ADDRESS); the
owner adds it:

    python deploy/besu/registry_writers.py add 0xWRITER [0xWRITER ...]
    python deploy/besu/registry_writers.py check 0xWRITER [0xWRITER ...]

The node, the registry and the owner's keystore come from the platform's own settings in the
environment (CHAIN_RPC_URL, CHAIN_REGISTRY_ADDRESS, CHAIN_KEYSTORE, CHAIN_KEYSTORE_PASSWORD) or
from --rpc, --registry, --keystore and --password-env. The transaction is signed here with the
owner's key (the node holds no key), through the platform's registry client (ledger/).
Exit status: 0 when every address is a writer afterwards, 1 otherwise, 2 on bad input.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Add or check the provenance registry's writers.")
    parser.add_argument("command", choices=["add", "check"])
    parser.add_argument("writers", nargs="+", help="0x-addresses of the anchoring accounts")
    parser.add_argument("--rpc", default=os.environ.get("CHAIN_RPC_URL"), help="JSON-RPC URL (CHAIN_RPC_URL)")
    parser.add_argument("--registry", default=os.environ.get("CHAIN_REGISTRY_ADDRESS"),
                        help="the registry's address (CHAIN_REGISTRY_ADDRESS)")
    parser.add_argument("--keystore", default=os.environ.get("CHAIN_KEYSTORE"),
                        help="the owner's V3 keystore (CHAIN_KEYSTORE); needed for `add`")
    parser.add_argument("--password-env", default="CHAIN_KEYSTORE_PASSWORD",
                        help="the environment variable that holds the keystore's password")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for each receipt")
    args = parser.parse_args(argv)

    def refuse(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    if not args.rpc:
        return refuse("no chain node: set CHAIN_RPC_URL or pass --rpc")
    if not args.registry or not ADDRESS.match(args.registry):
        return refuse(f"--registry (CHAIN_REGISTRY_ADDRESS) must be a 0x-address, not {args.registry!r}")
    bad = [w for w in args.writers if not ADDRESS.match(w)]
    if bad:
        return refuse(f"not 0x-addresses: {', '.join(bad)}")

    from web3 import HTTPProvider, Web3

    from ledger.keystore import KeystoreError, load_account
    from ledger.registry import Registry, RegistryError

    web3 = Web3(HTTPProvider(args.rpc, request_kwargs={"timeout": 30}))
    registry = Registry(web3, args.registry)
    try:
        registry.check_deployed()
        if args.command == "add":
            if not args.keystore:
                return refuse("`add` signs as the registry's owner: set CHAIN_KEYSTORE or pass --keystore")
            try:
                owner = load_account(Path(args.keystore), os.environ.get(args.password_env, ""))
            except KeystoreError as exc:
                return refuse(str(exc))
            for writer in args.writers:
                if registry.is_writer(writer):
                    print(f"{writer}: already a writer")
                    continue
                tx_hash = registry.add_writer(owner, writer)
                receipt = web3.eth.wait_for_transaction_receipt(tx_hash, timeout=args.timeout, poll_latency=0.1)
                state = "added" if receipt["status"] == 1 else "FAILED"
                print(f"{writer}: {state} in block {receipt['blockNumber']} (tx {tx_hash})")
        missing = [w for w in args.writers if not registry.is_writer(w)]
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for writer in args.writers:
        print(f"{writer}: {'a writer' if writer not in missing else 'NOT a writer'} of {registry.address}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
