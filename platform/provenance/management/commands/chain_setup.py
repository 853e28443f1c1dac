"""`manage.py chain_setup`: the anchoring account, and optionally a new registry."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ledger.keystore import KeystoreError, create_keystore
from ledger.registry import RegistryError
from provenance import chain


class Command(BaseCommand):
    help = (
        "Create the anchoring keystore if it is missing (--create-key), show the account, and with "
        "--deploy put a new ProvenanceRegistry on the chain and print CHAIN_REGISTRY_ADDRESS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--create-key", action="store_true", help="write a new encrypted keystore")
        parser.add_argument("--deploy", action="store_true", help="deploy a new registry owned by the account")

    def handle(self, *args, create_key: bool, deploy: bool, **options):
        path = settings.CHAIN_KEYSTORE
        if create_key:
            try:
                account = create_keystore(path, settings.CHAIN_KEYSTORE_PASSWORD)
            except KeystoreError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"new keystore {path} for {account.address}")
        try:
            if deploy:
                from ledger.registry import Registry

                web3, chain_id, backend, account = chain.base_connection()
                registry, tx = Registry.deploy(web3, account)
                self.stdout.write(f"registry deployed on chain {chain_id} in block {tx.block_number} (tx {tx.tx_hash})")
                self.stdout.write(f"CHAIN_REGISTRY_ADDRESS={registry.address}")
                return
            conn = chain.connect()
        except RegistryError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"chain {conn.chain_id} at {conn.backend}")
        self.stdout.write(f"CHAIN_ACCOUNT_ADDRESS={conn.account.address}")
        self.stdout.write(f"CHAIN_REGISTRY_ADDRESS={conn.registry.address}")
        self.stdout.write(f"the account may anchor: {conn.registry.is_writer(conn.account.address)}")
