#!/usr/bin/env node
// Call one SCF action through the official Node SDK (tencentcloud-sdk-nodejs-scf, pinned in package.json), set up
// the way shared/reference/clients/PROTOCOL.md section 1 says, so that the conformance suite can drive it.
//
// Usage:
//   node scf.js --endpoint 127.0.0.1:PORT [options] ACTION [PARAMS]
//
//   PARAMS      the action's parameters: a JSON object, or file://PATH to read them from a file (for zips: Linux
//               limits one argument to 128 KiB). Default {}.
//   --endpoint  host:port of the server, no scheme (the SDK builds "http://" + endpoint + "/").
//   --secret-id / --secret-key   default: $TENCENTCLOUD_SECRET_ID / $TENCENTCLOUD_SECRET_KEY.
//   --region    default ap-guangzhou.
//   --real-endpoint  use the endpoint scf.tencentcloudapi.com:PORT (PORT from --endpoint) and resolve that name to
//               the --endpoint host with an http.Agent lookup. Only then does the SDK sign with the scope service
//               "scf" (it takes endpoint.split(".")[0]: "127" for 127.0.0.1:PORT). No traffic leaves the machine.
//   --timeout   request timeout in seconds (default 60).
//
// Output, on stdout, one JSON object:
//   success:   {"ok": true, "response": <the SDK's reply: Response without the wrapper, RequestId included>}
//   API error: {"ok": false, "error": {"code", "message", "requestId", "traceId", "httpCode"}}   exit status 1
// Anything else (bad usage, connection refused, ...): a message on stderr, exit status 2.
"use strict";

// Node's SDK sends every URL through $http_proxy and ignores no_proxy (PROTOCOL.md section 1).
for (const v of ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]) {
  delete process.env[v];
}

const fs = require("fs");
const http = require("http");
const net = require("net");
const { Client: ScfClient } = require("tencentcloud-sdk-nodejs-scf").scf.v20180416;

function usage(msg) {
  process.stderr.write(`scf.js: ${msg}\nusage: node scf.js --endpoint HOST:PORT [--real-endpoint] ` +
    `[--secret-id ID] [--secret-key KEY] [--region R] [--timeout S] ACTION [JSON | file://PATH]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    secretId: process.env.TENCENTCLOUD_SECRET_ID,
    secretKey: process.env.TENCENTCLOUD_SECRET_KEY,
    region: "ap-guangzhou",
    timeout: 60,
    realEndpoint: false,
  };
  const rest = [];
  const flags = { "--endpoint": "endpoint", "--secret-id": "secretId", "--secret-key": "secretKey",
                  "--region": "region", "--timeout": "timeout" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--real-endpoint") {
      opts.realEndpoint = true;
    } else if (a in flags) {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      opts[flags[a]] = argv[++i];
    } else if (a.startsWith("--")) {
      usage(`unknown option ${a}`);
    } else {
      rest.push(a);
    }
  }
  if (!opts.endpoint) usage("--endpoint is required");
  if (!opts.secretId || !opts.secretKey) usage("no credentials (--secret-id/--secret-key or TENCENTCLOUD_SECRET_*)");
  if (rest.length < 1 || rest.length > 2) usage("expected ACTION and optional PARAMS");
  opts.action = rest[0];
  const raw = rest.length > 1 ? rest[1] : "{}";
  let text = raw;
  if (raw.startsWith("file://")) {
    text = fs.readFileSync(raw.slice("file://".length), "utf8");
  }
  try {
    opts.params = JSON.parse(text);
  } catch (e) {
    usage(`PARAMS is not JSON: ${e.message}`);
  }
  if (opts.params === null || typeof opts.params !== "object" || Array.isArray(opts.params)) {
    usage("PARAMS must be a JSON object");
  }
  opts.timeout = Number(opts.timeout);
  return opts;
}

function makeClient(opts) {
  const httpProfile = { endpoint: opts.endpoint, protocol: "http://", reqTimeout: opts.timeout };
  if (opts.realEndpoint) {
    // host:port → "scf.tencentcloudapi.com:port", with the name resolved to host by the agent: the SDK then signs
    // with service "scf" and host "scf.tencentcloudapi.com" (no port), and sends Host: scf.tencentcloudapi.com:port.
    const m = /^(.*):(\d+)$/.exec(opts.endpoint);
    if (!m) usage("--real-endpoint needs --endpoint HOST:PORT");
    const [, host, port] = m;
    if (!net.isIP(host)) usage("--real-endpoint needs an IP address in --endpoint");
    const family = net.isIP(host);
    httpProfile.endpoint = `scf.tencentcloudapi.com:${port}`;
    httpProfile.agent = new http.Agent({
      lookup: (hostname, options, cb) => {
        if (options && options.all) cb(null, [{ address: host, family }]);
        else cb(null, host, family);
      },
    });
  }
  return new ScfClient({
    credential: { secretId: opts.secretId, secretKey: opts.secretKey },
    region: opts.region,
    profile: { httpProfile },
  });
}

// Exit once stdout is flushed: keep-alive sockets must not hold the process open.
function emit(line, status) {
  process.stdout.write(line + "\n", () => process.exit(status));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const client = makeClient(opts);
  // The typed method, as a user calls it; an action the SDK does not know is a test bug, not a server error.
  if (typeof client[opts.action] !== "function" || !/^[A-Z]/.test(opts.action)) {
    usage(`the SDK's ScfClient has no action ${opts.action}`);
  }
  let response;
  try {
    response = await client[opts.action](opts.params);
  } catch (e) {
    if (e && e.code !== undefined) {
      emit(JSON.stringify({
        ok: false,
        error: {
          code: e.code,
          message: e.message,
          requestId: e.requestId,
          traceId: e.traceId,
          httpCode: e.httpCode === undefined ? null : e.httpCode,
        },
      }), 1);
      return;
    }
    // Transport failures and non-200 replies carry no code.
    const extra = e && e.httpCode !== undefined ? ` (HTTP ${e.httpCode})` : "";
    process.stderr.write(`scf.js: ${opts.action} failed without an API error code${extra}: ${e && e.message}\n`);
    process.exit(2);
  }
  emit(JSON.stringify({ ok: true, response }), 0);
}

main().catch((e) => {
  process.stderr.write(`scf.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(2);
});
