"""Fixtures of the conformance suite.

Every test that talks to a server runs twice: on `sqlite` (the embedded default) and on `postgres` (a fresh database
per server, made from STRATUS_TEST_DATABASE_URL, the admin URL of a role with CREATEDB; `eval "$(scripts/pg-setup)"`
sets it). Without that variable the postgres cases are skipped, loudly; under CI they fail.

Fixtures:
  backend   module-scoped, parametrised: Backend("sqlite") / Backend("postgres", url)
  server    a server shared by the tests of one module on one backend (dev account; tests use unique names)
  scf       harness.api.Scf for the dev account of `server`
  fresh_scf harness.api.Scf for a brand-new account on `server` (for counts, limits and listings)
  stratus   factory: stratus(failpoints=None, env=None) starts a dedicated server for this test, torn down after
"""

from __future__ import annotations

import os

import pytest

# The SDK would send loopback traffic through a proxy (PROTOCOL.md section 1): never let it.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)

from harness.api import Scf  # noqa: E402
from harness.server import Backend, StratusServer, binary  # noqa: E402

PG_ENV = "STRATUS_TEST_DATABASE_URL"
PG_SKIP = f"PostgreSQL tests SKIPPED: {PG_ENV} not set (run: eval \"$(scripts/pg-setup)\")"
PG_FAIL_CI = f"PostgreSQL tests cannot run: {PG_ENV} is not set and CI is set; .ci/run must eval scripts/pg-setup"


def _pg_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def pytest_report_header(config):
    lines = [f"stratus binary: {binary()}"]
    if _pg_url():
        lines.append(f"backends: sqlite, postgres ({PG_ENV} is set)")
    else:
        lines.append(f"backends: sqlite only -- {PG_SKIP}")
    return lines


def pytest_sessionstart(session):
    if os.environ.get("CI") and not _pg_url() and not session.config.option.collectonly:
        pytest.exit(PG_FAIL_CI, returncode=3)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _pg_url():
        terminalreporter.section("PostgreSQL", sep="!", red=True, bold=True)
        terminalreporter.line(PG_SKIP, red=True, bold=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, "rep_" + rep.when, rep)
    return rep


def _failed(request) -> bool:
    return any(getattr(request.node, "rep_" + w, None) is not None and getattr(request.node, "rep_" + w).failed
               for w in ("setup", "call"))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request) -> Backend:
    if request.param == "postgres":
        url = _pg_url()
        if not url:
            if os.environ.get("CI"):
                pytest.fail(PG_FAIL_CI, pytrace=False)
            pytest.skip(PG_SKIP)
        return Backend("postgres", url)
    return Backend("sqlite")


@pytest.fixture(scope="module")
def server(backend):
    srv = StratusServer(backend)
    try:
        srv.start()
        yield srv
    finally:
        srv.destroy()


@pytest.fixture
def server_log(request, server):
    """Prints the shared server's log lines of this test when it fails."""
    since = server.stderr_size()
    yield server
    if _failed(request):
        print(server.diagnostics(since))


@pytest.fixture
def scf(server_log) -> Scf:
    return Scf(server_log.client(), server_log, server_log.creds)


@pytest.fixture
def fresh_scf(server_log) -> Scf:
    creds = server_log.create_account()
    return Scf(server_log.client(creds), server_log, creds)


@pytest.fixture
def stratus(request, backend):
    servers: list[StratusServer] = []

    def start(failpoints: str | None = None, env: dict | None = None) -> StratusServer:
        srv = StratusServer(backend, failpoints=failpoints, env=env)
        servers.append(srv)
        return srv.start()

    yield start
    failed = _failed(request)
    for srv in servers:
        if failed:
            print(srv.diagnostics())
        srv.destroy()
