#!/usr/bin/env python3
"""Revocation across instances (SPEC §9): how long after a deactivation
through instance A does instance B refuse the key?

Each trial creates a key through A, verifies it through B until B has it
cached, deactivates it through A, then verifies it through B every 5 ms
until B refuses it. Prints p50, p99 and max over the trials, measured from
the moment A's deactivation answered (the change is committed) and from
the moment it was sent. Standard library only.

    bench/revocation.py --a http://127.0.0.1:8101 --b http://127.0.0.1:8102 \\
        --admin-key ak_v1-... [--trials 100] [--label postgres]

Run by bench/revocation.sh, which starts the instances.
"""

import argparse
import http.client
import json
import statistics
import sys
import time
from urllib.parse import urlsplit


class Client:
    """One keep-alive connection to one instance."""

    def __init__(self, base):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.conn = None

    def request(self, method, path, body=None, key=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            headers = {"Content-Type": "application/json"}
            if key:
                headers["Authorization"] = f"Bearer {key}"
            try:
                data = None if body is None else json.dumps(body)
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
                return response.status, payload
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def verify(self, key):
        status, _ = self.request("POST", "/api-keys/verify", {"api_key": key})
        return status


def percentile(values, p):
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", required=True)
    parser.add_argument("--b", required=True)
    parser.add_argument("--admin-key", required=True)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--label", default="")
    parser.add_argument("--poll-ms", type=float, default=5.0)
    parser.add_argument("--give-up-s", type=float, default=5.0)
    args = parser.parse_args()

    a, b = Client(args.a), Client(args.b)
    after_commit, after_send = [], []
    for trial in range(args.trials):
        status, body = a.request(
            "POST", "/api-keys", {"name": f"revocation-{trial}"}, key=args.admin_key
        )
        if status != 201 and status != 200:
            sys.exit(f"create answered {status}: {body[:200]!r}")
        created = json.loads(body)
        key, entity_id = created["api_key"], created["entity"]["id"]
        deadline = time.monotonic() + args.give_up_s
        while b.verify(key) != 200:
            if time.monotonic() > deadline:
                sys.exit("B never accepted a new key")
            time.sleep(0.005)
        sent = time.monotonic()
        status, body = a.request(
            "POST", f"/api-keys/{entity_id}/deactivate", key=args.admin_key
        )
        committed = time.monotonic()
        if status != 200:
            sys.exit(f"deactivate answered {status}: {body[:200]!r}")
        while True:
            if b.verify(key) != 200:
                refused = time.monotonic()
                break
            if time.monotonic() - committed > args.give_up_s:
                sys.exit(f"B still accepts a key deactivated {args.give_up_s} s ago")
            time.sleep(args.poll_ms / 1000)
        after_commit.append((refused - committed) * 1000)
        after_send.append((refused - sent) * 1000)
        a.request("DELETE", f"/api-keys/{entity_id}", key=args.admin_key)

    def line(values):
        return (
            f"p50 {statistics.median(values):6.1f} ms  p99 {percentile(values, 99):6.1f} ms  "
            f"max {max(values):6.1f} ms"
        )

    label = f"{args.label}: " if args.label else ""
    print(f"{label}{args.trials} trials, B refuses the key")
    print(f"  after A's answer: {line(after_commit)}")
    print(f"  after A's request: {line(after_send)}")


if __name__ == "__main__":
    main()
