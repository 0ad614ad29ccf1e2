"""Settings of the test project: everything that differs between environments comes
from the environment, the way entry discovers it (DATABASE_URL or POSTGRES_*,
CELERY_BROKER_URL, REDIS_URL, each also as NAME_FILE)."""

import os
import tempfile
from urllib.parse import parse_qsl, unquote, urlsplit

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def env(name, default=""):
    """Read NAME, or the file named by NAME_FILE (Docker/Kubernetes secrets).

    One trailing newline is stripped, as entry and the postgres image do, so both
    read the same secret from a file written with echo."""
    path = os.environ.get(name + "_FILE")
    if path:
        with open(path) as f:
            value = f.read()
        return value[:-1] if value.endswith("\n") else value
    return os.environ.get(name, default)


def database_from_url(url):
    """A tiny dj-database-url: Postgres-family schemes only, values unquoted."""
    u = urlsplit(url)
    if u.scheme not in ("postgres", "postgresql", "pgsql", "postgis"):
        raise ValueError("DATABASE_URL: unsupported scheme %r" % u.scheme)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(u.path.lstrip("/")),
        "USER": unquote(u.username or ""),
        "PASSWORD": unquote(u.password or ""),
        "HOST": u.hostname or "",
        "PORT": str(u.port or ""),
        "OPTIONS": dict(parse_qsl(u.query)),
    }


def database_from_postgres_vars():
    """cookiecutter-django's POSTGRES_* variables, used when DATABASE_URL is unset."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": env("POSTGRES_DB", "postgres"),
        "USER": env("POSTGRES_USER", "postgres"),
        "PASSWORD": env("POSTGRES_PASSWORD"),
        "HOST": env("POSTGRES_HOST", "postgres"),
        "PORT": env("POSTGRES_PORT", "5432"),
    }


SECRET_KEY = env("DJANGO_SECRET_KEY", "insecure-test-only-key")
DEBUG = env("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "shop",
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "djangoapp.urls"
WSGI_APPLICATION = "djangoapp.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

_database_url = env("DATABASE_URL")
DATABASES = {
    "default": database_from_url(_database_url) if _database_url else database_from_postgres_vars()
}

REDIS_URL = env("REDIS_URL", "redis://redis:6379/0")

# Celery reads CELERY_BROKER_URL from the environment itself; the setting covers the
# _FILE form.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "amqp://guest:guest@rabbitmq:5672//")
CELERY_TASK_DEFAULT_QUEUE = env("DJANGOAPP_QUEUE", "djangoapp")
CELERY_TASK_IGNORE_RESULT = True  # tasks write their results to the database
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = env(
    "DJANGOAPP_BEAT_SCHEDULE", os.path.join(tempfile.gettempdir(), "celerybeat-schedule")
)
CELERY_BEAT_SCHEDULE = {
    "tick": {"task": "shop.tasks.tick", "schedule": 1.0},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}
