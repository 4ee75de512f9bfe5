"""Helpers for the dashboard's browser tests: a `keygate serve` on a
temporary SQLite database, the CLI next to it, a small HTTP client for the
JSON API, and bulk seeding.

Nothing here knows about the browser; see conftest.py for the fixtures.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

LISTENING = re.compile(r"^listening on (http://\S+)$")


class Server:
    """One `keygate serve --bind 127.0.0.1:0` with its own database and
    pepper, its stdout/stderr kept in files (checked for leaked keys), and
    the plaintext of every key the test saw (`secrets`)."""

    def __init__(self, binary: str, workdir: Path, extra_args=(), rust_log: str | None = None):
        self.binary = binary
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.db_path = workdir / "keys.db"
        self.env = dict(os.environ)
        self.env.update(
            DATABASE_URL=f"sqlite://{self.db_path}",
            API_KEY_PEPPER="browser-test-pepper-" + "0" * 24,
            NO_COLOR="1",
        )
        self.env.pop("KEYGATE_ACTOR", None)
        if rust_log is not None:
            self.env["RUST_LOG"] = rust_log
        self.stdout_path = workdir / "serve.stdout"
        self.stderr_path = workdir / "serve.stderr"
        self.proc: subprocess.Popen | None = None
        self.base = ""
        self.host = ""
        self.port = 0
        self.secrets: set[str] = set()
        self.admin_key = ""
        self.admin_id = ""
        self.admin_key_id = ""
        self._local = threading.local()

    # -- CLI ---------------------------------------------------------------
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True,
            check=check, timeout=60,
        )

    def cli_json(self, *args: str):
        out = self.cli("--json", *args).stdout
        return json.loads(out)

    def create_admin(self, name: str = "admin") -> dict:
        """`keygate --json create --name NAME --scopes keygate:admin`; returns
        `{"api_key", "entity"}` (the way an operator makes the first key)."""
        made = self.cli_json("create", "--name", name, "--scopes", "keygate:admin")
        self.secrets.add(made["api_key"])
        return made

    # -- process -----------------------------------------------------------
    def start(self) -> "Server":
        admin = self.create_admin()
        self.admin_key = admin["api_key"]
        self.admin_id = admin["entity"]["id"]
        self.admin_key_id = admin["entity"]["key_id"]
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--bind", "127.0.0.1:0", *self.extra_args],
            env=self.env, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            first = self.stdout_path.read_text(errors="replace").split("\n", 1)
            if len(first) == 2:
                m = LISTENING.match(first[0].strip())
                if not m:
                    raise RuntimeError(f"unexpected first stdout line of keygate serve: {first[0]!r}")
                self.base = m.group(1).rstrip("/")
                parts = urlsplit(self.base)
                self.host, self.port = parts.hostname, parts.port
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("keygate serve did not start; stderr:\n" + self.stderr_path.read_text(errors="replace")[-3000:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._out.close()
        self._err.close()
        return self.proc.returncode

    def logs(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def url(self, path: str) -> str:
        return self.base + path

    # -- JSON API ----------------------------------------------------------
    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self._local.conn = conn
        return conn

    def request(self, method: str, path: str, body=None, key: str | None = "admin", headers=None):
        """Returns (status, headers, parsed JSON body or text). `key="admin"`
        uses the admin key; None sends no key."""
        if key == "admin":
            key = self.admin_key
        hdrs = {"Accept": "application/json"}
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        for attempt in (1, 2):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=hdrs)
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        text = raw.decode(errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = text
        return resp.status, dict(resp.getheaders()), parsed

    def create_key(self, **fields) -> dict:
        status, _, body = self.request("POST", "/api-keys", fields)
        if status != 201 and status != 200:
            raise AssertionError(f"POST /api-keys {fields.get('name')!r} -> {status} {body}")
        self.secrets.add(body["api_key"])
        return body

    def get_key(self, entity_id: str):
        status, _, body = self.request("GET", f"/api-keys/{entity_id}")
        return status, body

    def verify(self, api_key: str, scopes=()) -> int:
        status, _, _ = self.request(
            "POST", "/api-keys/verify", {"api_key": api_key, "required_scopes": list(scopes), "cost": 0}, key=None
        )
        return status

    def seed(self, specs: list[dict], workers: int = 8) -> list[dict]:
        """Create many keys over HTTP, in parallel (one keep-alive
        connection per thread). Returns the answers in the order of specs."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda s: self.create_key(**s), specs))


def random_suffix() -> str:
    return secrets.token_hex(4)


def clone_keys(db_path: Path, count: int, name_format: str = "bulk-{:05d}", start: int = 0) -> None:
    """Add `count` keys to the database in one SQLite transaction, each a
    copy of a key made over HTTP (cycled through), with its own id, key id,
    name and creation time. Only for volume: a clone's stored hash is its
    template's with a suffix (the column is unique), so clones never
    verify. Used because the default hasher (Argon2id) makes 10 000 keys
    over HTTP take minutes on a small machine."""
    import sqlite3

    con = sqlite3.connect(db_path, timeout=30)
    try:
        cols = [r[1] for r in con.execute("pragma table_info(api_keys)")]
        templates = con.execute(
            f"select {', '.join(cols)} from api_keys where scopes not like '%keygate:admin%' order by created_at"
        ).fetchall()
        assert templates, "no key to clone"
        ix = {c: i for i, c in enumerate(cols)}
        base = time.time()
        rows = []
        for n in range(count):
            row = list(templates[n % len(templates)])
            row[ix["id"]] = secrets.token_hex(16)
            row[ix["key_id"]] = secrets.token_hex(8)
            row[ix["name"]] = name_format.format(start + n)
            row[ix["key_hash"]] = f"{row[ix['key_hash']]}~clone{n}"
            t = base - (count - n) * 0.001
            row[ix["created_at"]] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}"
            rows.append(row)
        with con:
            con.executemany(
                f"insert into api_keys ({', '.join(cols)}) values ({', '.join('?' * len(cols))})", rows
            )
    finally:
        con.close()
