# A WSGI app for supervise's Procfile test: /slow takes 2 s.
import sys
import time


def application(environ, start_response):
    body = b"ok\n"
    if environ["PATH_INFO"] == "/slow":
        print("slow request started", file=sys.stderr, flush=True)
        time.sleep(2)
        body = b"slow done\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
