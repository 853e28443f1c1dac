"""Fill in a single host's settings and secrets for deploy/compose.yaml, once, at install time.

    python deploy/init_host.py --host miliao.planning.example.gov.cn [--chain-id 1337] [--dir deploy]

Writes, next to compose.yaml and never over an existing file:
- miliao.env: deploy/env.example with fresh secrets (DJANGO_SECRET_KEY, MILIAO_MASTER_KEY,
  CHAIN_KEYSTORE_PASSWORD), the portal's host name, and DATABASE_URL for the `db` service;
- secrets/postgres-password: the database password in that URL;
- secrets/anchor-keystore.json: a new anchoring account in an encrypted V3 keystore (the
  platform's ledger.keystore), opened by CHAIN_KEYSTORE_PASSWORD.

secrets/ is readable by its owner only; the files in it are world-readable so that the
containers' users (PostgreSQL's, the platform's) can read them once mounted. The SuperLink's
TLS files (secrets/flower/) come from the city's PKI or the openssl steps of sandbox/README.md.
Prints the anchoring account's address: fund it in the consortium's genesis (`[alloc]`) or
have the registry's owner add it as a writer (deploy/besu/registry_writers.py).
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class InitError(ValueError):
    pass


def settings_text(example: str, values: dict[str, str]) -> str:
    """env.example with `values` set; every other line as it is."""
    seen = set()
    lines = []
    for line in example.splitlines():
        name = line.split("=", 1)[0]
        if re.match(r"^[A-Z][A-Z0-9_]*=", line) and name in values:
            line = f"{name}={values[name]}"
            seen.add(name)
        lines.append(line)
    missing = set(values) - seen
    if missing:
        raise InitError(f"env.example has no line for {', '.join(sorted(missing))}")
    return "\n".join(lines) + "\n"


def init_host(folder: Path, host: str, chain_id: int | None = None) -> dict:
    from cryptography.fernet import Fernet

    from ledger.keystore import create_keystore

    if not HOST.match(host):
        raise InitError(f"--host: {host!r} is not a host name")
    env_path, secret_dir = folder / "miliao.env", folder / "secrets"
    db_path, keystore_path = secret_dir / "postgres-password", secret_dir / "anchor-keystore.json"
    existing = [str(p) for p in (env_path, db_path, keystore_path) if p.exists()]
    if existing:
        raise InitError(f"refusing to overwrite {', '.join(existing)}")
    db_password = secrets.token_hex(24)
    keystore_password = secrets.token_urlsafe(32)
    values = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "MILIAO_MASTER_KEY": Fernet.generate_key().decode(),
        "DJANGO_ALLOWED_HOSTS": host,
        "DATABASE_URL": f"postgres://miliao:{db_password}@db:5432/miliao",
        "CHAIN_KEYSTORE_PASSWORD": keystore_password,
    }
    if chain_id is not None:
        values["CHAIN_ID"] = str(chain_id)
    text = settings_text((folder / "env.example").read_text(), values)

    secret_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(secret_dir, 0o700)
    account = create_keystore(keystore_path, keystore_password)
    os.chmod(keystore_path, 0o644)
    fd = os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(db_password)
    fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return {"env": env_path, "account": account.address}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fill in a single host's settings and secrets for compose.yaml.")
    parser.add_argument("--host", required=True, help="the portal's host name (DJANGO_ALLOWED_HOSTS)")
    parser.add_argument("--chain-id", type=int, default=None, help="the consortium chain's id (CHAIN_ID)")
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent,
                        help="the folder of compose.yaml and env.example (default: this script's)")
    args = parser.parse_args(argv)
    try:
        done = init_host(args.dir, args.host, args.chain_id)
    except InitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {done['env']} and {args.dir / 'secrets'}/")
    print(f"anchoring account: {done['account']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
