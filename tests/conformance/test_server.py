"""The operator contract of the binary: banner, /healthz, the development account, graceful stop, restart on the
same data, `stratus account create`."""

from __future__ import annotations

import json
import re
import signal

from harness import raw
from harness.api import Scf, unique


def test_banner_healthz_and_dev_credentials(stratus):
    srv = stratus()
    # Exactly one banner line, and it is the last thing printed at readiness (the dev account's keys may come first).
    banners = [line for line in srv.stdout_lines if re.fullmatch(r"stratus listening on http://127\.0\.0\.1:\d+", line)]
    assert banners == [f"stratus listening on http://{srv.endpoint}"], srv.stdout_lines
    assert srv.stdout_lines[-1] == banners[0], srv.stdout_lines
    r = raw.get(srv.endpoint, "/healthz")
    assert r.status_code == 200
    d = json.loads((srv.data_dir / "dev-credentials.json").read_text())
    assert set(d) >= {"AppId", "Uin", "SecretId", "SecretKey"}
    assert isinstance(d["AppId"], int) and not isinstance(d["AppId"], bool)
    assert isinstance(d["Uin"], str) and d["Uin"]
    assert isinstance(d["SecretId"], str) and len(d["SecretId"]) >= 16
    assert isinstance(d["SecretKey"], str) and len(d["SecretKey"]) >= 16
    # The development account works through the SDK at once.
    r = Scf(srv.client()).call("ListFunctions")
    assert r["TotalCount"] == 0 and r["RequestId"]


def test_sigterm_exits_zero(stratus):
    srv = stratus()
    assert srv.stop(signal.SIGTERM) == 0


def test_sigint_exits_zero(stratus):
    srv = stratus()
    assert srv.stop(signal.SIGINT) == 0


def test_restart_keeps_functions_and_credentials(stratus):
    srv = stratus()
    scf = Scf(srv.client())
    name = scf.create_function(Description="kept across restarts")
    first_creds = srv.creds
    assert srv.stop() == 0
    srv.restart()
    # Same account: the dev credentials are created once, on the first start with an empty database.
    assert srv.creds == first_creds
    scf = Scf(srv.client())
    fn = scf.get(name)
    assert fn["Status"] == "Active" and fn["Description"] == "kept across restarts"


def test_account_create_prints_one_json_line_with_a_working_new_account(server):
    out = server.account_create_raw()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected exactly one line on stdout, got {out.stdout!r}"
    acct = json.loads(lines[0])
    assert set(acct) >= {"AppId", "Uin", "SecretId", "SecretKey"}
    assert isinstance(acct["AppId"], int) and isinstance(acct["Uin"], str)
    assert acct["SecretId"] != server.creds.secret_id and acct["AppId"] != server.creds.app_id
    assert acct["Uin"] != server.creds.uin
    from harness.server import Creds

    scf = Scf(server.client(Creds.from_json(acct)))
    assert scf.call("ListFunctions")["TotalCount"] == 0
    # A second account is different again.
    other = server.create_account()
    assert other.secret_id not in (acct["SecretId"], server.creds.secret_id)
    assert other.app_id != acct["AppId"]


def test_accounts_created_while_serving_survive_a_restart(stratus):
    srv = stratus()
    creds = srv.create_account()
    scf = Scf(srv.client(creds))
    name = scf.create_function(unique("acct"))
    srv.restart()
    assert Scf(srv.client(creds)).get(name)["Status"] == "Active"
