"""Fixtures for the dashboard's browser tests (Playwright for Python with
the system Chromium).

Every test gets a fresh `keygate serve --bind 127.0.0.1:0` on a temporary
SQLite database with a test pepper and an admin key made with the CLI
(`server`), and a browser context whose every request, navigation, console
error and page error is recorded (`page`). On teardown, for every test:

- no plaintext key the test saw appears in any URL requested or navigated
  to, nor in the server's stdout/stderr (at RUST_LOG=debug), nor in the
  database files (keys and sessions);
- no request went to an origin other than the server;
- the page logged no Content-Security-Policy violation and threw no error;
- the server is still running.

Numbers recorded with `record_number` are printed in a `== numbers ==`
block at the end of the run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from harness import Server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", REPO / "docs" / "screenshots"))

expect.set_options(timeout=10_000)

NUMBERS: list[tuple[str, str]] = []


def record_number(name: str, value: str) -> None:
    NUMBERS.append((name, value))
    print(f"{name}: {value}")


def pytest_terminal_summary(terminalreporter):
    if NUMBERS:
        terminalreporter.write_line("")
        terminalreporter.write_line("== numbers ==")
        width = max(len(n) for n, _ in NUMBERS)
        for name, value in NUMBERS:
            terminalreporter.write_line(f"{name.ljust(width)}  {value}")


@pytest.fixture(scope="session")
def keygate_bin() -> str:
    path = os.environ.get("KEYGATE_BIN")
    if not path or not os.access(path, os.X_OK):
        pytest.exit(f"KEYGATE_BIN must name the keygate binary (got {path!r}); use tools/browser/run.sh", 2)
    return path


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


def start_server(keygate_bin: str, tmp_path: Path, request, *, extra_args=(), rust_log=None) -> Server:
    """A started server, stopped (and its logs checked) at the end of the test."""
    n = len(list(tmp_path.glob("srv*")))
    workdir = tmp_path / f"srv{n}"
    workdir.mkdir()
    server = Server(keygate_bin, workdir, extra_args=extra_args, rust_log=rust_log)
    server.start()

    def finish():
        alive = server.alive()
        server.stop()
        logs = server.logs()
        leaked = [s[:20] + "…" for s in server.secrets if s in logs]
        assert not leaked, f"plaintext keys in the server's logs: {leaked}"
        # Nor in the database (keys store hashes; sessions only ids).
        stored = b"".join(p.read_bytes() for p in server.workdir.glob("keys.db*"))
        leaked = [s[:20] + "…" for s in server.secrets if s.encode() in stored]
        assert not leaked, f"plaintext keys in the database files: {leaked}"
        assert alive, "keygate serve died during the test; its log:\n" + logs[-3000:]

    request.addfinalizer(finish)
    return server


@pytest.fixture
def server(keygate_bin, tmp_path, request) -> Server:
    # RUST_LOG=debug: the plaintext key must not appear even in debug logs.
    return start_server(keygate_bin, tmp_path, request, rust_log="debug")


class Recorder:
    """Every request URL, navigated URL, response (with headers), console
    error and page error of a context."""

    def __init__(self, context: BrowserContext):
        self.requests: list[str] = []
        self.navigations: list[str] = []
        self.responses = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        context.on("request", lambda r: self.requests.append(r.url))
        context.on("response", lambda r: self.responses.append(r))
        context.on("page", self.watch)

    def watch(self, page: Page) -> None:
        page.on("framenavigated", lambda f: self.navigations.append(f.url))
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def check(self, server: Server) -> None:
        urls = self.requests + self.navigations
        for url in urls:
            for s in server.secrets:
                assert s not in url, f"a plaintext key in a URL: {url[:80]}"
        foreign = [u for u in urls if not (u.startswith(server.base + "/") or u == server.base or u in ("about:blank", "chrome-error://chromewebdata/"))]
        assert not foreign, f"requests to other origins: {foreign[:5]}"
        csp = [m for m in self.console_errors if "Content Security Policy" in m or "Content-Security-Policy" in m]
        assert not csp, f"CSP violations: {csp}"
        assert not self.page_errors, f"page errors: {self.page_errors}"


def new_context(browser: Browser, server: Server, request, **kwargs) -> tuple[BrowserContext, Recorder]:
    kwargs.setdefault("viewport", {"width": 1280, "height": 800})
    context = browser.new_context(
        base_url=server.base, permissions=["clipboard-read", "clipboard-write"], **kwargs
    )
    rec = Recorder(context)

    def finish():
        context.close()
        rec.check(server)

    request.addfinalizer(finish)
    return context, rec


@pytest.fixture
def context_rec(browser, server, request):
    return new_context(browser, server, request)


@pytest.fixture
def context(context_rec) -> BrowserContext:
    return context_rec[0]


@pytest.fixture
def recorder(context_rec) -> Recorder:
    return context_rec[1]


@pytest.fixture
def page(context) -> Page:
    return context.new_page()


# -- page helpers used by several tests -------------------------------------

def sign_in(page: Page, server: Server, key: str | None = None) -> None:
    page.goto("/ui/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.get_by_label("Admin API key", exact=True).fill(key or server.admin_key)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("API keys")
    expect(page).to_have_url(re.compile(r"/ui/keys$"))
