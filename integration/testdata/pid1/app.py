# A WSGI app for gunicorn: / answers at once, /slow after two seconds.
import time

def app(environ, start_response):
    body = b"ok"
    if environ["PATH_INFO"] == "/slow":
        print("slow request started", flush=True)
        time.sleep(2)
        body = b"done"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
