"""Settings come from the environment; production refuses defaults and names what is missing."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.foundation

SETTINGS_ENV = {
    "DJANGO_SECRET_KEY", "MILIAO_MASTER_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "CHAIN_RPC_URL",
    "DJANGO_ALLOWED_HOSTS", "MILIAO_ENV", "DJANGO_DEBUG", "CHAIN_ID", "CHAIN_KEYSTORE_PASSWORD",
    "CHAIN_KEYSTORE", "CHAIN_ACCOUNT_ADDRESS", "CHAIN_REGISTRY_ADDRESS", "ANCHOR_INTERVAL_S",
    "CHAIN_CONFIRMATIONS", "CHAIN_PUBLIC_RPC_URL", "ANCHOR_MAX_BATCH", "ANCHOR_BACKOFF_MAX_S", "ANCHOR_RECEIPT_TIMEOUT_S",
    "DJANGO_SECURE_SSL_REDIRECT", "DJANGO_SECURE_HSTS_SECONDS", "DJANGO_STATIC_ROOT",
}
GOOD_PRODUCTION = {
    "MILIAO_ENV": "production",
    "DJANGO_SECRET_KEY": "x" * 50,
    "MILIAO_MASTER_KEY": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
    "DATABASE_URL": "postgres://u:p@db.internal:5432/miliao",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "CHAIN_RPC_URL": "https://besu.internal:8545",
    "CHAIN_KEYSTORE_PASSWORD": "y" * 32,
    "DJANGO_ALLOWED_HOSTS": "miliao.example.gov.cn",
}


def load_settings(tmp_path, **env):
    """Import the settings in a fresh interpreter, as a server start would."""
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    clean.update(env, MILIAO_STATE_DIR=str(tmp_path), PYTHONPATH=str(REPO / "platform"))
    return subprocess.run(
        [sys.executable, "-c", "import miliao.settings as s; print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.CHAIN_RPC_URL, s.DEBUG)"],
        env=clean, capture_output=True, text=True, cwd=REPO, timeout=60,
    )


def test_development_defaults_need_no_environment(tmp_path):
    result = load_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    # The chain is the demo's anvil node at a fixed local port (manage.py demo starts it).
    assert result.stdout.split() == ["django.db.backends.sqlite3", "filesystem://localhost/", "http://127.0.0.1:8545", "True"]
    # Dev secrets are generated once, outside git, and not world-readable.
    assert oct((tmp_path / "django_secret_key").stat().st_mode)[-3:] == "600"


def test_production_names_every_missing_secret(tmp_path):
    result = load_settings(tmp_path, MILIAO_ENV="production", DJANGO_SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "missing from the environment: MILIAO_MASTER_KEY, DATABASE_URL, CELERY_BROKER_URL, CHAIN_RPC_URL, CHAIN_KEYSTORE_PASSWORD, DJANGO_ALLOWED_HOSTS" in result.stderr
    assert not (tmp_path / "django_secret_key").exists()


def test_production_with_every_setting_starts(tmp_path):
    result = load_settings(tmp_path, **GOOD_PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "django.db.backends.postgresql" and result.stdout.split()[-1] == "False"


@pytest.mark.parametrize(
    "override,message",
    [
        ({"DATABASE_URL": "sqlite:////tmp/x.sqlite3"}, "production needs PostgreSQL"),
        ({"CELERY_BROKER_URL": "memory://"}, "production needs Redis"),
        ({"CHAIN_RPC_URL": "embedded"}, "CHAIN_RPC_URL must be an http(s)/ws(s) JSON-RPC URL"),
        ({"CHAIN_PUBLIC_RPC_URL": "node:8545"}, "CHAIN_PUBLIC_RPC_URL must be an http(s)/ws(s) JSON-RPC URL"),
        ({"MILIAO_MASTER_KEY": "not-a-key"}, "MILIAO_MASTER_KEY must be a Fernet key"),
        ({"DATABASE_URL": "mysql://u:p@h/db"}, "only postgres:// and sqlite://"),
        ({"CELERY_BROKER_URL": "amqp://h"}, "CELERY_BROKER_URL must be redis://"),
        ({"CHAIN_RPC_URL": "ftp://node"}, "CHAIN_RPC_URL must be an http(s)/ws(s) JSON-RPC URL"),
        ({"CHAIN_ID": "anvil"}, "CHAIN_ID must be a positive integer"),
        ({"CHAIN_REGISTRY_ADDRESS": "0x1234"}, "CHAIN_REGISTRY_ADDRESS must be a 0x-prefixed 20-byte hex address"),
        ({"CHAIN_CONFIRMATIONS": "zero"}, "CHAIN_CONFIRMATIONS must be an integer of at least 1"),
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG must be a boolean"),
        ({"MILIAO_ENV": "staging"}, "MILIAO_ENV must be 'development' or 'production'"),
    ],
)
def test_bad_settings_stop_start_up_with_a_clear_error(tmp_path, override, message):
    result = load_settings(tmp_path, **{**GOOD_PRODUCTION, **override})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_production_passes_the_deploy_checks(tmp_path):
    """`check --deploy`: HSTS, https redirect behind the proxy's header, secure cookies, DEBUG off,
    a strong key, and drf-spectacular's own check (the schema generates without a warning)."""
    import secrets

    # Not DJANGO_ALLOW_ASYNC_UNSAFE either: the test session sets it for Playwright.
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV | {"DJANGO_ALLOW_ASYNC_UNSAFE"}}
    clean.update(GOOD_PRODUCTION, DJANGO_SECRET_KEY=secrets.token_urlsafe(50), MILIAO_STATE_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=clean, capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_no_secret_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert not [p for p in tracked if p.startswith("var/") or p.endswith(("secret_key", "master_key"))]



def test_env_example_lists_every_setting():
    import re

    source = (REPO / "platform" / "miliao" / "settings.py").read_text()
    read = set(re.findall(r'(?:environ\.get|_dev_secret|_env_flag|_env_int)\(\s*"([A-Z_]+)"', source))
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "CHAIN_RPC_URL", "DJANGO_SECRET_KEY"} <= read
    example = (REPO / "deploy" / "env.example").read_text()
    assert {name for name in read if f"\n{name}=" not in example} == set()
