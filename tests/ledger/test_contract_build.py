"""The committed ProvenanceRegistry build is the compiled form of the committed source,
and it deploys on anvil."""

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from ledger_chain_support import rpc_chain

from ledger.contracts import registry_build

pytestmark = pytest.mark.ledger

CONTRACTS = Path(__file__).resolve().parents[2] / "ledger" / "contracts"


def test_committed_build_matches_a_fresh_compile():
    node = shutil.which("node")
    assert node, "Node.js is needed to check the contract build (node not on PATH)"
    assert (CONTRACTS / "node_modules" / "solc").is_dir(), (
        "the pinned solc is not installed: run `npm ci --prefix ledger/contracts`"
    )
    command = [node, str(CONTRACTS / "build.js"), "--check"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr + result.stdout


def test_build_record_names_the_committed_source():
    build = registry_build()
    source = (CONTRACTS / build["source"]).read_bytes()
    assert build["sourceSha256"] == hashlib.sha256(source).hexdigest()
    assert f"pragma solidity {build['compiler'].split()[1].split('+')[0]};".encode() in source


def test_committed_bytecode_deploys_as_the_recorded_runtime_code(anvil_url):
    chain = rpc_chain(anvil_url)
    registry, receipt = chain.deploy_registry(chain.new_account())
    assert receipt.status == 1
    code = bytes(chain.w3.eth.get_code(registry.address))
    assert code, "the constructor left no runtime code"
    # What a client compares to decide that an address holds this registry.
    assert hashlib.sha256(code).hexdigest() == registry_build()["runtimeBytecodeSha256"]
