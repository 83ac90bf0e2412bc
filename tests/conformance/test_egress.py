"""Outbound network through the official SDK: a function with PublicNetConfig ENABLE (the default) fetches a page from
an "outside world" this module creates (a network namespace in 198.19.0.0/16 with a tiny HTTP server, reached through
the host's NAT), one with DISABLE cannot, and neither reaches the server's API, whether through its own loopback,
its link's host side or the host's other address. Traffic goes only to 198.18.0.0/16 and 198.19.0.0/16.

Needs root, `ip` and `nft` (like the sandbox itself); without them these tests are skipped, and under CI they fail."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from harness import zips
from harness.api import Scf

PY = zips.PY_RUNTIME
PORT = 8080

HANDLER = r'''
import socket, urllib.request

def gateway():
    for line in open('/proc/net/route').read().splitlines()[1:]:
        f = line.split()
        if f[1] == '00000000':
            return socket.inet_ntoa(bytes.fromhex(f[2])[::-1])
    return None

def probe(host, port):
    if host is None:
        return 'noroute'
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((host, port))
        return 'connected'
    except ConnectionRefusedError:
        return 'refused'
    except OSError:
        return 'failed'
    finally:
        s.close()

def main_handler(event, context):
    out = {}
    try:
        with urllib.request.urlopen(event['url'], timeout=5) as r:
            out['fetch'] = '%d %s' % (r.status, r.read().decode())
    except Exception as e:
        out['fetch'] = 'failed ' + type(e).__name__
    g = gateway()
    out['gateway'] = g
    out['api_via_link'] = probe(g, event['api_port'])
    out['api_via_host_addr'] = probe(event['host_addr'], event['api_port'])
    out['api_loopback'] = probe('127.0.0.1', event['api_port'])
    return out
'''

SERVER = r'''
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'hello from outside'
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
'''


def missing(why: str):
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Outside:
    """A network namespace `stX<pid>c` with a veth to the host (198.19.1.k/30) and an HTTP server."""

    def __init__(self):
        pid = os.getpid()
        k = (pid % 64) * 4
        self.netns = f"stX{pid}c"
        self.host_if = f"stX{pid}h"
        self.peer = f"stX{pid}p"
        self.host_addr = f"198.19.1.{k + 1}"
        self.server_addr = f"198.19.1.{k + 2}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Outside":
        ip("netns", "add", self.netns)
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.peer, "netns", self.netns)
        ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("-n", self.netns, "addr", "add", f"{self.server_addr}/30", "dev", self.peer)
        ip("-n", self.netns, "link", "set", self.peer, "up")
        ip("-n", self.netns, "link", "set", "lo", "up")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", SERVER, self.server_addr, str(PORT)],
            stdin=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection((self.server_addr, PORT), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the outside server did not start")

    def url(self) -> str:
        return f"http://{self.server_addr}:{PORT}/"

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        ip("link", "del", self.host_if, check=False)
        ip("netns", "del", self.netns, check=False)


@pytest.fixture(scope="module")
def outside():
    if os.geteuid() != 0:
        missing("root (instance links and the outside namespace need it)")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            missing(f"`{tool}` (iproute2, nftables)")
    o = Outside()
    try:
        yield o.start()
    finally:
        o.stop()
    assert ip("link", "show", o.host_if, check=False).returncode != 0
    assert o.netns not in ip("netns", "list").stdout


def probe(scf, name, outside) -> dict:
    event = {"url": outside.url(), "api_port": scf.server.port, "host_addr": outside.host_addr}
    r = scf.call("Invoke", {"FunctionName": name, "ClientContext": json.dumps(event)})["Result"]
    assert r["InvokeResult"] == 0, r
    return json.loads(r["RetMsg"])


def create(scf, status: str | None) -> str:
    params = {"Timeout": 15}
    if status is not None:
        params["PublicNetConfig"] = {"PublicNetStatus": status, "EipConfig": {"EipStatus": "DISABLE"}}
    return scf.create_function(zip_bytes=zips.build([zips.Entry("index.py", HANDLER.encode())]), runtime=PY,
                               **params)


def test_enable_fetches_from_outside_and_never_reaches_the_api(scf, outside):
    name = create(scf, None)  # ENABLE is the default
    assert scf.get(name)["PublicNetConfig"]["PublicNetStatus"] == "ENABLE"
    out = probe(scf, name, outside)
    assert out["fetch"] == "200 hello from outside", out
    assert out["gateway"] and out["gateway"].startswith("198.18."), out
    assert out["api_via_link"] == "failed", out
    assert out["api_via_host_addr"] == "failed", out
    assert out["api_loopback"] == "refused", out


def test_disable_stays_loopback_only_until_enabled(scf, outside):
    name = create(scf, "DISABLE")
    assert scf.get(name)["PublicNetConfig"]["PublicNetStatus"] == "DISABLE"
    out = probe(scf, name, outside)
    assert out["fetch"].startswith("failed"), out
    assert out["gateway"] is None, out
    assert out["api_via_host_addr"] == "failed", out
    assert out["api_loopback"] == "refused", out

    scf.call("UpdateFunctionConfiguration", {"FunctionName": name, "PublicNetConfig": {"PublicNetStatus": "ENABLE"}})
    scf.wait(name)
    out = probe(scf, name, outside)
    assert out["fetch"] == "200 hello from outside", out
    assert out["api_via_link"] == "failed", out


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout


def link_with(addr: str) -> str:
    return ip("-o", "addr", "show", "to", f"{addr}/32").stdout.strip()


def test_a_killed_server_leaves_no_link_and_its_table_goes_at_the_next_start(stratus, outside):
    srv = stratus()
    scf = Scf(srv.client(), srv, srv.creds)
    name = create(scf, None)
    out = probe(scf, name, outside)
    assert out["fetch"] == "200 hello from outside", out
    gateway = out["gateway"]
    old = f"table inet stratus_{srv.proc.pid}\n"
    assert old in nft_tables()
    assert link_with(gateway), "the warm instance holds its link"

    srv.kill9()
    for _ in range(100):
        if not link_with(gateway):
            break
        time.sleep(0.1)
    assert not link_with(gateway), "the link outlived its instance"

    srv.restart()
    tables = nft_tables()
    assert old not in tables, tables
    assert f"table inet stratus_{srv.proc.pid}\n" in tables, tables
    scf = Scf(srv.client(), srv, srv.creds)
    assert probe(scf, name, outside)["fetch"] == "200 hello from outside"
