"""Miliao settings, read from the environment.

Every setting has a development default so that `make demo` needs no server of its own:
SQLite, a folder broker (miliao/broker.py) and the anvil chain node that `manage.py demo`
starts on 127.0.0.1:8545. With MILIAO_ENV=production
the defaults are refused and every secret must come from the environment;
deploy/env.example lists them all.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from miliao.basemap import basemap_from

REPO_DIR = Path(__file__).resolve().parents[2]
PLATFORM_DIR = REPO_DIR / "platform"

MILIAO_ENV = os.environ.get("MILIAO_ENV", "development")
if MILIAO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(
        f"MILIAO_ENV must be 'development' or 'production', not {MILIAO_ENV!r}."
    )
PRODUCTION = MILIAO_ENV == "production"

# Production secrets have no default: a missing one stops start-up with their names.
PRODUCTION_REQUIRED = (
    "DJANGO_SECRET_KEY",
    "MILIAO_MASTER_KEY",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CHAIN_RPC_URL",
    "CHAIN_KEYSTORE_PASSWORD",
    "DJANGO_ALLOWED_HOSTS",
)
if PRODUCTION:
    missing = [name for name in PRODUCTION_REQUIRED if not os.environ.get(name)]
    if missing:
        raise ImproperlyConfigured(
            "MILIAO_ENV=production but these settings are missing from the environment: "
            + ", ".join(missing)
            + ". deploy/env.example lists every setting."
        )

# Development state (SQLite file, generated dev secrets) lives outside git.
STATE_DIR = Path(os.environ.get("MILIAO_STATE_DIR", REPO_DIR / "var"))


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}.")


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ImproperlyConfigured(f"{name} must be an integer of at least {minimum}, not {raw!r}.")
    return int(raw)


def _dev_secret(name: str, make) -> str:
    """A secret from the environment, or one generated once into STATE_DIR (never git)."""
    value = os.environ.get(name)
    if value:
        return value
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = STATE_DIR / name.lower()
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _dev_secret("DJANGO_SECRET_KEY", lambda: secrets.token_urlsafe(50))
# Encrypts per-release keys and the anchoring keystore (Fernet, urlsafe base64, 32 bytes).
MILIAO_MASTER_KEY = _dev_secret("MILIAO_MASTER_KEY", lambda: Fernet.generate_key().decode())
try:
    Fernet(MILIAO_MASTER_KEY.encode())
except ValueError as exc:
    raise ImproperlyConfigured(
        "MILIAO_MASTER_KEY must be a Fernet key (32 bytes, urlsafe base64); "
        "make one with: python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())'"
    ) from exc

DEBUG = _env_flag("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")
    if h.strip()
]

# --- database ---------------------------------------------------------------
_database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{STATE_DIR / 'miliao.sqlite3'}"
try:
    _db = dj_database_url.parse(_database_url, conn_max_age=60, conn_health_checks=True)
except Exception as exc:  # dj_database_url raises several types for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc
if _db["ENGINE"] == "django.db.backends.sqlite3":
    if PRODUCTION:
        raise ImproperlyConfigured("DATABASE_URL: production needs PostgreSQL, not SQLite.")
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # IMMEDIATE transactions take the write lock up front, so two writers queue
    # instead of failing; this is what serialises appends to the event log on SQLite.
    _db["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    _db["CONN_MAX_AGE"] = 0
elif _db["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        f"DATABASE_URL: only postgres:// and sqlite:// are supported, not {_db['ENGINE']}."
    )
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- broker -----------------------------------------------------------------
# Development default: a folder under STATE_DIR that every process of the demo (web, workers,
# beat) shares without a server (miliao/broker.py: kombu's filesystem transport, written and
# taken by atomic renames). memory:// lives inside one process and cannot be shared;
# production refuses both and needs Redis.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://localhost/")
_broker_scheme = urlparse(CELERY_BROKER_URL).scheme
if _broker_scheme not in {"filesystem", "memory", "redis", "rediss"}:
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL must be redis://, rediss://, filesystem:// or memory://, "
        f"not {CELERY_BROKER_URL!r}."
    )
if PRODUCTION and _broker_scheme in {"memory", "filesystem"}:
    raise ImproperlyConfigured(f"CELERY_BROKER_URL: production needs Redis, not {_broker_scheme}://.")
# True for the server-less brokers of development (the demo, the smoke test).
EMBEDDED_BROKER = _broker_scheme in {"memory", "filesystem"}
if _broker_scheme == "filesystem":
    BROKER_DIR = STATE_DIR / "broker"
    for _folder in ("messages", "staging", "processing", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT = "miliao.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "messages"),
        "data_folder_out": str(BROKER_DIR / "messages"),
        "staging_folder": str(BROKER_DIR / "staging"),
        "processing_folder": str(BROKER_DIR / "processing"),
        "control_folder": str(BROKER_DIR / "control"),
        "polling_interval": 0.25,
    }
# Queues. A long job never stalls the platform's own work: jobs and challenge scoring run
# on `jobs`; releases, imports, alerts and the beat's checks on `platform`; anchoring and the
# event-log verification (which compares anchored roots with the chain) on `ledger`.
JOBS_QUEUE, PLATFORM_QUEUE, LEDGER_QUEUE = "jobs", "platform", "ledger"
CELERY_TASK_DEFAULT_QUEUE = PLATFORM_QUEUE
CELERY_TASK_ROUTES = {
    "jobs.run": {"queue": JOBS_QUEUE},
    "innovation.score": {"queue": JOBS_QUEUE},
    "innovation.close": {"queue": JOBS_QUEUE},
    "provenance.anchor_events": {"queue": LEDGER_QUEUE},
    "provenance.verify_event_log": {"queue": LEDGER_QUEUE},
}
# Task state lives in the TaskProgress model, so Celery keeps no results.
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged only after it ran: a worker killed mid-task leaves it to be retried,
# which is safe because every task is idempotent (see progress.actions).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A running tracked task beats every TASK_HEARTBEAT_S; one whose beat is older than
# TASK_STALE_S lost its worker, and the recovery (at a worker's start and on the beat,
# every TASK_RECOVERY_S) fails it and what it was building (progress.recovery).
TASK_HEARTBEAT_S = _env_int("TASK_HEARTBEAT_S", 10)
TASK_STALE_S = _env_int("TASK_STALE_S", 120)
if TASK_STALE_S < 3 * TASK_HEARTBEAT_S:
    raise ImproperlyConfigured("TASK_STALE_S must be at least three times TASK_HEARTBEAT_S.")
TASK_RECOVERY_S = _env_int("TASK_RECOVERY_S", 60)

# --- chain ------------------------------------------------------------------
# The JSON-RPC node of the provenance chain. The development default is the anvil node that
# `manage.py demo` starts (and keeps under STATE_DIR/chain); production names its own node.
DEV_CHAIN_RPC_URL = "http://127.0.0.1:8545"
CHAIN_RPC_URL = os.environ.get("CHAIN_RPC_URL") or DEV_CHAIN_RPC_URL
if urlparse(CHAIN_RPC_URL).scheme not in {"http", "https", "ws", "wss"} or not urlparse(CHAIN_RPC_URL).hostname:
    raise ImproperlyConfigured(
        f"CHAIN_RPC_URL must be an http(s)/ws(s) JSON-RPC URL of a chain node, not {CHAIN_RPC_URL!r}."
    )
# The node address that lineage exports name for outside verifiers. The platform's own URL
# may carry credentials or be internal, so production publishes one only when it is set.
CHAIN_PUBLIC_RPC_URL = os.environ.get("CHAIN_PUBLIC_RPC_URL", "" if PRODUCTION else CHAIN_RPC_URL)
if CHAIN_PUBLIC_RPC_URL and urlparse(CHAIN_PUBLIC_RPC_URL).scheme not in {"http", "https", "ws", "wss"}:
    raise ImproperlyConfigured(
        f"CHAIN_PUBLIC_RPC_URL must be an http(s)/ws(s) JSON-RPC URL or empty, not {CHAIN_PUBLIC_RPC_URL!r}."
    )
_chain_id = os.environ.get("CHAIN_ID", "")
if _chain_id and not _chain_id.isdigit():
    raise ImproperlyConfigured(f"CHAIN_ID must be a positive integer, not {_chain_id!r}.")
CHAIN_ID = int(_chain_id) if _chain_id else None
# The anchoring account's key, in an encrypted V3 keystore (ledger/keystore.py). In
# development both are made on first use; production brings its own.
CHAIN_KEYSTORE = Path(os.environ.get("CHAIN_KEYSTORE") or STATE_DIR / "chain" / "anchor-keystore.json")
CHAIN_KEYSTORE_PASSWORD = _dev_secret("CHAIN_KEYSTORE_PASSWORD", lambda: secrets.token_urlsafe(32))
# Optional checks and locations: the account the keystore must hold, and the deployed
# registry (without one, development deploys a registry on first use; production refuses).
CHAIN_ACCOUNT_ADDRESS = os.environ.get("CHAIN_ACCOUNT_ADDRESS", "")
CHAIN_REGISTRY_ADDRESS = os.environ.get("CHAIN_REGISTRY_ADDRESS", "")
for _name, _value in (("CHAIN_ACCOUNT_ADDRESS", CHAIN_ACCOUNT_ADDRESS), ("CHAIN_REGISTRY_ADDRESS", CHAIN_REGISTRY_ADDRESS)):
    if _value and not (len(_value) == 42 and _value.startswith("0x") and not _value[2:].strip("0123456789abcdefABCDEF")):
        raise ImproperlyConfigured(f"{_name} must be a 0x-prefixed 20-byte hex address, not {_value!r}.")
# Where the demo's anvil node keeps its chain between runs (`anvil --state`).
CHAIN_DEV_STATE = STATE_DIR / "chain" / "anvil-state.json"


# Anchoring: how often the beat task batches new events, how many blocks make an anchor
# final, the most events in one batch, and the longest wait between tries while the node
# is down.
ANCHOR_INTERVAL_S = _env_int("ANCHOR_INTERVAL_S", 15)
CHAIN_CONFIRMATIONS = _env_int("CHAIN_CONFIRMATIONS", 1)
ANCHOR_MAX_BATCH = _env_int("ANCHOR_MAX_BATCH", 1_048_576)
ANCHOR_BACKOFF_MAX_S = _env_int("ANCHOR_BACKOFF_MAX_S", 300)
ANCHOR_RECEIPT_TIMEOUT_S = _env_int("ANCHOR_RECEIPT_TIMEOUT_S", 30)
# Access: how long a signed download link stays good, and the largest leaked file an
# auditor may upload for tracing.
MILIAO_DOWNLOAD_LINK_SECONDS = _env_int("MILIAO_DOWNLOAD_LINK_SECONDS", 600)
MILIAO_LEAK_UPLOAD_MAX_BYTES = _env_int("MILIAO_LEAK_UPLOAD_MAX_BYTES", 64 * 1024 * 1024)
# Federated jobs (Flower): the holders clip their update to this L2 norm; with per-record
# DP-SGD at each holder the aggregate gets this further noise multiplier (holder-level DP,
# reported on the model card); SecAgg+ quantizes within the clipping range and waits this
# long for a stage's replies before going on without the silent holders.
from sandbox.federated import run as _flower  # noqa: E402  (plain Python: the defaults live there)

FLOWER_CLIPPING_NORM = float(os.environ.get("FLOWER_CLIPPING_NORM", _flower.CLIPPING_NORM))
FLOWER_HOLDER_NOISE = float(os.environ.get("FLOWER_HOLDER_NOISE", _flower.HOLDER_NOISE))
FLOWER_SECAGG_CLIPPING_RANGE = float(os.environ.get("FLOWER_SECAGG_CLIPPING_RANGE", _flower.SECAGG_CLIPPING_RANGE))
FLOWER_SECAGG_TIMEOUT_S = float(os.environ.get("FLOWER_SECAGG_TIMEOUT_S", _flower.SECAGG_TIMEOUT_S))
# The platform's standing SuperLink (sandbox.federated.deploy.SuperLink): its address
# (host:port, every API) and the federation's CA that its certificate is verified against.
# `manage.py demo` starts one with its state (TLS files, database) in FLOWER_STATE_DIR.
FLOWER_STATE_DIR = Path(os.environ.get("FLOWER_STATE_DIR") or STATE_DIR / "flower")
FLOWER_SUPERLINK = os.environ.get("FLOWER_SUPERLINK", "127.0.0.1:9093")
FLOWER_ROOT_CERTIFICATES = Path(os.environ.get("FLOWER_ROOT_CERTIFICATES")
                                or FLOWER_STATE_DIR / "superlink" / "tls" / "ca.crt")
# What one job, or one challenge submission, may bring out of its folder (sandbox.outputs):
# its total size and number of files; beyond them the output is refused, not cut.
MILIAO_JOB_OUTPUT_MAX_BYTES = _env_int("MILIAO_JOB_OUTPUT_MAX_BYTES", 64 * 1024 * 1024)
MILIAO_JOB_OUTPUT_MAX_FILES = _env_int("MILIAO_JOB_OUTPUT_MAX_FILES", 100)
MILIAO_SUBMISSION_OUTPUT_MAX_BYTES = _env_int("MILIAO_SUBMISSION_OUTPUT_MAX_BYTES", 16 * 1024 * 1024)
# Code-to-data (PySyft): the domain of the datasite emails the platform gives bureaus and
# submitters in its PySyft folders.
SYFT_DATASITE_DOMAIN = os.environ.get("SYFT_DATASITE_DOMAIN", "miliao.local")
CELERY_BEAT_SCHEDULE = {
    "anchor-events": {"task": "provenance.anchor_events", "schedule": float(ANCHOR_INTERVAL_S)},
    "expiring-licences": {"task": "defense.check_expiring_licences", "schedule": 24 * 3600.0},
    "close-due-challenges": {"task": "innovation.close_due_challenges",
                             "schedule": float(_env_int("CHALLENGE_CLOSE_CHECK_S", 60))},
    "recover-lost-tasks": {"task": "progress.recover_lost_tasks", "schedule": float(TASK_RECOVERY_S)},
}

# --- spatial -----------------------------------------------------------------
# The bureau's extent in CGCS2000 lon/lat (lon_min,lat_min,lon_max,lat_max): ingest refuses
# units outside it. The default is Shanghai.
try:
    MILIAO_EXTENT = tuple(float(v) for v in os.environ.get("MILIAO_EXTENT", "120.8,30.6,122.2,31.95").split(","))
    if len(MILIAO_EXTENT) != 4 or not (MILIAO_EXTENT[0] < MILIAO_EXTENT[2] and MILIAO_EXTENT[1] < MILIAO_EXTENT[3]):
        raise ValueError
except ValueError as exc:
    raise ImproperlyConfigured("MILIAO_EXTENT must be lon_min,lat_min,lon_max,lat_max with min < max.") from exc

# --- email (alerts) ---------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "miliao@localhost")

# --- Django -----------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "accounts",
    "provenance",
    "progress",
    "catalog",
    "corpora",
    "releases",
    "access",
    "budgets",
    "defense",
    "jobs",
    "federation",
    "innovation",
    "discovery",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from the web server process (gunicorn), before sessions and
    # the database are touched; `collectstatic` fills STATIC_ROOT first.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees the response a view returned: a bare 405 becomes the site's page.
    "miliao.middleware.MethodNotAllowedPageMiddleware",
    # An action's error that a view let through becomes the site's page: Refused 403,
    # Conflict 409, InvalidInput 400, each with its reason.
    "miliao.middleware.ActionErrorPageMiddleware",
]

ROOT_URLCONF = "miliao.urls"
WSGI_APPLICATION = "miliao.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [REPO_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "zh-hans"
# Each language is named in itself, in every language: the switch reads "中文" and "English".
LANGUAGES = [("zh-hans", "中文"), ("en", "English")]
LOCALE_PATHS = [PLATFORM_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# frontend/vendor/: the npm browser libraries (Leaflet, ECharts, axe-core) that scripts/bootstrap.sh
# installs and copies there; pages load them as {% static "vendor/leaflet/leaflet.js" %}.
STATICFILES_DIRS = [REPO_DIR / "static", ("vendor", REPO_DIR / "frontend" / "vendor")]
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or STATE_DIR / "static")
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise serves it, once collected
# Production serves hashed, compressed copies (`manage.py collectstatic` writes them and
# their manifest; a page naming a file that is not in the manifest fails loudly). Development
# and the tests serve the files as they are, so nothing needs collecting first.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- web hardening ------------------------------------------------------------
# Production sits behind a TLS-terminating proxy that sets X-Forwarded-Proto (and must
# strip it from what clients send): plain http is redirected to https, browsers are told
# to use https only (HSTS), and cookies never travel in clear.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = _env_flag("DJANGO_SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = _env_int("DJANGO_SECURE_HSTS_SECONDS", 365 * 24 * 3600, minimum=0) if PRODUCTION else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = PRODUCTION
SECURE_HSTS_PRELOAD = PRODUCTION
CSRF_FAILURE_VIEW = "portal.errors.csrf_failure"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
# The maps' basemap (static/miliao/map.js, Leaflet): a tile service given as an XYZ or WMTS
# (KVP) template with {z}/{x}/{y} and optionally {s}, e.g. 天地图's
# https://t{s}.tianditu.gov.cn/vec_w/wmts?...&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=KEY,
# its attribution and subdomains. Unset (the default, and offline), maps draw the platform's
# own open layers instead and fetch nothing from elsewhere.
try:
    MAP_BASEMAP = basemap_from(
        os.environ.get("MILIAO_MAP_BASEMAP_URL", ""),
        os.environ.get("MILIAO_MAP_BASEMAP_ATTRIBUTION", ""),
        os.environ.get("MILIAO_MAP_BASEMAP_SUBDOMAINS", ""),
        _env_int("MILIAO_MAP_BASEMAP_MAX_ZOOM", 18),
    )
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from exc
MAP_BASEMAP_URL = MAP_BASEMAP.url
MAP_BASEMAP_ATTRIBUTION = MAP_BASEMAP.attribution
MAP_BASEMAP_SUBDOMAINS = list(MAP_BASEMAP.subdomains)
# Content-Security-Policy (django-csp): scripts, styles, fonts and fetches from this site
# only, so no inline <script>, on*= handler or style="" attribute runs; images may also be
# data: URIs (Swagger UI's icons) and tiles of the configured basemap's hosts, no other.
# No plugins, no framing, forms post only here.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", *MAP_BASEMAP.hosts()],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        # Same-origin portal pages poll the API with their session (CSRF-checked).
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.AuditorsReadOnly"],
    "DEFAULT_SCHEMA_CLASS": "miliao.openapi.MiliaoAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "miliao.api.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Miliao API",
    "DESCRIPTION": "Privacy-preserving spatial data sharing: catalog, applications, "
    "provenance events and task progress. Authenticate with `Authorization: Token <key>`.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs are public, so that API clients and generators can fetch them
    # without a token; every operation they describe still needs one.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Request and response bodies as separate components where they differ (read-only and
    # write-only fields), so that generated clients get both right.
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set where two models' fields share a name (kind, status).
    "ENUM_NAME_OVERRIDES": {
        "JobKindEnum": "jobs.models.JobKind",
        "JobStatusEnum": "jobs.models.JobStatus",
        "PurposeCategoryEnum": "access.models.PurposeCategory",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "miliao.openapi.add_error_field_messages",
    ],
    # Swagger UI and ReDoc from the sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("MILIAO_LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"}},
}

# --- login throttling (django-axes) -------------------------------------------
# Both doors (the login page, /api/auth/token/) count failed logins per username and client
# address; at MILIAO_LOGIN_FAILURE_LIMIT the pair is refused with 429 for
# MILIAO_LOGIN_COOLOFF_S (each refused try restarts it), a successful login clears its count,
# and stewards unlock with `manage.py unlock_login`. Counters live in the database (axes'
# tables), so every worker process shares them, on PostgreSQL and SQLite alike.
# Behind a reverse proxy, MILIAO_CLIENT_IP_HEADER names the header that carries the client's
# address (e.g. X-Forwarded-For); the proxy must set it, or clients can pick their address.
from datetime import timedelta  # noqa: E402

INSTALLED_APPS += ["axes"]
# Last, as axes asks: it turns a lockout flagged during the request into the 429 answer.
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = [
    "accounts.throttling.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _env_int("MILIAO_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(seconds=_env_int("MILIAO_LOGIN_COOLOFF_S", 15 * 60))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.throttling.lockout_response"
AXES_CLIENT_IP_CALLABLE = "accounts.throttling.client_ip"
_client_ip_header = os.environ.get("MILIAO_CLIENT_IP_HEADER", "").strip()
if _client_ip_header and not _client_ip_header.replace("-", "").replace("_", "").isalnum():
    raise ImproperlyConfigured(f"MILIAO_CLIENT_IP_HEADER must be a header name, not {_client_ip_header!r}.")
MILIAO_CLIENT_IP_META = "HTTP_" + _client_ip_header.upper().replace("-", "_") if _client_ip_header else ""
# Successful logins are not logged by axes (the event log records token issuance); the
# admin's attempt lists are replaced by accounts.admin's, whose unlock records an event.
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False
