# No pidfile: under entry nothing needs to find the master by file.
wsgi_app = "app:app"
workers = 1
graceful_timeout = 10
