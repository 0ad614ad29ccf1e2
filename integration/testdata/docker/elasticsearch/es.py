"""Answers GET /_cluster/health like a single green node; 404 for anything else."""
import http.server
import json
import signal
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] != "/_cluster/health":
            self.send_error(404)
            return
        body = json.dumps({"cluster_name": "stand-in", "status": "green", "number_of_nodes": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
http.server.ThreadingHTTPServer(("0.0.0.0", 9200), Handler).serve_forever()
