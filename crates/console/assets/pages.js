// The console's pages other than a function's own: sign-in, functions, create, namespaces, layers, account.

import { ApiError, call, fileBase64, saveCredentials, signingAvailable } from "./api.js";
import { POLL_MS, watchFunctions } from "./live.js";
import {
  busy, bytes, chip, clear, errorBox, field, h, progressBar, props, table, toast,
} from "./ui.js";

export const RUNTIMES = [
  "Python3.12", "Python3.11", "Python3.10", "Python3.9", "Python3.7", "Python3.6",
  "Nodejs20.15", "Nodejs18.15", "Nodejs16.13", "Nodejs14.18", "Nodejs12.16", "CustomRuntime",
];
export const MEMORY = [64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 3072];

export function pageHead(title, sub, ...actions) {
  return h("div.page-head", null,
    h("div.grow", null, h("h1", null, title), sub ? h("p.sub", null, sub) : null), ...actions);
}

// --- Sign-in --------------------------------------------------------------------------------------------------

export function signIn(main, done) {
  const id = h("input", { id: "secret-id", autocomplete: "off", spellcheck: "false", required: true });
  const key = h("input", { id: "secret-key", type: "password", autocomplete: "off", required: true });
  const err = h("div");
  const submit = h("button.btn.btn-primary", { type: "submit" }, "Sign in");
  // No `name` on the inputs and the policy's form-action 'none': the form can never put the key in a URL.
  const form = h("form.form", { novalidate: true },
    field("SecretId", id), field("SecretKey", key, "Kept in this tab only; every request is signed in the browser."),
    h("div.actions", null, submit));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(err);
    const creds = { secretId: id.value.trim(), secretKey: key.value.trim() };
    if (!creds.secretId || !creds.secretKey) {
      err.append(errorBox(new ApiError("MissingParameter", "Enter both the SecretId and the SecretKey.")));
      return;
    }
    submit.disabled = true;
    try {
      const acct = await call("GetAccount", {}, { credentials: creds });
      saveCredentials(creds);
      done(acct);
    } catch (e2) {
      err.append(errorBox(e2));
    } finally {
      submit.disabled = false;
    }
  });
  clear(main).append(h("section.signin", null,
    h("div.brand", null, h("img", { src: "/console/assets/favicon.svg", alt: "", width: 28, height: 28 }), "Stratus"),
    h("div.card", null, h("h1", null, "Sign in"),
      h("p.muted", null, "Use an API key of your account (stratus key create, or the development key printed by serve)."),
      signingAvailable() ? null : errorBox(new ApiError("UnsupportedBrowser",
        "This browser offers no WebCrypto here: open the console over HTTPS or on 127.0.0.1.")),
      err, form)));
  id.focus();
}

// --- Functions ------------------------------------------------------------------------------------------------

export function functionList(main, ctx) {
  const ns = ctx.namespace;
  const search = h("input", { type: "search", placeholder: "Filter by name", "aria-label": "Filter by name" });
  const body = h("div", null, h("div.empty", null, "Loading…"));
  const count = h("span.muted");
  clear(main).append(
    pageHead("Functions", null, h("a.btn.btn-primary", { href: `#/create?ns=${encodeURIComponent(ns)}` }, "Create function")),
    h("div.card", null,
      h("div.card-head", null, h("h2", null, `Namespace ${ns}`), count, h("div", null, search)),
      body));
  const rows = new Map();
  let tbody = null;
  const render = ({ functions, total }) => {
    const shown = functions.length < total ? `the first ${functions.length} of ` : "";
    count.textContent = `${shown}${total} function${total === 1 ? "" : "s"} · live`;
    if (!functions.length) {
      rows.clear();
      tbody = null;
      clear(body).append(h("div.empty", null, search.value ? "No function matches." : "No functions yet. Create one from a zip."));
      return;
    }
    if (!tbody) {
      tbody = h("tbody");
      clear(body).append(h("div.table-wrap", null, h("table", { id: "functions" },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, "Runtime"), h("th.hide-narrow", { scope: "col" }, "Description"),
          h("th.hide-narrow", { scope: "col" }, "Modified (UTC)"))), tbody)));
    }
    const seen = new Set();
    functions.forEach((f) => {
      seen.add(f.FunctionName);
      let row = rows.get(f.FunctionName);
      if (!row) {
        const link = h("a", { href: `#/fn/${encodeURIComponent(ns)}/${encodeURIComponent(f.FunctionName)}` }, f.FunctionName);
        row = { tr: h("tr", { "data-function": f.FunctionName }), cells: [] };
        row.cells = [h("td", null, link), h("td"), h("td"), h("td.hide-narrow"), h("td.hide-narrow")];
        row.tr.append(...row.cells);
        rows.set(f.FunctionName, row);
      }
      clear(row.cells[1]).append(chip(f.Status));
      row.cells[2].textContent = f.Runtime || "";
      row.cells[3].textContent = f.Description || "";
      row.cells[4].textContent = f.ModTime || "";
      tbody.append(row.tr); // keeps the listing's order
    });
    for (const [name, row] of rows) if (!seen.has(name)) { row.tr.remove(); rows.delete(name); }
  };
  let stop = null;
  const start = () => {
    if (stop) stop();
    stop = watchFunctions(ns, search.value.trim(), render, (e) => { clear(body).append(errorBox(e)); tbody = null; rows.clear(); });
  };
  let t = 0;
  search.addEventListener("input", () => { clearTimeout(t); t = setTimeout(start, 250); });
  start();
  return () => stop && stop();
}

// --- Create a function ----------------------------------------------------------------------------------------

/** Environment variables from `KEY=VALUE` lines. */
export function parseEnv(text) {
  const vars = [];
  for (const line of text.split("\n")) {
    const l = line.trim();
    if (!l || l.startsWith("#")) continue;
    const i = l.indexOf("=");
    if (i <= 0) throw new ApiError("InvalidParameterValue", `"${l}" is not KEY=VALUE.`);
    vars.push({ Key: l.slice(0, i).trim(), Value: l.slice(i + 1) });
  }
  return vars;
}

export function createFunction(main, ctx) {
  const ns = ctx.params.get("ns") || ctx.namespace;
  const name = h("input", { id: "fn-name", required: true, autocomplete: "off", spellcheck: "false" });
  const runtime = h("select", { id: "fn-runtime" }, RUNTIMES.map((r) => h("option", { value: r, selected: r === "Python3.9" }, r)));
  const handler = h("input", { id: "fn-handler", value: "index.main_handler" });
  const memory = h("select", { id: "fn-memory" }, MEMORY.map((m) => h("option", { value: String(m), selected: m === 128 }, `${m} MB`)));
  const timeout = h("input", { id: "fn-timeout", type: "number", min: 1, max: 900, value: "3" });
  const desc = h("input", { id: "fn-description", maxlength: 1000 });
  const env = h("textarea", { id: "fn-env", rows: 3, placeholder: "KEY=value, one a line" });
  const zip = h("input", { id: "fn-zip", type: "file", accept: ".zip,application/zip", required: true });
  const prog = progressBar("Upload");
  const err = h("div.wide");
  const submit = h("button.btn.btn-primary", { type: "submit" }, "Create");
  const form = h("form.form", { novalidate: true },
    field("Name", name, "2–60 letters, digits, - and _; starts with a letter"),
    field("Runtime", runtime), field("Handler", handler, "file.function, e.g. index.main_handler"),
    field("Memory", memory), field("Timeout (seconds)", timeout), field("Description", desc),
    h("div.wide", null, field("Environment variables", env)),
    h("div.wide", null, field("Code (zip)", zip, "Up to 50 MB; uploaded with the request, signed in this tab")),
    prog.box, err, h("div.actions", null, submit, h("a.btn", { href: "#/functions" }, "Cancel")));
  form.addEventListener("submit", busy(submit, async () => {
    clear(err);
    try {
      const file = zip.files[0];
      if (!name.value.trim()) throw new ApiError("MissingParameter", "Give the function a name.");
      if (!file) throw new ApiError("MissingParameter", "Choose a zip with the function's code.");
      const params = {
        Namespace: ns, FunctionName: name.value.trim(), Runtime: runtime.value, Handler: handler.value.trim(),
        MemorySize: Number(memory.value), Timeout: Number(timeout.value), Description: desc.value,
        Code: { ZipFile: await fileBase64(file) },
      };
      const vars = parseEnv(env.value);
      if (vars.length) params.Environment = { Variables: vars };
      await call("CreateFunction", params, { onProgress: prog.update });
      prog.done("uploaded");
      toast(`Creating ${params.FunctionName}…`);
      location.hash = `#/fn/${encodeURIComponent(ns)}/${encodeURIComponent(params.FunctionName)}`;
    } catch (e) {
      err.append(errorBox(e));
    }
  }));
  clear(main).append(pageHead("Create function", `In namespace ${ns}`), h("div.card", null, form));
  name.focus();
}

// --- Namespaces -----------------------------------------------------------------------------------------------

export async function namespaces(main, ctx) {
  const list = h("div", null, h("div.empty", null, "Loading…"));
  const nsName = h("input", { id: "ns-name", autocomplete: "off" });
  const nsDesc = h("input", { id: "ns-description" });
  const create = h("button.btn.btn-primary", { type: "submit" }, "Create namespace");
  const form = h("form.form", null, field("Name", nsName), field("Description", nsDesc), h("div.actions", null, create));
  const load = async () => {
    try {
      const r = await call("ListNamespaces", { Limit: 100 });
      clear(list).append(table(
        [{ label: "Name" }, { label: "Description" }, { label: "Type", narrow: true }, { label: "Created (UTC)", narrow: true }, { label: "" }],
        (r.Namespaces || []).map((n) => [
          h("a", { href: "#/functions", onclick: () => ctx.setNamespace(n.Name) }, n.Name),
          n.Description || "", n.Type || "", n.AddTime || "",
          n.Name === "default" ? "" : h("button.btn.btn-danger.btn-sm", { type: "button", onclick: (e) => removeNs(e.currentTarget, n.Name) }, "Delete"),
        ])));
    } catch (e) {
      clear(list).append(errorBox(e));
    }
  };
  const removeNs = async (btn, name) => {
    if (!(await ctx.confirm("Delete namespace?", `Namespace ${name} must hold no functions.`, "Delete"))) return;
    await busy(btn, async () => { await call("DeleteNamespace", { Namespace: name }); toast(`Deleted ${name}`); await ctx.reloadNamespaces(); await load(); })();
  };
  form.addEventListener("submit", busy(create, async () => {
    await call("CreateNamespace", { Namespace: nsName.value.trim(), Description: nsDesc.value });
    toast(`Created ${nsName.value.trim()}`);
    nsName.value = "";
    nsDesc.value = "";
    await ctx.reloadNamespaces();
    await load();
  }));
  clear(main).append(pageHead("Namespaces", "Functions live in a namespace; switch with the selector at the top."),
    h("div.card", null, list), h("div.card", null, h("h2", null, "New namespace"), form));
  await load();
}

// --- Layers ---------------------------------------------------------------------------------------------------

export function layers(main) {
  const list = h("div", null, h("div.empty", null, "Loading…"));
  let stopped = false;
  let timer = 0;
  const lname = h("input", { id: "layer-name", autocomplete: "off" });
  const lrt = h("select", { id: "layer-runtimes", multiple: true, size: 4 }, RUNTIMES.map((r) => h("option", { value: r }, r)));
  const ldesc = h("input", { id: "layer-description" });
  const lzip = h("input", { id: "layer-zip", type: "file", accept: ".zip,application/zip" });
  const prog = progressBar("Upload");
  const publish = h("button.btn.btn-primary", { type: "submit" }, "Publish version");
  const form = h("form.form", null, field("Layer name", lname), field("Description", ldesc),
    field("Compatible runtimes", lrt, "Ctrl/⌘-click for several"), field("Content (zip)", lzip), prog.box,
    h("div.actions", null, publish));
  const versions = async (name, target, btn) => {
    await busy(btn, async () => {
      const r = await call("ListLayerVersions", { LayerName: name });
      clear(target).append(table(
        [{ label: "Version", num: true }, { label: "Status" }, { label: "Runtimes" }, { label: "Description", narrow: true }, { label: "Created (UTC)", narrow: true }],
        (r.LayerVersions || []).map((v) => [String(v.LayerVersion), chip(v.Status), (v.CompatibleRuntimes || []).join(", "), v.Description || "", v.AddTime || ""])));
    })();
  };
  const load = async () => {
    try {
      const r = await call("ListLayers", { Limit: 100 });
      const rows = (r.Layers || []).map((l) => {
        const more = h("div");
        const btn = h("button.btn.btn-sm", { type: "button" }, "Versions");
        btn.addEventListener("click", () => versions(l.LayerName, more, btn));
        return [h("strong", null, l.LayerName), String(l.LayerVersion), chip(l.Status),
          (l.CompatibleRuntimes || []).join(", "), l.Description || "", h("div", null, btn, more)];
      });
      if (stopped) return;
      clear(list).append(table([{ label: "Layer" }, { label: "Latest", num: true }, { label: "Status" },
        { label: "Runtimes", narrow: true }, { label: "Description", narrow: true }, { label: "" }], rows, "No layers yet."));
      // While a version is being published or deleted, follow it until it settles.
      clearTimeout(timer);
      if ((r.Layers || []).some((l) => /ing$/.test(l.Status || ""))) timer = setTimeout(load, POLL_MS);
    } catch (e) {
      clear(list).append(errorBox(e));
    }
  };
  form.addEventListener("submit", busy(publish, async () => {
    const file = lzip.files[0];
    if (!lname.value.trim() || !file) throw new ApiError("MissingParameter", "A layer needs a name and a zip.");
    const rts = Array.from(lrt.selectedOptions, (o) => o.value);
    await call("PublishLayerVersion", {
      LayerName: lname.value.trim(), Description: ldesc.value, CompatibleRuntimes: rts.length ? rts : ["Python3.9"],
      Content: { ZipFile: await fileBase64(file) },
    }, { onProgress: prog.update });
    prog.done("published");
    toast(`Published a version of ${lname.value.trim()}`);
    await load();
  }));
  clear(main).append(pageHead("Layers", "Shared code and dependencies, mounted read-only at /opt."),
    h("div.card", null, list), h("div.card", null, h("h2", null, "Publish a layer version"), form));
  load();
  return () => { stopped = true; clearTimeout(timer); };
}

// --- Account --------------------------------------------------------------------------------------------------

function meter(label, used, limit) {
  return h("div.meter", null, h("span", null, `${label}: ${used} of ${limit}`),
    h("progress", { max: limit || 1, value: Math.min(used, limit || 1), "aria-label": label }));
}

export async function account(main) {
  const body = h("div", null, h("div.empty", null, "Loading…"));
  clear(main).append(pageHead("Account", "Usage and limits of this account."), body);
  try {
    const r = await call("GetAccount", {});
    const u = r.AccountUsage || {};
    const l = r.AccountLimit || {};
    const limits = new Map((l.Namespace || []).map((n) => [n.Namespace, n]));
    clear(body).append(
      h("div.grid", null,
        h("div.card", null, h("h2", null, "Namespaces"), meter("Namespaces", u.NamespacesCount || 0, l.NamespacesCount || 0)),
        h("div.card", null, h("h2", null, "Concurrency memory"), props([
          ["In use", bytes((u.TotalConcurrencyMem || 0) * 1024 * 1024)],
          ["Allocated", bytes((u.TotalAllocatedConcurrencyMem || 0) * 1024 * 1024)],
          ["Limit", bytes((u.UserConcurrencyMemLimit || 0) * 1024 * 1024)],
        ]))),
      h("div.card", null, h("h2", null, "Per namespace"), table(
        [{ label: "Namespace" }, { label: "Functions" }, { label: "Concurrent executions", num: true, narrow: true },
          { label: "Timeout limit", num: true, narrow: true }, { label: "Timers per function", num: true, narrow: true }],
        (u.Namespace || []).map((n) => {
          const lim = limits.get(n.Namespace) || {};
          return [n.Namespace, meter("Functions", n.FunctionsCount || 0, lim.FunctionsCount || 0),
            String(lim.ConcurrentExecutions ?? "—"), lim.TimeoutLimit ? `${lim.TimeoutLimit} s` : "—",
            String((lim.Trigger || {}).Timer ?? "—")];
        }))));
  } catch (e) {
    clear(body).append(errorBox(e));
  }
}

