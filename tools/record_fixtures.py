"""Records a request and a reply body for every action Stratus serves, through the official Python SDK, into
crates/api/tests/fixtures/served/. The wire round-trip tests then check that the generated models read and write
them unchanged.

Usage: python tools/record_fixtures.py http://127.0.0.1:PORT DATA_DIR/dev-credentials.json
(run against a fresh `stratus serve`; needs tencentcloud-sdk-python-scf).
"""
import base64
import io
import json
import pathlib
import sys
import time
import zipfile

from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import scf_client

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/api/tests/fixtures/served"


def zip_b64(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return base64.b64encode(buf.getvalue()).decode()


def main():
    endpoint, creds_path = sys.argv[1], sys.argv[2]
    creds = json.load(open(creds_path))
    hp = HttpProfile(endpoint=endpoint.split("://", 1)[-1], protocol="http", reqTimeout=60)
    client = scf_client.ScfClient(
        credential.Credential(creds["SecretId"], creds["SecretKey"]), "ap-guangzhou", ClientProfile(httpProfile=hp)
    )
    OUT.mkdir(parents=True, exist_ok=True)

    def call(action, params, record=True):
        body = client.call(action, params)
        reply = json.loads(body)
        if "Error" in reply["Response"]:
            raise SystemExit(f"{action} failed: {reply}")
        if record:
            (OUT / f"{action}.request.json").write_text(json.dumps(params, indent=1, ensure_ascii=False) + "\n")
            (OUT / f"{action}.response.json").write_text(json.dumps(reply, indent=1, ensure_ascii=False) + "\n")
        return reply["Response"]

    def wait(name, qualifier="$LATEST"):
        for _ in range(200):
            r = call("GetFunction", {"FunctionName": name, "Qualifier": qualifier}, record=False)
            if r["Status"] not in ("Creating", "Updating", "Publishing", "Deleting"):
                return r
            time.sleep(0.02)
        raise SystemExit(f"{name} stuck")

    code = zip_b64({"index.py": "def main_handler(event, context):\n    return event\n"})
    layer = zip_b64({"python/helper.py": "VALUE = 1\n"})
    call("CreateNamespace", {"Namespace": "team", "Description": "fixtures"})
    call("UpdateNamespace", {"Namespace": "team", "Description": "recorded fixtures"})
    call("PublishLayerVersion", {"LayerName": "deps", "CompatibleRuntimes": ["Python3.9"],
                                 "Content": {"ZipFile": layer}, "Description": "helpers"})
    time.sleep(0.2)
    call("GetLayerVersion", {"LayerName": "deps", "LayerVersion": 1})
    call("ListLayers", {"CompatibleRuntime": "Python3.9"})
    call("ListLayerVersions", {"LayerName": "deps"})
    call("CreateFunction", {
        "FunctionName": "hello", "Runtime": "Python3.9", "Handler": "index.main_handler",
        "Code": {"ZipFile": code}, "MemorySize": 256, "Timeout": 10, "Description": "greets",
        "Environment": {"Variables": [{"Key": "GREETING", "Value": "hi"}]},
        "Layers": [{"LayerName": "deps", "LayerVersion": 1}],
    })
    wait("hello")
    call("GetFunction", {"FunctionName": "hello"})
    call("Invoke", {"FunctionName": "hello", "ClientContext": json.dumps({"greeting": "hi"}), "LogType": "Tail"})
    call("InvokeFunction", {"FunctionName": "hello", "Event": json.dumps({"n": 1})})
    invoked = call("Invoke", {"FunctionName": "hello"}, record=False)["Result"]["FunctionRequestId"]
    time.sleep(0.3)
    call("GetFunctionLogs", {"FunctionName": "hello", "Limit": 2})
    call("GetRequestStatus", {"FunctionName": "hello", "FunctionRequestId": invoked})
    event = call("Invoke", {"FunctionName": "hello", "InvocationType": "Event",
                            "ClientContext": json.dumps({"queued": True})}, record=False)["Result"]["FunctionRequestId"]
    for _ in range(200):
        if call("GetAsyncEventStatus", {"InvokeRequestId": event}, record=False)["Result"]["Status"] != "RUNNING":
            break
        time.sleep(0.05)
    call("GetAsyncEventStatus", {"InvokeRequestId": event})
    call("UpdateFunctionEventInvokeConfig", {"FunctionName": "hello",
                                             "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}], "MsgTTL": 3600}})
    call("GetFunctionEventInvokeConfig", {"FunctionName": "hello", "Qualifier": "$LATEST"})
    sleepy = zip_b64({"index.py": "import time\ndef main_handler(event, context):\n    time.sleep(5)\n"})
    call("CreateFunction", {"FunctionName": "sleepy", "Runtime": "Python3.9", "Handler": "index.main_handler",
                            "Code": {"ZipFile": sleepy}, "Timeout": 10}, record=False)
    wait("sleepy")
    running = call("Invoke", {"FunctionName": "sleepy", "InvocationType": "Event"},
                   record=False)["Result"]["FunctionRequestId"]
    time.sleep(0.5)
    call("TerminateAsyncEvent", {"FunctionName": "sleepy", "InvokeRequestId": running})
    call("DeleteFunction", {"FunctionName": "sleepy"}, record=False)
    call("ListAsyncEvents", {"FunctionName": "hello", "Status": ["FINISHED"], "Order": "ASC", "Limit": 10})
    call("ListFunctions", {"Limit": 10, "Order": "ASC", "Orderby": "FunctionName"})
    call("UpdateFunctionCode", {"FunctionName": "hello", "Code": {"ZipFile": code}, "Handler": "index.main_handler"})
    wait("hello")
    call("UpdateFunctionConfiguration", {"FunctionName": "hello", "Timeout": 20})
    wait("hello")
    call("PublishVersion", {"FunctionName": "hello", "Description": "first"})
    wait("hello", "1")
    call("PublishVersion", {"FunctionName": "hello", "Description": "second"}, record=False)
    wait("hello", "2")
    call("ListVersionByFunction", {"FunctionName": "hello"})
    call("CreateAlias", {"FunctionName": "hello", "Name": "prod", "FunctionVersion": "1",
                         "RoutingConfig": {"AdditionalVersionWeights": [{"Version": "2", "Weight": 0.25}]}})
    call("GetAlias", {"FunctionName": "hello", "Name": "prod"})
    call("UpdateAlias", {"FunctionName": "hello", "Name": "prod", "FunctionVersion": "2"})
    call("ListAliases", {"FunctionName": "hello"})
    call("CreateTrigger", {"FunctionName": "hello", "TriggerName": "every-5-minutes", "Type": "timer",
                           "TriggerDesc": "0 */5 * * * * *", "Qualifier": "prod", "CustomArgument": "tick",
                           "Description": "five minutes"})
    call("UpdateTrigger", {"FunctionName": "hello", "TriggerName": "every-5-minutes", "Type": "timer",
                           "TriggerDesc": "*/10 * * * *", "Description": "ten minutes"})
    call("UpdateTriggerStatus", {"FunctionName": "hello", "TriggerName": "every-5-minutes", "Type": "timer",
                                 "Enable": "CLOSE"})
    call("ListTriggers", {"FunctionName": "hello", "Filters": [{"Name": "Qualifier", "Values": ["prod"]}],
                          "OrderBy": "add_time", "Order": "ASC", "Limit": 10})
    call("DeleteTrigger", {"FunctionName": "hello", "TriggerName": "every-5-minutes", "Type": "timer",
                           "Qualifier": "prod"})
    call("DeleteAlias", {"FunctionName": "hello", "Name": "prod"})
    call("DeleteFunctionVersion", {"FunctionName": "hello", "Qualifier": "1"})
    call("GetFunctionAddress", {"FunctionName": "hello"})
    call("CopyFunction", {"FunctionName": "hello", "NewFunctionName": "hello-copy", "TargetNamespace": "team"})
    wait_copy = call("GetFunction", {"FunctionName": "hello-copy", "Namespace": "team"}, record=False)
    assert wait_copy["FunctionName"] == "hello-copy"
    call("PutTotalConcurrencyConfig", {"TotalConcurrencyMem": 64000, "Namespace": "default"})
    call("PutReservedConcurrencyConfig", {"FunctionName": "hello", "ReservedConcurrencyMem": 1024})
    call("GetReservedConcurrencyConfig", {"FunctionName": "hello"})
    call("ListNamespaces", {})
    call("GetAccount", {})
    call("DeleteReservedConcurrencyConfig", {"FunctionName": "hello"})
    route = {"Namespace": "default", "FunctionName": "hello", "Qualifier": "$LATEST", "PathMatch": "/api/*",
             "PathRewrite": [{"Path": "/api/v1/*", "Type": "WildcardRules", "Rewrite": "/v2/$"}]}
    call("CreateCustomDomain", {"Domain": "fn.example.com", "Protocol": "HTTP", "EndpointsConfig": [route],
                                "WafConfig": {"WafOpen": "CLOSE"}, "Tags": [{"Key": "team", "Value": "web"}]})
    call("GetCustomDomain", {"Domain": "fn.example.com"})
    call("ListCustomDomains", {"Limit": 10})
    call("UpdateCustomDomain", {"Domain": "fn.example.com",
                                "EndpointsConfig": [route, dict(route, PathMatch="/*", PathRewrite=[])]})
    call("DeleteCustomDomain", {"Domain": "fn.example.com"})
    call("DeleteFunction", {"FunctionName": "hello"})
    call("DeleteLayerVersion", {"LayerName": "deps", "LayerVersion": 1})
    time.sleep(0.3)
    call("DeleteFunction", {"FunctionName": "hello-copy", "Namespace": "team"}, record=False)
    time.sleep(0.3)
    call("DeleteNamespace", {"Namespace": "team"})
    print(f"recorded {len(list(OUT.glob('*.request.json')))} actions into {OUT}")


if __name__ == "__main__":
    main()
