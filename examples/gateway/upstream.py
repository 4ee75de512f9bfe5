#!/usr/bin/env python3
"""A service that knows nothing of keygate: behind nginx or Caddy in gateway
mode, it answers every request with JSON echoing the method, the path as it
received it, and the X-Keygate-* headers the proxy added (who the key is).

    python3 examples/gateway/upstream.py [PORT]    # default 9000; 0 = any free port

Prints `listening on http://127.0.0.1:PORT` once it accepts connections.
Standard library only.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    # Keep-alive with the proxy (every answer has a Content-Length).
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        keygate = {
            name.lower(): value
            for name, value in self.headers.items()
            if name.lower().startswith("x-keygate-")
        }
        body = json.dumps(
            {"upstream": "echo", "method": self.command, "path": self.path, "keygate": keygate}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = answer

    def log_message(self, format, *args):  # quiet: one line per request is noise here
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    server = ThreadingHTTPServer(("127.0.0.1", port), Echo)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
