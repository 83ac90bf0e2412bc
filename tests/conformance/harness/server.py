"""Start, stop, crash and restart the real `stratus` binary, on SQLite or on a fresh PostgreSQL database.

The server contract this drives:
  stratus serve --data-dir DIR --listen 127.0.0.1:0 [--database-url URL]
    prints `stratus listening on http://127.0.0.1:PORT` on stdout when ready, logs on stderr,
    writes DIR/dev-credentials.json on first start, exits 0 on SIGTERM/SIGINT.
  stratus account create --data-dir DIR [--database-url URL]
    prints one JSON line {"AppId","Uin","SecretId","SecretKey"} for a new account.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BANNER = re.compile(r"^stratus listening on http://127\.0\.0\.1:(\d+)$")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
KEEP = object()
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


def binary() -> Path:
    if os.environ.get("STRATUS_BIN"):
        return Path(os.environ["STRATUS_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    return target / "debug" / "stratus"


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and k != "FAILPOINTS"}
    env.setdefault("RUST_BACKTRACE", "1")
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Creds:
    app_id: int
    uin: str
    secret_id: str
    secret_key: str

    @classmethod
    def from_json(cls, d: dict) -> "Creds":
        return cls(d["AppId"], d["Uin"], d["SecretId"], d["SecretKey"])


# ---------------------------------------------------------------------------------------------------------------
# Backends


def _psql(admin_url: str, sql: str) -> str:
    out = subprocess.run(
        ["psql", admin_url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env({"PGCONNECT_TIMEOUT": "10"}),
    )
    if out.returncode != 0:
        raise RuntimeError(f"psql failed ({out.returncode}) running {sql!r}: {out.stderr.strip()}")
    return out.stdout


class Backend:
    """Where a server keeps its metadata: `sqlite` (the default URL inside the data dir) or `postgres` (a fresh
    database per server, created from the admin URL of a role with CREATEDB)."""

    def __init__(self, name: str, admin_url: str | None = None):
        self.name = name
        self.admin_url = admin_url

    def __repr__(self) -> str:
        return f"Backend({self.name})"

    def create_database(self) -> str | None:
        """A database URL for a new server, or None to let the server use its SQLite default."""
        if self.name == "sqlite":
            return None
        db = "stratus_t_" + secrets.token_hex(6)
        _psql(self.admin_url, f"CREATE DATABASE {db}")
        parts = urllib.parse.urlsplit(self.admin_url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + db))

    def drop_database(self, url: str | None) -> None:
        if url is None or self.name == "sqlite":
            return
        db = urllib.parse.urlsplit(url).path.lstrip("/")
        assert re.fullmatch(r"stratus_t_[0-9a-f]+", db), db
        _psql(self.admin_url, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


# ---------------------------------------------------------------------------------------------------------------
# The server process


class ServerStartError(RuntimeError):
    pass


class StratusServer:
    """One `stratus serve` on its own data dir (and database). Survives stop/kill9/restart; `destroy` removes
    everything it made."""

    def __init__(self, backend: Backend, *, failpoints: str | None = None, env: dict[str, str] | None = None):
        self.backend = backend
        self.failpoints = failpoints
        self.extra_env = dict(env or {})
        self.root = Path(tempfile.mkdtemp(prefix="stratus-conf-"))
        self.data_dir = self.root / "data"
        self.data_dir.mkdir()
        self.stderr_path = self.root / "stderr.log"
        self.database_url = backend.create_database()
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.creds: Creds | None = None
        self.stdout_lines: list[str] = []
        self.starts = 0

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def _db_args(self) -> list[str]:
        return ["--database-url", self.database_url] if self.database_url else []

    def start(self) -> "StratusServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        exe = binary()
        if not exe.exists():
            raise ServerStartError(
                f"server binary {exe} does not exist: build it with `cargo build --workspace --all-features` "
                "(or set STRATUS_BIN)"
            )
        extra = dict(self.extra_env)
        if self.failpoints:
            extra["FAILPOINTS"] = self.failpoints
        self.starts += 1
        with open(self.stderr_path, "ab") as f:
            f.write(f"\n===== start #{self.starts} (FAILPOINTS={self.failpoints or ''}) =====\n".encode())
        stderr = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [str(exe), "serve", "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0", *self._db_args()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=child_env(extra),
                start_new_session=True,  # its own process group, so that teardown can reap whatever it spawned
            )
        finally:
            stderr.close()
        lines: queue.Queue[str | None] = queue.Queue()
        proc = self.proc

        def pump() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
            lines.put(None)

        threading.Thread(target=pump, name="stratus-stdout", daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        port = None
        while port is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self._abort_start(f"no banner on stdout within {START_TIMEOUT:.0f} s")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                self._abort_start(f"exited with status {proc.wait()} before printing its banner")
            self.stdout_lines.append(line)
            m = BANNER.match(line)
            if m:
                port = int(m.group(1))
        self.port = port

        def drain() -> None:
            while (line := lines.get()) is not None:
                self.stdout_lines.append(line)

        threading.Thread(target=drain, name="stratus-stdout-drain", daemon=True).start()
        self._wait_healthy(deadline)
        creds_file = self.data_dir / "dev-credentials.json"
        if not creds_file.exists():
            self._abort_start(f"ready, but {creds_file} does not exist")
        self.creds = Creds.from_json(json.loads(creds_file.read_text()))
        return self

    def _wait_healthy(self, deadline: float) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        last = None
        while time.monotonic() < deadline:
            try:
                with opener.open(f"{self.url}/healthz", timeout=5) as r:
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}"
            except Exception as e:  # noqa: BLE001 - any failure means not ready yet
                last = repr(e)
            time.sleep(0.05)
        self._abort_start(f"/healthz did not answer 200 ({last})")

    def _abort_start(self, why: str):
        self._signal_group(signal.SIGKILL)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        raise ServerStartError(f"stratus serve failed to start: {why}\n{self.diagnostics()}")

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Graceful stop by PID (SIGTERM, or SIGINT), SIGKILL after `timeout`. Returns the exit status, negative
        for a signal, as subprocess reports it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._signal_group(signal.SIGKILL)  # anything it spawned and left behind
        return self.proc.returncode

    def kill9(self) -> None:
        """Crash the server: SIGKILL by PID, no chance to clean up."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._signal_group(signal.SIGKILL)

    def restart(self, *, failpoints: object = KEEP) -> "StratusServer":
        """Start again on the same data dir and database (after a stop or a crash). The port changes.
        `failpoints` replaces the FAILPOINTS of the next start (None for none); by default they are kept."""
        if self.running:
            self.stop()
        if failpoints is not KEEP:
            self.failpoints = failpoints
        return self.start()

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            try:
                self.backend.drop_database(self.database_url)
            finally:
                if not os.environ.get("STRATUS_TEST_KEEP"):
                    shutil.rmtree(self.root, ignore_errors=True)

    # -- access ---------------------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self, creds: Creds | None = None, **kw):
        from .api import make_client

        return make_client(self.endpoint, creds or self.creds, **kw)

    def account_create_raw(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(binary()), "account", "create", "--data-dir", str(self.data_dir), *self._db_args()],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(),
        )

    def create_account(self) -> Creds:
        out = self.account_create_raw()
        if out.returncode != 0:
            raise RuntimeError(f"stratus account create exited {out.returncode}:\n{out.stderr}")
        try:
            return Creds.from_json(json.loads(out.stdout.strip()))
        except (ValueError, KeyError) as e:
            raise RuntimeError(f"stratus account create printed no account JSON ({e}):\n{out.stdout}") from e

    # -- diagnostics ----------------------------------------------------------------------------------------------

    def stderr_size(self) -> int:
        try:
            return self.stderr_path.stat().st_size
        except FileNotFoundError:
            return 0

    def stderr_tail(self, since: int = 0, max_bytes: int = 20000) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(0, 2)
                end = f.tell()
                f.seek(max(since, end - max_bytes))
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def diagnostics(self, since: int = 0) -> str:
        return (
            f"--- stratus ({self.backend.name}, data dir {self.data_dir}, db {self.database_url or 'sqlite default'}, "
            f"FAILPOINTS={self.failpoints or ''}) stdout:\n"
            + "\n".join(self.stdout_lines[-50:])
            + "\n--- stderr (tail):\n"
            + self.stderr_tail(since)
        )
