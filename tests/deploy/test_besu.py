"""The consortium chain's files (deploy/besu/network.py) checked independently: the QBFT
extraData decoded with `rlp` names exactly the members' validators, the genesis carries the
consortium's chain id and block period, each node's config points at its own files; and the
registry's writers added with the platform's ledger code on a real node (anvil)."""
from __future__ import annotations

import importlib.util
import json
import tomllib
from pathlib import Path

import pytest
import rlp
from eth_account import Account
from eth_utils import keccak, to_checksum_address

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
BESU = REPO / "deploy" / "besu"
EXAMPLE = BESU / "consortium.example.toml"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"deploy_besu_{name}", BESU / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def network():
    return load("network")


@pytest.fixture(scope="module")
def pilot(network, tmp_path_factory):
    """The example consortium built with keys made here (a pilot on one host)."""
    out = tmp_path_factory.mktemp("besu-network")
    network.build_network(network.load_consortium(EXAMPLE), out, generate_missing_keys=True)
    return out


def test_the_genesis_extra_data_names_exactly_the_members_validators(pilot):
    conf = tomllib.loads(EXAMPLE.read_text())
    members = [m["name"] for m in conf["members"]]
    assert {m["kind"] for m in conf["members"]} == {"bureau", "audit_office"}
    # Each validator's address from its own key file, through eth-account (not network.py).
    expected = {to_checksum_address(Account.from_key((pilot / name / "key").read_text().strip()).address)
                for name in members}
    genesis = json.loads((pilot / "genesis.json").read_text())
    vanity, validators, vote, round_, seals = rlp.decode(bytes.fromhex(genesis["extraData"][2:]))
    assert vanity == bytes(32) and vote == [] and round_ == b"" and seals == []
    assert {to_checksum_address(v) for v in validators} == expected and len(validators) == len(members)
    assert genesis["config"]["chainId"] == conf["chain_id"]
    assert genesis["config"]["qbft"]["blockperiodseconds"] == conf["block_period_seconds"]
    assert genesis["mixHash"] == "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365"
    # The registry is built for Cancun: the chain must run it from block 0.
    build = json.loads((REPO / "ledger" / "contracts" / "ProvenanceRegistry.build.json").read_text())
    assert build["settings"]["evmVersion"] == "cancun" and genesis["config"]["cancunTime"] == 0
    assert (pilot / members[0] / "key").stat().st_mode & 0o077 == 0


def test_each_node_gets_its_config_the_shared_genesis_and_the_others_as_static_peers(pilot):
    conf = tomllib.loads(EXAMPLE.read_text())
    genesis = (pilot / "genesis.json").read_text()
    for member in conf["members"]:
        folder = pilot / member["name"]
        config = tomllib.loads((folder / "config.toml").read_text())
        assert (folder / "genesis.json").read_text() == genesis
        # Paths inside the container (/config is this folder) name files that are in it.
        for option in ("genesis-file", "node-private-key-file", "static-nodes-file"):
            assert config[option].startswith("/config/") and (folder / config[option].removeprefix("/config/")).exists()
        assert config["rpc-http-api"] == ["ETH", "NET", "WEB3", "QBFT"]  # no ADMIN, no personal accounts
        assert config["min-gas-price"] == 0 and config["discovery-enabled"] is False
        peers = json.loads((folder / "static-nodes.json").read_text())
        others = {m["host"] for m in conf["members"] if m["name"] != member["name"]}
        assert {p.rsplit("@", 1)[1].split(":")[0] for p in peers} == others
        # An enode's id is the peer's public key: its address is that peer's validator address.
        validators = {v["name"]: v["address"] for v in json.loads((pilot / "validators.json").read_text())}
        ids = {to_checksum_address(keccak(bytes.fromhex(p.removeprefix("enode://").split("@")[0]))[-20:])
               for p in peers}
        assert ids == {a for n, a in validators.items() if n != member["name"]}


def test_a_tampered_genesis_or_a_wrong_consortium_is_refused(network, pilot, tmp_path, capsys):
    assert network.main(["check", str(pilot / "genesis.json"), str(EXAMPLE)]) == 0
    genesis = json.loads((pilot / "genesis.json").read_text())
    fields = rlp.decode(bytes.fromhex(genesis["extraData"][2:]))
    fields[1] = fields[1][:-1]  # one validator dropped
    genesis["extraData"] = "0x" + rlp.encode(fields).hex()
    genesis["config"]["chainId"] = 1
    tampered = tmp_path / "genesis.json"
    tampered.write_text(json.dumps(genesis))
    assert network.main(["check", str(tampered), str(EXAMPLE)]) == 1
    err = capsys.readouterr().err
    assert "3 validators for 4 members" in err and "config.chainId is 1" in err
    # With the members' public keys in the file, the check compares the validator set itself.
    keyed = EXAMPLE.read_text()
    for name in ("sh-planning", "sh-housing", "sh-transport", "sh-audit"):
        public = (pilot / name / "key.pub").read_text().strip()
        keyed = keyed.replace(f'name = "{name}"', f'name = "{name}"\npublic_key = "{public}"', 1)
    (tmp_path / "keyed.toml").write_text(keyed)
    assert network.main(["check", str(pilot / "genesis.json"), str(tmp_path / "keyed.toml")]) == 0
    audit = (pilot / "sh-audit" / "key.pub").read_text().strip()
    stranger = Account.create()._key_obj.public_key.to_hex()
    (tmp_path / "swapped.toml").write_text(keyed.replace(audit, stranger))
    assert network.main(["check", str(pilot / "genesis.json"), str(tmp_path / "swapped.toml")]) == 1
    assert "are not the members'" in capsys.readouterr().err
    # Bad input names the field and writes nothing.
    no_audit = "\n".join(line for line in EXAMPLE.read_text().split("[[members]]") if "audit_office" not in line)
    (tmp_path / "no-audit.toml").write_text(no_audit.replace("\n\nname =", "\n[[members]]\nname ="))
    assert network.main(["genesis", str(tmp_path / "no-audit.toml"), str(tmp_path / "out")]) == 2
    assert "the audit office must run a validator" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert network.main(["genesis", str(EXAMPLE), str(tmp_path / "out")]) == 2  # no public keys, no --generate
    assert "members[sh-planning].public_key is missing" in capsys.readouterr().err


def test_registry_writers_are_added_by_the_owner_only_with_the_ledger_code(chain, owner, tmp_path, monkeypatch, capsys):
    from ledger.registry import Registry

    def keystore(path: Path, account, password: str) -> None:
        # A V3 keystore as any wallet writes one; PBKDF2 with few rounds keeps the test quick
        # (the platform's own keystores use scrypt; load_account reads both).
        path.write_text(json.dumps(Account.encrypt(account.key, password, kdf="pbkdf2", iterations=1000)))

    writers = load("registry_writers")
    registry, _ = Registry.deploy(chain.w3, owner)
    keystore(tmp_path / "owner.json", owner, "owner-password")
    outsider = chain.new_account()
    keystore(tmp_path / "outsider.json", outsider, "outsider-password")
    bureau = Account.create().address
    rpc = ["--rpc", chain.w3.provider.endpoint_uri, "--registry", registry.address]

    monkeypatch.setenv("OUTSIDER_PASSWORD", "outsider-password")
    assert writers.main(["add", bureau, *rpc, "--keystore", str(tmp_path / "outsider.json"),
                         "--password-env", "OUTSIDER_PASSWORD"]) == 1
    assert "NotOwner" in capsys.readouterr().err and not registry.is_writer(bureau)

    monkeypatch.setenv("OWNER_PASSWORD", "owner-password")
    assert writers.main(["add", bureau, *rpc, "--keystore", str(tmp_path / "owner.json"),
                         "--password-env", "OWNER_PASSWORD"]) == 0
    assert f"{bureau}: added in block" in capsys.readouterr().out and registry.is_writer(bureau)
    assert writers.main(["check", bureau, *rpc]) == 0
    assert writers.main(["check", "0x" + "12" * 20, *rpc]) == 1
    assert writers.main(["add", "0xnot-an-address", *rpc]) == 2
    assert "not 0x-addresses: 0xnot-an-address" in capsys.readouterr().err
