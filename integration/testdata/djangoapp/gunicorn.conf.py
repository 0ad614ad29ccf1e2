# gunicorn reads ./gunicorn.conf.py by itself, so the Procfile line stays free of shell
# syntax and the bind address comes from the environment.
import os

bind = [os.environ.get("DJANGOAPP_BIND", "0.0.0.0:8000")]
workers = int(os.environ.get("DJANGOAPP_WEB_WORKERS", "2"))
# A TERM lets requests in flight finish for this long; keep it below ENTRY_STOP_TIMEOUT.
graceful_timeout = int(os.environ.get("DJANGOAPP_GRACEFUL_TIMEOUT", "20"))
accesslog = "-"
