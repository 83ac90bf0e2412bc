"""Custom domains (`Create/Get/List/Update/DeleteCustomDomain`) through the official SDK, and requests to them
through plain HTTP clients: routing by `Host` and the most specific `PathMatch` to two functions, a `PathRewrite`,
HTTPS by SNI with a certificate the operator configured per `CertificateId` (made here with the openssl CLI and a
test CA), and every action's errors."""
from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness.api import Scf, unique
from harness.zips import Entry, build

ECHO = '''\
import json
def main_handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"fn": "%s", "path": event["path"], "q": event["queryString"],
                                              "host": event["headers"].get("host")})}
'''


def pkg(src: str) -> bytes:
    return build([Entry("index.py", src.encode(), mode=stat.S_IFREG | 0o644)])


def listener(srv) -> tuple[str, int]:
    line = [ln for ln in srv.stdout_lines if ln.startswith("stratus function URLs on http://")][0]
    host, port = line.rsplit("/", 1)[1].rsplit(":", 1)
    return host, int(port)


def get(addr: tuple[str, int], host: str, path: str) -> tuple[int, dict | bytes]:
    c = http.client.HTTPConnection(addr[0], addr[1], timeout=60)
    try:
        c.putrequest("GET", path, skip_host=True)
        c.putheader("Host", host)
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, body
    finally:
        c.close()


def endpoints(fa: str, fb: str) -> list[dict]:
    return [
        {"Namespace": "default", "FunctionName": fa, "Qualifier": "$LATEST", "PathMatch": "/*"},
        {"Namespace": "default", "FunctionName": fb, "Qualifier": "$LATEST", "PathMatch": "/api/*",
         "PathRewrite": [{"Path": "/api/v1/*", "Type": "WildcardRules", "Rewrite": "/v2/$"}]},
    ]


def test_two_paths_route_to_two_functions_with_a_rewrite(scf, server):
    fa = scf.create_function(zip_bytes=pkg(ECHO % "a"))
    fb = scf.create_function(zip_bytes=pkg(ECHO % "b"))
    domain = f"{unique('d')}.example.com"
    scf.call("CreateCustomDomain", {"Domain": domain, "Protocol": "HTTP", "EndpointsConfig": endpoints(fa, fb),
                                    "WafConfig": {"WafOpen": "CLOSE"}, "Tags": [{"Key": "k", "Value": "v"}]})
    got = scf.call("GetCustomDomain", {"Domain": domain})
    assert got["Domain"] == domain and got["Protocol"] == "HTTP"
    assert [e["PathMatch"] for e in got["EndpointsConfig"]] == ["/*", "/api/*"]
    assert got["EndpointsConfig"][1]["PathRewrite"][0] == {"Path": "/api/v1/*", "Type": "WildcardRules",
                                                           "Rewrite": "/v2/$"}
    assert got["WafConfig"]["WafOpen"] == "CLOSE" and got["Tags"] == [{"Key": "k", "Value": "v"}]
    listed = scf.call("ListCustomDomains", {})
    assert domain in [d["Domain"] for d in listed["Domains"]] and listed["Total"] >= 1

    addr = listener(server)
    st, body = get(addr, domain, "/hello?x=1")
    assert st == 200 and body["fn"] == "a" and body["path"] == "/hello" and body["q"] == {"x": "1"}, body
    st, body = get(addr, f"{domain.upper()}:{addr[1]}", "/api/v1/users/7")
    assert st == 200 and body["fn"] == "b" and body["path"] == "/v2/users/7", body
    st, body = get(addr, domain, "/api/other")
    assert st == 200 and body["fn"] == "b" and body["path"] == "/api/other", body
    # An unknown host is no custom domain: the listener's own 404.
    st, _ = get(addr, f"nobody-{domain}", "/hello")
    assert st == 404

    # An update is served at once on this node: swap the functions.
    scf.call("UpdateCustomDomain", {"Domain": domain, "EndpointsConfig": endpoints(fb, fa)})
    st, body = get(addr, domain, "/hello")
    assert st == 200 and body["fn"] == "b", body
    # Only /api/* left: other paths match no route.
    scf.call("UpdateCustomDomain", {"Domain": domain, "EndpointsConfig": endpoints(fa, fb)[1:]})
    st, _ = get(addr, domain, "/hello")
    assert st == 404
    scf.call("DeleteCustomDomain", {"Domain": domain})
    st, _ = get(addr, domain, "/api/x")
    assert st == 404
    scf.error("FailedOperation.Domain.UnExist", "GetCustomDomain", {"Domain": domain})


def test_errors_of_every_action(scf, fresh_scf):
    fa = scf.create_function(zip_bytes=pkg(ECHO % "a"))
    domain = f"{unique('e')}.example.com"
    ep = [{"Namespace": "default", "FunctionName": fa, "Qualifier": "$LATEST", "PathMatch": "/*"}]

    def create(**p):
        return {"Domain": domain, "Protocol": "HTTP", "EndpointsConfig": ep, **p}

    scf.error("InvalidParameterValue.Domain", "CreateCustomDomain", create(Domain="*.example.com"))
    scf.error("InvalidParameterValue.Domain", "CreateCustomDomain", create(Domain="no_dots"))
    scf.error("InvalidParameterValue.Protocol", "CreateCustomDomain", create(Protocol="FTP"))
    scf.error("InvalidParameterValue.CertificateId", "CreateCustomDomain", create(Protocol="HTTPS"))
    scf.error("InvalidParameterValue.CertificateId", "CreateCustomDomain",
              create(Protocol="HTTPS", CertConfig={"CertificateId": "nope"}))
    for bad in ["api", "/api/", "/*/x", "/a b"]:
        scf.error("InvalidParameterValue.PathMatch", "CreateCustomDomain",
                  create(EndpointsConfig=[{**ep[0], "PathMatch": bad}]))
    scf.error("InvalidParameterValue.PathRewrite", "CreateCustomDomain",
              create(EndpointsConfig=[{**ep[0], "PathRewrite": [{"Path": "/a", "Type": "Regex", "Rewrite": "/"}]}]))
    scf.error("InvalidParameterValue.EndpointsConfig", "CreateCustomDomain", create(EndpointsConfig=[]))
    scf.error("ResourceNotFound.Function", "CreateCustomDomain",
              create(EndpointsConfig=[{**ep[0], "FunctionName": unique("missing")}]))
    scf.error("ResourceNotFound.Qualifier", "CreateCustomDomain",
              create(EndpointsConfig=[{**ep[0], "Qualifier": "nosuchalias"}]))
    scf.error("MissingParameter", "CreateCustomDomain", {"Protocol": "HTTP", "EndpointsConfig": ep})

    scf.call("CreateCustomDomain", create())
    scf.error("ResourceInUse", "CreateCustomDomain", create())
    # Taken by another account: neither created nor visible there.
    other = fresh_scf.create_function(zip_bytes=pkg(ECHO % "o"))
    fresh_scf.error("ResourceInUse", "CreateCustomDomain", create(EndpointsConfig=[{**ep[0], "FunctionName": other}]))
    fresh_scf.error("FailedOperation.Domain.UnExist", "GetCustomDomain", {"Domain": domain})
    fresh_scf.error("FailedOperation.Domain.UnExist", "UpdateCustomDomain", {"Domain": domain, "Protocol": "HTTP"})
    fresh_scf.error("FailedOperation.Domain.UnExist", "DeleteCustomDomain", {"Domain": domain})
    assert domain not in [d["Domain"] for d in fresh_scf.call("ListCustomDomains", {})["Domains"]]

    scf.error("InvalidParameterValue.PathMatch", "UpdateCustomDomain",
              {"Domain": domain, "EndpointsConfig": [{**ep[0], "PathMatch": "x"}]})
    scf.error("InvalidParameterValue.CertificateId", "UpdateCustomDomain", {"Domain": domain, "Protocol": "HTTPS"})
    scf.error("InvalidParameterValue.OrderBy", "ListCustomDomains", {"OrderBy": "Name"})
    scf.error("FailedOperation.Domain.UnExist", "DeleteCustomDomain", {"Domain": f"x{domain}"})
    scf.call("DeleteCustomDomain", {"Domain": domain})
    scf.error("FailedOperation.Domain.UnExist", "DeleteCustomDomain", {"Domain": domain})


def openssl(*args: str, cwd: Path) -> None:
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def make_certs(d: Path, names: list[str]) -> None:
    """A test CA and, per name, a key and a leaf certificate for it signed by the CA."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=Stratus test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    for n in names:
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={n}",
                "-keyout", f"{n}.key", "-out", f"{n}.csr", cwd=d)
        (d / f"{n}.ext").write_text(f"subjectAltName=DNS:{n}\nbasicConstraints=CA:FALSE\n")
        openssl("x509", "-req", "-in", f"{n}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{n}.ext", "-out", f"{n}.pem", cwd=d)


def https_get(port: int, sni: str, path: str, ca: Path) -> tuple[int, dict]:
    ctx = ssl.create_default_context(cafile=str(ca))
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=ctx)
    # http.client sends SNI and checks the certificate against the connection's host: connect to 127.0.0.1 but
    # name the domain, as a client resolving the domain to this listener would.
    c.host = sni
    c._create_connection = lambda addr, *a, **k: socket.create_connection(("127.0.0.1", port), *a)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def test_https_by_sni_with_configured_certificates(stratus):
    assert shutil.which("openssl"), "this test makes its certificates with the openssl CLI: install openssl"
    d = Path(tempfile.mkdtemp(prefix="stratus-certs-"))
    try:
        one, two = "one.domains.stratus.test", "two.domains.stratus.test"
        make_certs(d, [one, two])
        cfg = d / "stratus.toml"
        cfg.write_text(
            "[http]\ntls_listen = \"127.0.0.1:0\"\n[http.certificates]\n"
            f"cert-one = {{ cert = \"{d / (one + '.pem')}\", key = \"{d / (one + '.key')}\" }}\n"
            f"cert-two = {{ cert = \"{d / (two + '.pem')}\", key = \"{d / (two + '.key')}\" }}\n")
        srv = stratus(env={"STRATUS_CONFIG": str(cfg), "STRATUS_PUBLIC_URL": "http://*.fn.stratus.test"})
        scf = Scf(srv.client(), srv, srv.creds)
        line = [ln for ln in srv.stdout_lines if ln.startswith("stratus custom domains over HTTPS on ")]
        assert line, srv.stdout_lines
        port = int(line[0].rsplit(":", 1)[1])
        fa = scf.create_function(zip_bytes=pkg(ECHO % "a"))
        fb = scf.create_function(zip_bytes=pkg(ECHO % "b"))
        for name, fn, cert, proto in [(one, fa, "cert-one", "HTTPS"), (two, fb, "cert-two", "HTTP&HTTPS")]:
            scf.call("CreateCustomDomain", {
                "Domain": name, "Protocol": proto, "CertConfig": {"CertificateId": cert},
                "EndpointsConfig": [{"Namespace": "default", "FunctionName": fn, "Qualifier": "$LATEST",
                                     "PathMatch": "/*"}]})
        assert scf.call("GetCustomDomain", {"Domain": one})["CertConfig"]["CertificateId"] == "cert-one"
        # The function URLs' own hosts cannot be claimed as custom domains.
        for taken in ["fn.stratus.test", "x.fn.stratus.test"]:
            scf.error("InvalidParameterValue.Domain", "CreateCustomDomain", {
                "Domain": taken, "Protocol": "HTTP",
                "EndpointsConfig": [{"Namespace": "default", "FunctionName": fa, "Qualifier": "$LATEST",
                                     "PathMatch": "/*"}]})
        # Each name gets its own certificate (the client checks it against the CA and the name).
        st, body = https_get(port, one, "/x", d / "ca.pem")
        assert st == 200 and body["fn"] == "a" and body["path"] == "/x", body
        st, body = https_get(port, two, "/y", d / "ca.pem")
        assert st == 200 and body["fn"] == "b", body
        # An HTTPS-only domain is not served over plain HTTP; HTTP&HTTPS is.
        addr = listener(srv)
        assert get(addr, one, "/x")[0] == 403
        assert get(addr, two, "/y")[0] == 200
        # A name that is no HTTPS domain gets no certificate: the handshake fails.
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            https_get(port, "three.domains.stratus.test", "/", d / "ca.pem")
    finally:
        shutil.rmtree(d, ignore_errors=True)
