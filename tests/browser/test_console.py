"""The web console in headless Chromium: sign in, create a function from a zip and watch it turn Active without a
reload, invoke it, read its log, see a failed update's reasons, delete it; every page's screenshot is saved under
target/browser-artifacts/. The first page must weigh under 200 KB on the wire."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid

import pytest
from playwright.sync_api import expect

from harness import zips
from harness.api import Scf, unique

FIRST_PAGE_LIMIT = 200 * 1024
SLOW = 30_000  # ms: preparation and a cold start on a busy machine

HANDLER_SOURCE = """\
def main_handler(event, context):
    print("console-log-line", event.get("who"))
    return {"hello": event.get("who"), "marker": %r}
"""


def console_url(server) -> str:
    return f"{server.url}/console"


def sign_in(page, server, shots=None):
    page.goto(console_url(server))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    if shots:
        shots(page, "sign-in")
    page.fill("#secret-id", server.creds.secret_id)
    page.fill("#secret-key", server.creds.secret_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Functions")).to_be_visible()


def transferred(responses) -> int:
    total = 0
    for r in responses:
        sizes = r.request.sizes()
        total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
    return total


def test_first_page_is_small_and_strict(server, page, shots, artifacts):
    # Measured as a first visit: nothing from the browser's cache.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.clearBrowserCache")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    responses = []
    page.on("response", lambda r: responses.append(r))
    resp = page.goto(console_url(server))
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shots(page, "first-page")
    size = transferred(responses)
    print(f"first page: {len(responses)} responses, {size} bytes transferred")
    (artifacts / "first-page.json").write_text(json.dumps(
        {"responses": len(responses), "bytes": size, "limit": FIRST_PAGE_LIMIT,
         "files": {r.url.removeprefix(server.url): r.request.sizes()["responseBodySize"] for r in responses}}, indent=2))
    assert size < FIRST_PAGE_LIMIT, f"the first page transferred {size} bytes"
    assert all(r.status == 200 for r in responses), [(r.url, r.status) for r in responses]
    assert all(r.url.startswith(server.url) for r in responses), [r.url for r in responses]
    csp = resp.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp, csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # The policy is in force: an inline script injected into the page does not run.
    page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1';
                              document.head.append(s); }""")
    assert page.evaluate("window.__inline") is None
    assert any("Content Security Policy" in p for p in page.problems), page.problems
    page.problems.clear()
    # A wrong key is refused with the API's error, and nothing is stored.
    page.fill("#secret-id", server.creds.secret_id)
    page.fill("#secret-key", "not-the-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("AuthFailure.SignatureFailure")
    assert page.evaluate("sessionStorage.length") == 0
    assert server.creds.secret_key not in page.url and "not-the-key" not in page.url
    shots(page, "sign-in-refused")
    # Once signed in, the function list (the first page a user works on) is small too.
    responses.clear()
    page.fill("#secret-key", server.creds.secret_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Functions")).to_be_visible()
    assert server.creds.secret_key not in page.url
    page.reload()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", name="Functions")).to_be_visible()
    size = transferred(responses)
    print(f"function list after a reload: {size} bytes transferred")
    assert size < FIRST_PAGE_LIMIT
    assert page.problems == [], page.problems


def test_function_lifecycle_in_the_console(server, page, shots, tmp_path):
    name = "console-" + uuid.uuid4().hex[:8]
    good = tmp_path / "code.zip"
    good.write_bytes(zips.build([zips.Entry("index.py", (HANDLER_SOURCE % name).encode())]))
    broken = tmp_path / "broken.zip"
    broken.write_bytes(zips.missing_handler_file())

    sign_in(page, server, shots)
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page
    shots(page, "functions-empty")

    # Create from a zip, with the upload's progress.
    page.get_by_role("link", name="Create function").click()
    expect(page.get_by_role("heading", name="Create function")).to_be_visible()
    page.fill("#fn-name", name)
    page.select_option("#fn-runtime", zips.PY_RUNTIME)
    page.fill("#fn-description", "made in the browser test")
    page.fill("#fn-env", "GREETING=hi")
    page.set_input_files("#fn-zip", str(good))
    shots(page, "create-form")
    page.get_by_role("button", name="Create").click()
    # The function page opens, Creating (held 2 s by the server's fail point), and turns Active by itself.
    expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.locator("#fn-status .chip")).to_have_text("Creating", timeout=SLOW)
    shots(page, "function-creating")
    expect(page.locator("#fn-status .chip")).to_have_text("Active", timeout=SLOW)
    assert page.evaluate("window.__sameDocument") is True
    shots(page, "function-configuration")
    expect(page.locator("dl.props")).to_contain_text("index.main_handler")
    expect(page.locator("dl.props")).to_contain_text("GREETING")

    # The list shows it Active too, without a reload.
    page.get_by_role("link", name="Functions", exact=True).first.click()
    row = page.locator(f"tr[data-function='{name}']")
    expect(row.locator(".chip")).to_have_text("Active", timeout=SLOW)
    shots(page, "functions-list")

    # Invoke with an event.
    row.get_by_role("link", name=name).click()
    page.get_by_role("link", name="Invoke").click()
    editor = page.locator("#event")
    editor.fill('{"who": "browser"')
    expect(page.locator("#invoke-run")).to_be_enabled()
    expect(editor).to_have_class(re.compile("invalid"))
    editor.fill('{"who": "browser"}')
    expect(editor).not_to_have_class(re.compile("invalid"))
    page.locator("#invoke-run").click()
    expect(page.locator("#invoke-retmsg")).to_contain_text('"hello": "browser"', timeout=SLOW)
    expect(page.locator("#invoke-retmsg")).to_contain_text(name)
    expect(page.locator("#invoke-log")).to_contain_text("console-log-line browser")
    request_id = page.locator("#invoke-result code").first.inner_text().strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", request_id), request_id
    shots(page, "invoke-result")

    # Its log, found by request id.
    page.get_by_role("link", name="Logs").click()
    page.fill("#log-request", request_id)
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#log-list tbody tr")
    expect(rows).to_have_count(1, timeout=SLOW)
    expect(rows.first).to_contain_text(request_id)
    rows.first.locator("summary").click()
    expect(rows.first.locator("pre").first).to_contain_text("console-log-line browser")
    shots(page, "logs")

    # Charts drawn from the invocation records.
    page.get_by_role("link", name="Monitoring").click()
    inv = page.locator("figure[data-chart='Invocations']")
    expect(inv.locator(".total")).to_have_text("1", timeout=SLOW)
    expect(page.locator("figure[data-chart='Errors'] .total")).to_have_text("0")
    assert inv.locator("rect.bar").count() == 60
    shots(page, "monitoring")

    # A version and the default alias, with its weights.
    page.get_by_role("link", name="Versions & aliases").click()
    page.fill("#version-description", "first")
    page.get_by_role("button", name="Publish version").click()
    expect(page.locator("tbody").first).to_contain_text("first", timeout=SLOW)
    shots(page, "versions")
    page.get_by_role("link", name="Triggers").click()
    expect(page.get_by_text("No triggers.")).to_be_visible()
    page.get_by_role("link", name="Layers", exact=True).last.click()
    expect(page.get_by_text("No layers bound.", exact=False)).to_be_visible()

    # Download the code through the signed link.
    page.get_by_role("link", name="Code", exact=True).click()
    page.get_by_role("button", name="Get download link").click()
    link = page.locator("#code-download")
    expect(link).to_be_visible()
    shots(page, "code")
    with urllib.request.urlopen(link.get_attribute("href"), timeout=10) as r:
        assert r.read() == good.read_bytes()

    # An update whose zip lacks the handler's file: UpdateFailed, its reasons shown, the old code still serving.
    page.set_input_files("#code-zip", str(broken))
    page.get_by_role("button", name="Update code").click()
    expect(page.locator("#fn-status .chip")).to_have_text("Updating", timeout=SLOW)
    expect(page.locator("#fn-status .chip")).to_have_text("UpdateFailed", timeout=SLOW)
    reasons = page.locator("#fn-reasons")
    expect(reasons).to_contain_text("index.py")
    expect(reasons).to_contain_text("previous code")
    loaded = int(page.locator(".progress").get_attribute("data-loaded"))
    assert loaded >= broken.stat().st_size, loaded  # the upload's progress was followed
    shots(page, "update-failed")

    # Delete it: the page says so and the list drops it, without reloads.
    page.locator("#fn-delete").click()
    dialog = page.locator("dialog")
    expect(dialog).to_be_visible()
    shots(page, "delete-confirm")
    dialog.get_by_role("button", name="Delete function").click()
    expect(page.locator("#fn-status .chip")).to_have_text("Deleted", timeout=SLOW)
    page.get_by_role("link", name="Functions", exact=True).first.click()
    expect(page.get_by_role("heading", name="Functions")).to_be_visible()
    expect(page.locator(f"tr[data-function='{name}']")).to_have_count(0, timeout=SLOW)
    assert page.evaluate("window.__sameDocument") is True
    shots(page, "functions-after-delete")
    assert page.problems == [], page.problems
    # The key signed every request and went into none of them, nor into the server's log.
    assert server.creds.secret_key not in server.stderr_path.read_text(errors="replace")


def test_account_layers_and_namespaces_pages(server, page, shots, tmp_path):
    sign_in(page, server)
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="Per namespace")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Namespaces: 1 of 5")
    shots(page, "account")

    layer = tmp_path / "layer.zip"
    layer.write_bytes(zips.build([zips.Entry("python/helper.py", b"X = 1\n")]))
    page.get_by_role("link", name="Layers").click()
    page.fill("#layer-name", "console_layer")
    page.set_input_files("#layer-zip", str(layer))
    page.get_by_role("button", name="Publish version").click()
    expect(page.locator("main tbody")).to_contain_text("console_layer", timeout=SLOW)
    # Published in the background: the list follows the version to Active.
    expect(page.locator("main tbody tr", has_text="console_layer").locator(".chip")).to_have_text("Active", timeout=SLOW)
    page.get_by_role("button", name="Versions").click()
    expect(page.locator("main td table tbody tr")).to_have_count(1)
    shots(page, "layers")

    page.get_by_role("link", name="Namespaces").click()
    page.fill("#ns-name", "console-ns")
    page.get_by_role("button", name="Create namespace").click()
    expect(page.locator("main tbody")).to_contain_text("console-ns", timeout=SLOW)
    expect(page.locator("#namespace option[value='console-ns']")).to_have_count(1)
    shots(page, "namespaces")
    page.select_option("#namespace", "console-ns")
    expect(page.get_by_role("heading", name="Namespace console-ns")).to_be_visible()
    expect(page.get_by_text("No functions yet.", exact=False)).to_be_visible()
    # Deleted again: gone from the list and from the selector, which falls back to default.
    page.get_by_role("link", name="Namespaces").click()
    page.locator("main tbody tr", has_text="console-ns").get_by_role("button", name="Delete").click()
    page.locator("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator("main tbody tr", has_text="console-ns")).to_have_count(0, timeout=SLOW)
    expect(page.locator("#namespace option[value='console-ns']")).to_have_count(0)
    expect(page.locator("#namespace")).to_have_value("default")
    assert page.problems == [], page.problems


@pytest.fixture(scope="module")
def sample(server):
    """A function made with the official SDK: two versions, a weighted alias, a timer, three calls and a failure."""
    scf = Scf(server.client(), server, server.creds)
    source = HANDLER_SOURCE.replace("    print(", '    if event.get("fail"):\n        raise ValueError("asked to fail")\n    print(')

    def code(marker: str) -> str:
        return zips.b64(zips.build([zips.Entry("index.py", (source % marker).encode())]))

    name = scf.create_function(unique("sample"), zip_bytes=zips.build([zips.Entry("index.py", (source % "v1").encode())]),
                               Description="two versions and an alias")
    v1 = scf.publish_version(name)
    scf.call("UpdateFunctionCode", {"FunctionName": name, "Handler": zips.PY_HANDLER,
                                    "ZipFile": code("v2")})
    scf.wait(name, {"Active"})
    v2 = scf.publish_version(name)
    scf.call("CreateAlias", {"FunctionName": name, "Name": "live", "FunctionVersion": v1,
                             "RoutingConfig": {"AdditionalVersionWeights": [{"Version": v2, "Weight": 0.3}]}})
    scf.call("CreateTrigger", {"FunctionName": name, "TriggerName": "every5", "Type": "timer",
                               "TriggerDesc": "0 */5 * * * * *"})
    for i in range(3):
        scf.call("Invoke", {"FunctionName": name, "ClientContext": json.dumps({"i": i})})
    failed = scf.call("Invoke", {"FunctionName": name, "ClientContext": json.dumps({"fail": True})})["Result"]
    assert failed["InvokeResult"] != 0, failed
    return name, scf


@pytest.mark.parametrize("width", [390, 1280])
def test_pages_fit_the_width(server, browser, shots, sample, width):
    sample, scf = sample
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": 844})
    try:
        page.goto(console_url(server))
        page.fill("#secret-id", server.creds.secret_id)
        page.fill("#secret-key", server.creds.secret_key)
        page.get_by_role("button", name="Sign in").click()
        for hash_, heading in [("#/functions", "Functions"), ("#/create", "Create function"),
                               ("#/layers", "Layers"), ("#/account", "Account"), ("#/namespaces", "Namespaces")]:
            page.goto(f"{console_url(server)}{hash_}")
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{hash_} is {overflow}px wider than {width}px"
            shots(page, heading)
        base = f"{console_url(server)}#/fn/default/{sample}"
        for tab, ready in [("overview", "dl.props"), ("invoke", "#event"), ("logs", "#log-list tbody tr"),
                           ("monitoring", "figure[data-chart='Invocations']"), ("versions", ".weights"),
                           ("triggers", "main tbody tr")]:
            page.goto(f"{base}/{tab}")
            expect(page.locator(ready).first).to_be_visible(timeout=SLOW)
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{tab} is {overflow}px wider than {width}px"
            shots(page, f"function-{tab}")
        page.goto(f"{base}/versions")
        expect(page.locator("tr", has_text="live").locator(".weights span")).to_have_text("v1 70% · v2 30%")
        expect(page.locator("tr", has_text="$DEFAULT").locator(".weights span")).to_have_text("$LATEST 100%")
        page.goto(f"{base}/triggers")
        expect(page.locator("main tbody")).to_contain_text("0 */5 * * * * *")
        page.goto(f"{base}/monitoring")
        calls = scf.call("GetFunctionLogs", {"FunctionName": sample, "Limit": 1})["TotalCount"]
        errors = scf.call("GetFunctionLogs", {"FunctionName": sample, "Limit": 1, "Filter": {"RetCode": "not0"}})["TotalCount"]
        assert calls >= 4 and errors >= 1
        expect(page.locator("figure[data-chart='Invocations'] .total")).to_have_text(str(calls), timeout=SLOW)
        expect(page.locator("figure[data-chart='Errors'] .total")).to_have_text(str(errors))
        # Only the failed calls, through the log search's result filter.
        page.goto(f"{base}/logs")
        page.select_option("#log-retcode", "not0")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#log-list tbody tr")).to_have_count(errors, timeout=SLOW)
        expect(page.locator("#log-list tbody tr").first).to_contain_text("asked to fail")
        # Every call, then narrowed by a keyword of their logs.
        page.select_option("#log-retcode", "")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#log-list tbody tr")).to_have_count(calls, timeout=SLOW)
        page.fill("#log-keyword", "asked to fail")
        expect(page.locator("#log-list tbody tr")).to_have_count(errors)
        # A failed invocation from the editor shows its error.
        page.goto(f"{base}/invoke")
        page.locator("#event").fill('{"fail": true}')
        page.locator("#invoke-run").click()
        expect(page.locator("#invoke-errmsg")).to_contain_text("asked to fail", timeout=SLOW)
        expect(page.locator("#invoke-result .chip")).to_have_text("Failed")
        shots(page, "invoke-failed")
        # Keyboard: a page moves the focus to its content; Tab reaches its first control, Shift+Tab the top bar.
        page.goto(f"{console_url(server)}#/functions")
        expect(page.get_by_role("link", name="Create function")).to_be_visible()
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Create function"
        page.keyboard.press("Shift+Tab")
        assert page.evaluate("document.activeElement.textContent") == "Sign out"
    finally:
        page.close()


def test_bind_and_unbind_a_layer(server, page, shots, sample):
    name, scf = sample
    layer, version = scf.publish_layer(unique("lib").replace("-", "_"))
    sign_in(page, server)
    page.goto(f"{console_url(server)}#/fn/default/{name}/layers")
    expect(page.get_by_text("No layers bound.")).to_be_visible()
    expect(page.locator(f"#bind-layer option[value='{layer}']")).to_have_count(1)
    page.select_option("#bind-layer", layer)
    expect(page.locator(f"#bind-version option[value='{version}']")).to_have_count(1)
    page.get_by_role("button", name="Bind").click()
    bound = page.locator("main tbody tr", has_text=layer)
    expect(bound).to_have_count(1, timeout=SLOW)
    expect(page.locator("#fn-status .chip")).to_have_text("Active", timeout=SLOW)
    assert [(l["LayerName"], l["LayerVersion"]) for l in scf.get(name)["Layers"]] == [(layer, version)]
    shots(page, "layer-bound")
    bound.get_by_role("button", name="Unbind").click()
    expect(page.get_by_text("No layers bound.")).to_be_visible(timeout=SLOW)
    expect(page.locator("#fn-status .chip")).to_have_text("Active", timeout=SLOW)
    assert scf.get(name)["Layers"] == []
    assert page.problems == [], page.problems


def test_a_key_that_stops_working_returns_to_sign_in(server, page):
    sign_in(page, server)
    # As if the key had been replaced meanwhile: the next live refresh is refused and the tab forgets the key.
    page.evaluate("""() => sessionStorage.setItem('stratus.console.credentials',
                       JSON.stringify({secretId: %s, secretKey: 'revoked'}))""" % json.dumps(server.creds.secret_id))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=SLOW)
    expect(page.locator(".toast.bad")).to_contain_text("Signed out")
    assert page.evaluate("sessionStorage.getItem('stratus.console.credentials')") is None
    assert not page.locator("#topbar").is_visible()


def test_create_update_and_delete_an_alias(server, page, shots, sample):
    name, scf = sample
    sign_in(page, server)
    page.goto(f"{console_url(server)}#/fn/default/{name}/versions")
    expect(page.locator("#alias-version option[value='2']")).to_have_count(1, timeout=SLOW)
    page.fill("#alias-name", "canary")
    page.select_option("#alias-version", "2")
    page.select_option("#alias-extra", "1")
    page.fill("#alias-weight", "10")
    page.get_by_role("button", name="Save alias").click()
    row = page.locator("main tbody tr", has_text="canary")
    expect(row.locator(".weights span")).to_have_text("v2 90% · v1 10%", timeout=SLOW)
    got = scf.call("GetAlias", {"FunctionName": name, "Name": "canary"})
    assert got["FunctionVersion"] == "2"
    assert got["RoutingConfig"]["AdditionalVersionWeights"] == [{"Version": "1", "Weight": 0.1}]
    shots(page, "alias-created")
    page.reload()  # the editor is filled back from the alias
    row.get_by_role("button", name="Edit").click()
    expect(page.locator("#alias-name")).to_have_value("canary")
    expect(page.locator("#alias-version")).to_have_value("2")
    expect(page.locator("#alias-extra")).to_have_value("1")
    expect(page.locator("#alias-weight")).to_have_value("10")
    page.fill("#alias-weight", "50")
    page.get_by_role("button", name="Save alias").click()
    expect(row.locator(".weights span")).to_have_text("v2 50% · v1 50%", timeout=SLOW)
    row.get_by_role("button", name="Delete").click()
    page.locator("dialog").get_by_role("button", name="Delete alias").click()
    expect(page.locator("main tbody tr", has_text="canary")).to_have_count(0, timeout=SLOW)
    assert "canary" not in {a["Name"] for a in scf.call("ListAliases", {"FunctionName": name})["Aliases"]}
    assert page.problems == [], page.problems


def test_edit_the_configuration(server, page, shots, sample):
    name, scf = sample
    sign_in(page, server)
    page.goto(f"{console_url(server)}#/fn/default/{name}/overview")
    expect(page.locator("#cfg-timeout")).not_to_have_value("", timeout=SLOW)
    page.fill("#cfg-description", "edited in the console")
    page.select_option("#cfg-memory", "256")
    page.fill("#cfg-timeout", "7")
    page.fill("#cfg-env", "MODE=edited\nLEVEL=2")
    page.get_by_role("button", name="Save configuration").click()
    props = page.locator("dl.props")
    expect(props).to_contain_text("256 MB", timeout=SLOW)
    expect(props).to_contain_text("7 s")
    expect(props).to_contain_text("MODE, LEVEL")
    expect(page.locator("#fn-status .chip")).to_have_text("Active", timeout=SLOW)
    got = scf.get(name)
    assert (got["MemorySize"], got["Timeout"], got["Description"]) == (256, 7, "edited in the console")
    assert got["Environment"]["Variables"] == [{"Key": "MODE", "Value": "edited"}, {"Key": "LEVEL", "Value": "2"}]
    shots(page, "configuration-edited")
    # A line that is not KEY=VALUE is refused in the page, before any request.
    page.fill("#cfg-env", "not a pair")
    page.get_by_role("button", name="Save configuration").click()
    expect(page.locator(".toast.bad")).to_contain_text("is not KEY=VALUE")
    assert page.problems == [], page.problems
