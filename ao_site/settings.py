"""ao's one settings module: everything comes from the environment.

Embedded default (nothing set): SQLite in ``AO_HOME``, in-memory channel layer, Celery on an
in-memory transport with worker and beat inside the ``ao start`` process.
``DATABASE_URL`` switches to PostgreSQL; ``REDIS_URL`` to Redis for the Celery broker, the
channel layer and the cache, and ``ao web`` / ``ao worker`` / ``ao beat`` then run as separate processes.
``AO_ENV=production`` turns on the deployment hardening that ``manage.py check --deploy`` wants.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ

from ao_site.home import ao_home, read_or_create_secret
from ao_site.hosts import machine_host_name

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

AO_ENV = env.str("AO_ENV", default="development")
if AO_ENV not in ("development", "production"):
    raise environ.ImproperlyConfigured(f"AO_ENV must be 'development' or 'production', not {AO_ENV!r}")
PRODUCTION = AO_ENV == "production"

AO_HOME = ao_home()
AO_URL = env.str("AO_URL", default="http://127.0.0.1:8000").rstrip("/")
AO_WORKSPACES_ROOT = Path(env.str("AO_WORKSPACES_ROOT", default=str(AO_HOME / "workspaces")))
AO_CONFIG = env.str("AO_CONFIG", default="")
# Tests that need PostgreSQL or Redis fail instead of skipping when this is set (CI sets it).
AO_REQUIRE_SERVICES = env.bool("AO_REQUIRE_SERVICES", default=False)
# Default reconciliation sweep interval in seconds (projects may override in config).
AO_SWEEP_INTERVAL = env.float("AO_SWEEP_INTERVAL", default=30.0)
# Seconds between the activity watcher's looks at the agents' terminals (sessions/flows/watch.py); 0: off.
AO_ACTIVITY_WATCH_INTERVAL = env.float("AO_ACTIVITY_WATCH_INTERVAL", default=1.0)
# This machine's name as an agent host: its worker consumes the queue "host.<name>".
AO_HOST_NAME = env.str("AO_HOST_NAME", default="") or machine_host_name()
# Live sessions one agent host may run at once (admission control; projects add their own cap).
AO_MAX_SESSIONS_PER_HOST = env.int("AO_MAX_SESSIONS_PER_HOST", default=10)
# An agent host's worker writes its heartbeat this often (seconds); a host not seen for
# AO_HOST_GONE_AFTER seconds is gone: its running sessions are marked and their owners told.
AO_HOST_HEARTBEAT = env.float("AO_HOST_HEARTBEAT", default=10.0)
AO_HOST_GONE_AFTER = env.float("AO_HOST_GONE_AFTER", default=60.0)
# How long work a process died holding waits before another takes it (seconds; docs/OPERATIONS.md,
# "Bounds on work a dead process held"). Shorter redoes it sooner, but a live holder slower than
# its lease (a badly overloaded machine) loses it: a message claimed and not typed within
# AO_MESSAGE_CLAIM_LEASE is queued again; a sweep's lease (renewed every third of
# AO_SWEEP_LEASE while it runs) lapses that long after its process died; a spawn whose start no
# worker began within AO_START_RETRY_AFTER (broker down, or restarted empty) is enqueued again.
AO_MESSAGE_CLAIM_LEASE = env.float("AO_MESSAGE_CLAIM_LEASE", default=30.0)
AO_SWEEP_LEASE = env.float("AO_SWEEP_LEASE", default=45.0)
AO_START_RETRY_AFTER = env.float("AO_START_RETRY_AFTER", default=60.0)
for _name in ("AO_MESSAGE_CLAIM_LEASE", "AO_SWEEP_LEASE", "AO_START_RETRY_AFTER"):
    if globals()[_name] <= 0:
        raise environ.ImproperlyConfigured(f"{_name} must be more than 0")
# Largest prompt or message ao accepts, in characters.
AO_MAX_PROMPT_CHARS = env.int("AO_MAX_PROMPT_CHARS", default=100_000)
# Shared secret of the GitHub webhook (Settings → Webhooks); unsigned deliveries are refused.
AO_GITHUB_WEBHOOK_SECRET = env.str("AO_GITHUB_WEBHOOK_SECRET", default="")
# Largest webhook body accepted (GitHub caps payloads at 25 MB; the events ao uses are small).
AO_WEBHOOK_MAX_BYTES = env.int("AO_WEBHOOK_MAX_BYTES", default=5 * 1024 * 1024)
# Webhook deliveries for a project within this many seconds are refreshed together: one batched
# read of the union of the sessions they concern (0: a refresh per delivery).
AO_WEBHOOK_COALESCE_SECONDS = env.float("AO_WEBHOOK_COALESCE_SECONDS", default=2.0)
# SCMs without a change probe (`local`): PR facts of sessions without a PR or with CI pending are
# read every sweep; all of a project's PRs every this many seconds (webhooks bring changes sooner).
# It bounds how late ao sees what nothing announces, e.g. a conflict after the base branch moved.
AO_PR_SYNC_IDLE_INTERVAL = env.float("AO_PR_SYNC_IDLE_INTERVAL", default=60.0)
# While webhooks arrive for a project, they bring the changes; this safety sync (GitHub: the change
# probe's conditional reads, instead of every sweep) catches a missed delivery within the minute.
AO_PR_SYNC_WEBHOOK_INTERVAL = env.float("AO_PR_SYNC_WEBHOOK_INTERVAL", default=60.0)
# With an SCM that tells what changed cheaply (GitHub: ETag-guarded REST reads, a 304 is free),
# the sweep reads only changed PRs; every PR is read anyway this often (a safety net for what
# the change probe cannot see, e.g. a third-party check on a PR that reported none yet).
AO_PR_SYNC_FULL_INTERVAL = env.float("AO_PR_SYNC_FULL_INTERVAL", default=3600.0)
# ... and looks this often whether the open PRs' base branches moved (a push straight to a base
# can make its PRs conflict; a PR merged into it is seen at the next sweep anyway).
AO_PR_SYNC_BASE_INTERVAL = env.float("AO_PR_SYNC_BASE_INTERVAL", default=300.0)
# Without a worker (the CLI in embedded mode), how long `ao spawn`/`ao send` watch a busy or
# starting agent to deliver messages before leaving them queued for `ao start`'s sweeps.
AO_INLINE_DELIVERY_WAIT = env.float("AO_INLINE_DELIVERY_WAIT", default=30.0)
# Chat (sessions/dashboard/views_chat.py): Slack's app signing secret (Basic Information → Signing Secret),
# the secret_token given to Telegram's setWebhook, and the Telegram bot token (for outbound calls
# such as setWebhook; replies ride on the webhook response). Unset: that platform's endpoint
# refuses every request (401).
AO_SLACK_SIGNING_SECRET = env.str("AO_SLACK_SIGNING_SECRET", default="")
AO_TELEGRAM_SECRET_TOKEN = env.str("AO_TELEGRAM_SECRET_TOKEN", default="")
AO_TELEGRAM_BOT_TOKEN = env.str("AO_TELEGRAM_BOT_TOKEN", default="")
# The mail server of the email notifier (Django's names; a notifier's own settings win, see
# docs/CONFIG.md "E-mail"). EMAIL_USE_TLS is STARTTLS (port 587), EMAIL_USE_SSL implicit TLS (465).
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ao@localhost")
# Drift watch (sessions/watchers/drift.py): how often a project is checked, and its thresholds.
AO_DRIFT_INTERVAL = env.float("AO_DRIFT_INTERVAL", default=300.0)
AO_DRIFT_NO_COMMIT_MINUTES = env.float("AO_DRIFT_NO_COMMIT_MINUTES", default=45.0)
AO_DRIFT_MAX_LINES = env.int("AO_DRIFT_MAX_LINES", default=800)
AO_DRIFT_MAX_FILES = env.int("AO_DRIFT_MAX_FILES", default=30)
AO_DRIFT_OUTSIDE_FILES = env.int("AO_DRIFT_OUTSIDE_FILES", default=5)
AO_DRIFT_SAME_CHECK_CYCLES = env.int("AO_DRIFT_SAME_CHECK_CYCLES", default=3)
# A check flagged flaky stays flagged this many hours (sessions/domain/flaky.py, selectors.is_flaky).
AO_FLAKY_CHECK_HOURS = env.float("AO_FLAKY_CHECK_HOURS", default=72.0)
# Open event streams (/api/v1/events/stream) and browser terminals re-check every this many
# seconds that the token, login and role they were opened with still hold; else they end.
AO_ACCESS_RECHECK_SECONDS = env.float("AO_ACCESS_RECHECK_SECONDS", default=30.0)

SECRET_KEY = env.str("AO_SECRET_KEY", default="") or read_or_create_secret(AO_HOME / "secret_key")
DEBUG = env.bool("AO_DEBUG", default=False)

_url_host = AO_URL.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
ALLOWED_HOSTS = env.list("AO_ALLOWED_HOSTS", default=sorted({_url_host, "localhost", "127.0.0.1", "[::1]"}))
# Origins (scheme, host and port) besides ao's own that may post forms and open websockets with a
# signed-in browser's cookies (ao_site/origins.py). ao's own origin is the request's, plus AO_URL
# when set: the default AO_URL is not trusted when ao serves elsewhere (a page on that port is not ao).
CSRF_TRUSTED_ORIGINS = env.list(
    "AO_CSRF_TRUSTED_ORIGINS", default=[AO_URL] if env.str("AO_URL", default="") else []
)

# Not "daphne": its app only makes `runserver` serve with daphne (ao serves through `ao web` and
# `ao start`, which import daphne's server themselves), and it would load Twisted into every command.
# The admin's modules load with the URLs, not while Django sets up (ao_site/admin_app.py).
INSTALLED_APPS = [
    "ao_site.admin_app.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "sessions.apps.AgentSessionsConfig",
    "integrations.apps.IntegrationsConfig",
    "reactions.apps.ReactionsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "ao_site.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "sessions.core.audit.AuditContextMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a refused login into the lockout page
]

ROOT_URLCONF = "ao_site.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "ao_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- data -------------------------------------------------------------------------------------
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # An unreachable host fails in seconds instead of hanging `ao start`.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 10)
else:
    DATABASES = {
        "default": {
            "ENGINE": "ao_site.sqlite3",  # Django's, with the file made 0600 whatever AO_HOME's mode
            "NAME": AO_HOME / "ao.sqlite3",
            # Tests use an in-memory database, as with Django's own engine name (which tools such
            # as pytest-django recognise; said here so they do for ao's engine too).
            "TEST": {"NAME": ":memory:"},
            "OPTIONS": {
                # WAL lets the dashboard read while background work writes; IMMEDIATE takes the
                # write lock at BEGIN so concurrent writers queue instead of failing mid-transaction.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- background work and channel layer ----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# Embedded: one `ao start` process holds web, worker and beat. With Redis: separate processes.
AO_EMBEDDED = not REDIS_URL

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    # redis-py 8 defaults to a 5 s socket timeout, which drops idle pub/sub connections of the
    # channel layer; keep connections alive and let health checks find dead ones instead.
    _redis_host = {
        "address": REDIS_URL,
        "socket_timeout": None,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        "health_check_interval": 30,
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [_redis_host], "prefix": env.str("AO_CHANNEL_PREFIX", default="ao")},
        }
    }
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"socket_timeout": None, "socket_keepalive": True}
    # One cache for every process: API throttling per token and "is it due?" marks (drift watch)
    # would otherwise count per process.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("AO_CHANNEL_PREFIX", default="ao"),
            "OPTIONS": {"socket_connect_timeout": 5, "socket_timeout": 5},
        }
    }
else:
    CELERY_BROKER_URL = "memory://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.1}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Embedded mode: processes without a worker (the CLI, a shell) run background work inline;
# `ao start` turns this off for itself once its worker threads run, and hands work to them.
CELERY_TASK_ALWAYS_EAGER = AO_EMBEDDED and not env.bool("AO_EMBEDDED_SERVER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "ao"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Keep Django's LOGGING (and its secret-redacting filter) in `ao worker` / `ao beat` too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- auth, i18n, static ---------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# A project's admins get the admin permissions to configure that project (sessions/dashboard/admin_scope.py).
# axes first: it refuses a password login whose lockout holds before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "sessions.dashboard.admin_scope.ProjectAdminBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Password guessing (django-axes via sessions/core/login_lockout.py; docs/SECURITY.md). Failed logins
# on /accounts/login/ and /admin/login/ are counted in the database, which every process shares
# in both modes. Reaching a limit refuses logins there, the right password too, for
# AO_LOGIN_LOCKOUT_MINUTES after the last failure; a success clears that account's failures from
# that address. Limits (0 turns a rule off): one account from one address; any accounts from one
# address (password spraying); one account from any address (off: anyone could lock anyone out).
AO_LOGIN_FAILURE_LIMIT = env.int("AO_LOGIN_FAILURE_LIMIT", default=10)
AO_LOGIN_ADDRESS_FAILURE_LIMIT = env.int("AO_LOGIN_ADDRESS_FAILURE_LIMIT", default=50)
AO_LOGIN_ACCOUNT_FAILURE_LIMIT = env.int("AO_LOGIN_ACCOUNT_FAILURE_LIMIT", default=0)
AO_LOGIN_LOCKOUT_MINUTES = env.float("AO_LOGIN_LOCKOUT_MINUTES", default=15.0)
if AO_LOGIN_LOCKOUT_MINUTES <= 0:
    raise environ.ImproperlyConfigured("AO_LOGIN_LOCKOUT_MINUTES must be more than 0")
# Reverse proxies (addresses or networks) whose X-Forwarded-For names the client; else the TCP peer.
AO_TRUSTED_PROXIES = env.list("AO_TRUSTED_PROXIES", default=[])
_login_rules = [
    (["username", "ip_address"], AO_LOGIN_FAILURE_LIMIT),
    ("ip_address", AO_LOGIN_ADDRESS_FAILURE_LIMIT),
    ("username", AO_LOGIN_ACCOUNT_FAILURE_LIMIT),
]
AXES_LOCKOUT_PARAMETERS = [parameters for parameters, limit in _login_rules if limit > 0]
AO_LOGIN_FAILURE_LIMITS = [limit for _, limit in _login_rules if limit > 0]
AXES_ENABLED = bool(AXES_LOCKOUT_PARAMETERS)
AXES_FAILURE_LIMIT = max(AO_LOGIN_FAILURE_LIMITS, default=1)
AXES_COOLOFF_TIME = timedelta(minutes=AO_LOGIN_LOCKOUT_MINUTES)
AXES_RESET_ON_SUCCESS = True
AXES_HANDLER = "sessions.core.login_lockout.LoginLockoutHandler"
AXES_CLIENT_IP_CALLABLE = "sessions.core.login_lockout.client_address"
AXES_LOCKOUT_CALLABLE = "sessions.dashboard.views_auth.login_locked_out"
AXES_DISABLE_ACCESS_LOG = True  # successful logins are not recorded (the table would only grow)
AXES_ENABLE_ADMIN = False  # sessions/dashboard/admin_lockout.py: superusers only, audited, with a lift action
AXES_ALLOWED_CORS_ORIGINS = AO_URL

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = AO_HOME / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Serve straight from the app and project static dirs: no collectstatic step for `ao start`.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- REST API (/api/v1/, sessions/api/) --------------------------------------------------------------
# Bearer ao_... user tokens first (their 401 carries WWW-Authenticate), then an agent's session
# token (report/pr only), then the browser's session with CSRF.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "sessions.api.auth.ApiTokenAuthentication",
        "sessions.api.auth.SessionTokenAuthentication",
        "sessions.api.auth.CsrfSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["sessions.api.permissions.IsPersonOrBot"],
    "DEFAULT_THROTTLE_CLASSES": ["sessions.api.permissions.TokenRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "sessions.api.pagination.AoCursorPagination",
    "DEFAULT_SCHEMA_CLASS": "sessions.api.schema.AoAutoSchema",
    "EXCEPTION_HANDLER": "sessions.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Requests per token (or signed-in user, or address) and period; empty turns throttling off.
AO_API_THROTTLE_RATE = env.str("AO_API_THROTTLE_RATE", default="1200/min") or None
# Largest API request body (a prompt of AO_MAX_PROMPT_CHARS fits); bigger is refused with 413.
AO_API_MAX_BODY_BYTES = env.int("AO_API_MAX_BODY_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(AO_API_MAX_BODY_BYTES, AO_WEBHOOK_MAX_BYTES)
# Any request's body, refused with a 413 while it arrives (ao_site/bodylimit.py): the largest body
# ao takes (an API call, a webhook, a 1 MB config file uploaded as a form) and room for the form.
AO_MAX_REQUEST_BYTES = env.int(
    "AO_MAX_REQUEST_BYTES", default=max(DATA_UPLOAD_MAX_MEMORY_SIZE, 1024 * 1024) + 256 * 1024
)
SPECTACULAR_SETTINGS = {
    "TITLE": "ao API",
    "DESCRIPTION": (
        "Drive ao from bots, orchestrators and scripts. Authenticate with `Authorization: Bearer ao_...` "
        '(`ao token create NAME`). Errors are `{"error": {"code", "message", "field"?}}`. '
        "Live timeline: `GET /api/v1/events/stream` (server-sent events)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],  # the schema holds no secrets
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc from the drf-spectacular-sidecar package: served locally, no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ActorEnum": "sessions.models.Actor",
        "MessageStateEnum": "sessions.models.Message.State",
        "PullRequestStateEnum": "sessions.domain.lifecycle.PRState",
    },
}

# --- production hardening (`manage.py check --deploy` is clean with AO_ENV=production) -----------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("AO_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("AO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("AO_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("AO_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # /healthz is probed over plain HTTP by load balancers.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- logging: secrets never reach the log -------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "ao_site.logredact.RedactSecretsFilter"},
        "channel_outage": {"()": "ao_site.outages.ChannelLayerOutageFilter"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.str("AO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "celery": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # failed logins and lockouts; not a line per command at startup
        # a line per Redis outage, not a traceback per reconnection attempt (ao_site/outages.py)
        "channels_redis.pubsub": {"filters": ["channel_outage"]},
        "channels_redis.core": {"filters": ["channel_outage"]},
        "sessions.core.realtime": {"filters": ["channel_outage"]},  # its broadcasts while Redis is down
    },
}

# ao's Celery app is not loaded here: a command that sends no task (`ao status`) need not pay for
# Celery and its broker client. Whatever defines or sends a task loads it first, which makes it the
# default app of every thread: sessions.core.jobs when it enqueues one, the tasks modules
# (sessions.tasks, reactions.tasks), ao_site.asgi, the worker and beat commands.
