"""The single-host compose files and the platform image, checked offline by the tools an
operator would use: `docker-compose config` (Debian's docker-compose, no engine needed), the
Compose Specification's JSON schema (check-jsonschema's vendored copy), hadolint for the
Dockerfile; and what the platform needs of them (a worker per queue, one beat, healthchecks,
no secrets in the file, the SuperLink as the platform runs it)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILES = [DEPLOY / "compose.yaml", DEPLOY / "besu" / "compose.yaml"]
PLATFORM_SERVICES = {"migrate", "web", "worker-jobs", "worker-platform", "worker-ledger", "beat", "superlink"}
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    if not path:
        pytest.fail(f"{name} is not installed: `make test` (scripts/bootstrap.sh --test) installs it")
    return path


def compose_config(path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "MILIAO_ENV_FILE": str(DEPLOY / "env.example"), "MILIAO_BESU_NODE_DIR": "/nonexistent",
               **(env or {})}
    return subprocess.run([tool("docker-compose"), "--file", str(path), "config", "--quiet"], env=environ,
                          capture_output=True, text=True, timeout=60, cwd=path.parent, check=False)


@pytest.fixture(scope="module")
def compose_schema():
    """The Compose Specification's JSON schema as check-jsonschema vendors it (its
    `--builtin-schema vendor.compose-spec`), applied in this process."""
    import importlib.resources
    import json

    import jsonschema

    schema = json.loads((importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
                         / "compose-spec.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())


def schema_errors(validator, path: Path) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(yaml.safe_load(path.read_text()))]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_compose_files_pass_docker_compose_and_the_compose_spec_schema(path, compose_schema):
    done = compose_config(path)
    assert done.returncode == 0, done.stderr
    assert schema_errors(compose_schema, path) == []


def test_broken_compose_files_are_refused_by_the_same_validators(tmp_path, compose_schema):
    # A misspelt healthcheck key: the schema refuses it.
    typo = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    typo["services"]["redis"]["healthcheck"]["intervall"] = typo["services"]["redis"]["healthcheck"].pop("interval")
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(typo))
    assert any("intervall" in error for error in schema_errors(compose_schema, tmp_path / "typo.yaml"))
    # A volume used but never declared: docker-compose's own resolution refuses it.
    undeclared = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    del undeclared["volumes"]["postgres-data"]
    (tmp_path / "undeclared.yaml").write_text(yaml.safe_dump(undeclared))
    done = compose_config(tmp_path / "undeclared.yaml")
    assert done.returncode != 0 and "postgres-data" in done.stderr


def test_a_worker_per_queue_one_beat_and_the_production_web_server(compose):
    from django.conf import settings

    services = compose["services"]
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {settings.CELERY_TASK_DEFAULT_QUEUE}
    served = {}
    for name, service in services.items():
        command = service.get("command") or []
        if command[:4] == ["celery", "-A", "miliao", "worker"]:
            served[command[command.index("--queues") + 1]] = name
    assert set(served) == routed == {settings.JOBS_QUEUE, settings.PLATFORM_QUEUE, settings.LEDGER_QUEUE}
    assert all(name == f"worker-{queue}" for queue, name in served.items())
    beats = [n for n, s in services.items() if (s.get("command") or [])[:4] == ["celery", "-A", "miliao", "beat"]]
    assert beats == ["beat"]
    web = services["web"]
    assert web["command"] == ["gunicorn", "--config", "platform/miliao/gunicorn_conf.py"]
    assert (REPO / web["command"][2]).is_file()
    assert web["ports"] == ["127.0.0.1:8000:8000"]  # only to the host's TLS proxy
    # The job jail's user namespaces: only the jobs worker runs without Docker's seccomp profile.
    unconfined = {n for n, s in services.items() if "seccomp=unconfined" in s.get("security_opt", [])}
    assert unconfined == {"worker-jobs"}
    assert not any(s.get("privileged") or s.get("cap_add") for s in services.values())


def test_every_long_running_service_has_a_healthcheck_and_the_platform_waits_for_its_stores(compose):
    services = compose["services"]
    assert set(services) == PLATFORM_SERVICES | {"db", "redis", "chain", "chain-volume"}
    for name, service in services.items():
        check = service.get("healthcheck", {})
        if name in {"migrate", "beat", "chain-volume"}:
            assert check.get("disable") is True
        else:
            assert check.get("test") and check.get("interval"), f"{name} has no healthcheck"
    for name in PLATFORM_SERVICES - {"superlink", "migrate"}:
        needs = services[name]["depends_on"]
        assert needs["db"]["condition"] == needs["redis"]["condition"] == "service_healthy", name
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        assert services[name]["image"] == services["web"]["image"]
        assert "miliao-state:/var/lib/miliao" in services[name]["volumes"], name
    assert services["worker-ledger"]["depends_on"]["chain"]["condition"] == "service_healthy"
    # State lives on named volumes: the database, the broker, the platform, the SuperLink, the chain.
    mounts = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert {"postgres-data", "redis-data", "miliao-state", "superlink-state", "besu-data"} <= mounts


def test_no_secret_is_written_in_the_compose_file(compose):
    secretish = re.compile(r"SECRET|PASSWORD|MASTER_KEY|PRIVATE|TOKEN", re.IGNORECASE)
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secretish.search(key):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), (name, key)
    # Everything the platform refuses to start without comes from the env file or the compose file.
    from django.conf import settings

    example = {line.split("=", 1)[0] for line in (DEPLOY / "env.example").read_text().splitlines()
               if re.match(r"^[A-Z_]+=", line)}
    set_here = set(compose["x-platform"]["environment"])
    assert set(settings.PRODUCTION_REQUIRED) <= example | set_here
    assert compose["x-platform"]["env_file"] == ["${MILIAO_ENV_FILE:-./miliao.env}"]
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert {"/miliao.env", "/secrets/", "/besu/network/"} <= set(ignored)


def test_the_superlink_runs_as_the_platform_runs_it_with_tls_node_auth_and_state_on_a_volume(compose):
    superlink = compose["services"]["superlink"]
    command = superlink["command"]
    assert command[0] == "flower-superlink"
    flags = dict(arg.removeprefix("--").split("=", 1) if "=" in arg else (arg.removeprefix("--"), True)
                 for arg in command[1:])
    assert flags["enable-supernode-auth"] is True and "insecure" not in flags
    assert {flags["ssl-ca-certfile"], flags["ssl-certfile"], flags["ssl-keyfile"]} == {
        "/run/flower/ca.crt", "/run/flower/superlink.crt", "/run/flower/superlink.key"}
    assert flags["database"].startswith("/var/lib/flower/")
    assert "superlink-state:/var/lib/flower" in superlink["volumes"]
    assert superlink["env_file"] == [] and superlink["secrets"] == []  # none of the platform's secrets
    # Every flag exists in the pinned Flower (read from its source, not imported: flwr loads slowly).
    flwr = metadata.distribution("flwr")
    source = "".join(Path(flwr.locate_file(f"flwr/{part}.py")).read_text()
                     for part in ("superlink/cli/flower_superlink", "common/args"))
    for flag in flags:
        assert f'"--{flag}"' in source, f"flower-superlink {metadata.version('flwr')} has no --{flag}"


def test_the_dockerfile_passes_hadolint_and_builds_the_image_the_platform_needs(tmp_path):
    dockerfile = DEPLOY / "Dockerfile"
    done = subprocess.run([tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "Dockerfile"
    broken.write_text(dockerfile.read_text().replace("FROM python:", "FRM python:"))
    assert subprocess.run([tool("hadolint"), str(broken)], capture_output=True, timeout=60, check=False).returncode != 0

    lines = [line for line in dockerfile.read_text().splitlines() if line and not line.startswith("#")]
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert froms[-1].startswith("python:3.11-")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"].startswith(">=3.11")
    text = dockerfile.read_text()
    assert "pip install ." in text and 'p.startswith("torch==")' in text  # pyproject's own pins
    assert "manage.py collectstatic --noinput" in text
    user = [line for line in lines if line.startswith("USER ")][-1].split()[1]
    assert user.split(":")[0] not in {"0", "root"}
    # What the build copies exists, and what must stay out of an image is ignored.
    for source in ("frontend/package.json", "frontend/package-lock.json", "pyproject.toml", "manage.py"):
        assert (REPO / source).is_file()
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", "deploy/secrets", "deploy/besu/network", "deploy/*.env"} <= set(ignored)


def test_the_image_vendors_every_browser_file_bootstrap_does_and_the_source_map_leaflet_names():
    # Production's collectstatic (hashed names) refuses a file that names a missing one:
    # leaflet.js ends with `sourceMappingURL=leaflet.js.map`.
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = set(re.findall(r"node_modules/[\w./-]+", bootstrap)) - {"node_modules/.installed-"}
    assert copied and all(path in dockerfile for path in copied), copied
    assert "node_modules/leaflet/dist/leaflet.js.map" in dockerfile


def test_init_host_fills_in_the_settings_and_secrets_that_compose_reads(tmp_path):
    import importlib.util
    import json
    import stat

    from cryptography.fernet import Fernet

    from ledger.keystore import load_account

    spec = importlib.util.spec_from_file_location("deploy_init_host", DEPLOY / "init_host.py")
    init = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(init)
    for name in ("compose.yaml", "env.example"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    assert init.main(["--host", "bad host", "--dir", str(tmp_path)]) == 2
    assert not (tmp_path / "miliao.env").exists()
    assert init.main(["--host", "miliao.planning.example.gov.cn", "--chain-id", "1337", "--dir", str(tmp_path)]) == 0

    environ = {k: v for k, v in os.environ.items() if k != "MILIAO_ENV_FILE"}
    done = subprocess.run([tool("docker-compose"), "--file", str(tmp_path / "compose.yaml"), "config"],
                          env={**environ, "MILIAO_BESU_NODE_DIR": "/nonexistent"}, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    web = yaml.safe_load(done.stdout)["services"]["web"]["environment"]
    password = (tmp_path / "secrets" / "postgres-password").read_text()
    assert web["DATABASE_URL"] == f"postgres://miliao:{password}@db:5432/miliao"
    assert web["DJANGO_ALLOWED_HOSTS"] == "miliao.planning.example.gov.cn" and web["CHAIN_ID"] == "1337"
    assert web["CELERY_BROKER_URL"] == "redis://redis:6379/0"  # compose's own, over env.example's
    Fernet(web["MILIAO_MASTER_KEY"].encode())
    assert len(web["DJANGO_SECRET_KEY"]) >= 50 and "change-me" not in done.stdout
    keystore = tmp_path / "secrets" / "anchor-keystore.json"
    assert load_account(keystore, web["CHAIN_KEYSTORE_PASSWORD"]).address.lower() == \
        "0x" + json.loads(keystore.read_text())["address"].lower().removeprefix("0x")
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "miliao.env").stat().st_mode) == 0o600
    # Never over an existing install.
    assert init.main(["--host", "miliao.planning.example.gov.cn", "--dir", str(tmp_path)]) == 2
    assert (tmp_path / "secrets" / "postgres-password").read_text() == password
