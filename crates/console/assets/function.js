// A function's page: its live status and StatusReasons, and tabs for configuration, code, invoking, logs,
// monitoring, versions and aliases, triggers and layers.

import { ApiError, call, fileBase64 } from "./api.js";
import { barChart, bucket, durationChart, weightBar } from "./charts.js";
import { watchFunction } from "./live.js";
import { MEMORY, pageHead, parseEnv } from "./pages.js";
import {
  busy, bytes, chip, clear, errorBox, field, h, ms, pretty, progressBar, props, scfTime, table, toast,
} from "./ui.js";

const TABS = [
  ["overview", "Configuration"], ["code", "Code"], ["invoke", "Invoke"], ["logs", "Logs"], ["monitoring", "Monitoring"],
  ["versions", "Versions & aliases"], ["triggers", "Triggers"], ["layers", "Layers"],
];

const DEFAULT_EVENT = `{\n  "key1": "value1",\n  "key2": "value2"\n}\n`;

/** Remembers per function what the user typed in the event editor while the tab lives. */
const drafts = new Map();

export function functionPage(main, ctx, ns, name, tab) {
  tab = TABS.some(([t]) => t === tab) ? tab : "overview";
  const base = `#/fn/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
  const status = h("span", { id: "fn-status" }, chip("", "…"));
  const reasons = h("div", { id: "fn-reasons" });
  const del = h("button.btn.btn-danger", { type: "button", id: "fn-delete" }, "Delete");
  const body = h("div", { id: "fn-tab" });
  clear(main).append(
    h("div.crumbs", null, h("a", { href: "#/functions" }, "Functions"), ` / ${ns} / ${name}`),
    pageHead(name, null, status, h("a.btn", { href: `${base}/invoke` }, "Test"), del),
    reasons,
    h("nav.tabs", { "aria-label": "Function" }, TABS.map(([t, label]) =>
      h("a", { href: `${base}/${t}`, "aria-current": t === tab ? "page" : null }, label))),
    body);

  let fn = null;
  let renderTab = null;
  const show = (f) => {
    fn = f;
    if (!f) {
      clear(status).append(chip("", "Deleted"));
      clear(reasons).append(h("div.callout.info", null, h("p", null, `${name} no longer exists. `, h("a", { href: "#/functions" }, "Back to the functions"))));
      clear(body);
      return;
    }
    clear(status).append(chip(f.Status));
    clear(reasons);
    const rs = f.StatusReasons || [];
    if (rs.length || /Failed$/.test(f.Status)) {
      reasons.append(h("div.callout.bad", { role: "alert" },
        h("h3", null, `${f.Status}${f.StatusDesc ? ": " + f.StatusDesc : ""}`),
        rs.length ? h("ul", null, rs.map((r) => h("li", null, h("code", null, r.ErrorCode), " ", r.ErrorMessage))) : null,
        /Update/.test(f.Status) ? h("p", null, "The previous code and configuration keep serving.") : null));
    }
    if (renderTab) renderTab(f);
  };
  const stopLive = watchFunction(ns, name, show, (e) => clear(reasons).append(errorBox(e)));

  del.addEventListener("click", busy(del, async () => {
    if (!(await ctx.confirm(`Delete ${name}?`, "The function, its versions, aliases and triggers are removed. This cannot be undone.", "Delete function"))) return;
    await call("DeleteFunction", { Namespace: ns, FunctionName: name });
    toast(`Deleting ${name}…`);
  }));

  const tabs = { overview, code, invoke, logs, monitoring, versions, triggers, layersTab };
  const stopTab = (tabs[tab === "layers" ? "layersTab" : tab])(body, { ns, name, ctx, get fn() { return fn; }, onFunction: (cb) => { renderTab = cb; if (fn) cb(fn); } });
  return () => { stopLive(); if (typeof stopTab === "function") stopTab(); };
}

// --- Configuration ----------------------------------------------------------------------------------------------

function envText(f) {
  return ((f.Environment || {}).Variables || []).map((v) => `${v.Key}=${v.Value}`).join("\n");
}

function overview(body, t) {
  const view = h("div.card", null, h("div.empty", null, "Loading…"));
  const desc = h("input", { id: "cfg-description" });
  const memory = h("select", { id: "cfg-memory" }, MEMORY.map((m) => h("option", { value: String(m) }, `${m} MB`)));
  const timeout = h("input", { id: "cfg-timeout", type: "number", min: 1, max: 900 });
  const env = h("textarea", { id: "cfg-env", rows: 3 });
  const save = h("button.btn.btn-primary", { type: "submit" }, "Save configuration");
  const form = h("form.form", null, field("Description", desc), field("Memory", memory), field("Timeout (seconds)", timeout),
    h("div.wide", null, field("Environment variables", env, "KEY=value, one a line")), h("div.actions", null, save));
  let filled = false;
  form.addEventListener("submit", busy(save, async () => {
    const params = {
      Namespace: t.ns, FunctionName: t.name, Description: desc.value, MemorySize: Number(memory.value),
      Timeout: Number(timeout.value), Environment: { Variables: parseEnv(env.value) },
    };
    await call("UpdateFunctionConfiguration", params);
    toast("Updating the configuration…");
  }));
  body.append(view, h("div.card", null, h("h2", null, "Edit configuration"), form));
  t.onFunction((f) => {
    if (!filled) {
      desc.value = f.Description || "";
      memory.value = String(f.MemorySize || 128);
      timeout.value = String(f.Timeout || 3);
      env.value = envText(f);
      filled = true;
    }
    const vars = (f.Environment || {}).Variables || [];
    clear(view).append(h("h2", null, "Configuration"), props([
      ["Status", chip(f.Status)], ["Runtime", f.Runtime], ["Handler", h("code", null, f.Handler || "")],
      ["Memory", `${f.MemorySize} MB`], ["Timeout", `${f.Timeout} s`], ["Description", f.Description || ""],
      ["Environment", vars.length ? h("code", null, vars.map((v) => v.Key).join(", ")) : ""],
      ["Code size", bytes(f.CodeSize)], ["Namespace", f.Namespace], ["Function ID", h("code", null, f.FunctionId || "")],
      ["Version", f.FunctionVersion || "$LATEST"], ["Public network", (f.PublicNetConfig || {}).PublicNetStatus || ""],
      ["Created (UTC)", f.AddTime], ["Modified (UTC)", f.ModTime],
    ]));
  });
}

// --- Code -------------------------------------------------------------------------------------------------------

function code(body, t) {
  const dl = h("div", null, h("button.btn", { type: "button", id: "code-link" }, "Get download link"));
  const linkBtn = dl.firstChild;
  linkBtn.addEventListener("click", busy(linkBtn, async () => {
    const r = await call("GetFunctionAddress", { Namespace: t.ns, FunctionName: t.name });
    clear(dl).append(h("p", null, h("a.btn.btn-primary", { href: r.Url, download: `${t.name}.zip`, id: "code-download", rel: "noreferrer" }, "Download code (zip)")),
      h("p.muted", null, `SHA-256 ${r.CodeSha256 || ""} · the link is valid for 30 minutes.`));
  }));
  const handler = h("input", { id: "code-handler" });
  const zip = h("input", { id: "code-zip", type: "file", accept: ".zip,application/zip" });
  const publish = h("input", { id: "code-publish", type: "checkbox" });
  const prog = progressBar("Upload");
  const err = h("div.wide");
  const submit = h("button.btn.btn-primary", { type: "submit" }, "Update code");
  const form = h("form.form", null, field("Handler", handler), field("Code (zip)", zip),
    h("label.check", null, publish, "Publish a version once applied"), prog.box, err, h("div.actions", null, submit));
  form.addEventListener("submit", busy(submit, async () => {
    clear(err);
    try {
      const file = zip.files[0];
      if (!file) throw new ApiError("MissingParameter", "Choose a zip with the new code.");
      const params = { Namespace: t.ns, FunctionName: t.name, Handler: handler.value.trim(), ZipFile: await fileBase64(file) };
      if (publish.checked) params.Publish = "TRUE";
      await call("UpdateFunctionCode", params, { onProgress: prog.update });
      prog.done("uploaded");
      toast("Updating the code…");
    } catch (e) {
      err.append(errorBox(e));
    }
  }));
  let filled = false;
  t.onFunction((f) => { if (!filled) { handler.value = f.Handler || ""; filled = true; } });
  body.append(h("div.card", null, h("h2", null, "Download"), dl),
    h("div.card", null, h("h2", null, "Update from a zip"), form));
}

// --- Invoke -----------------------------------------------------------------------------------------------------

async function qualifiers(t) {
  const out = ["$LATEST"];
  try {
    const [v, a] = await Promise.all([
      call("ListVersionByFunction", { Namespace: t.ns, FunctionName: t.name, Limit: 100 }),
      call("ListAliases", { Namespace: t.ns, FunctionName: t.name, Limit: "100" }),
    ]);
    for (const x of v.Versions || []) if (x.Version !== "$LATEST") out.push(x.Version);
    for (const x of a.Aliases || []) out.push(x.Name);
  } catch {
    // The list stays $LATEST.
  }
  return out;
}

function invoke(body, t) {
  const key = `${t.ns}/${t.name}`;
  const editor = h("textarea.editor", { id: "event", rows: 10, spellcheck: "false", "aria-label": "Event (JSON)", value: drafts.get(key) || DEFAULT_EVENT });
  const qual = h("select", { id: "invoke-qualifier" }, h("option", { value: "$LATEST" }, "$LATEST"));
  const routing = h("input", { id: "invoke-routing", placeholder: "optional" });
  const hint = h("small.error-text", { "aria-live": "polite" });
  const run = h("button.btn.btn-primary", { type: "submit", id: "invoke-run" }, "Invoke");
  const fmt = h("button.btn", { type: "button" }, "Format");
  const out = h("div", { id: "invoke-result" });
  const check = () => {
    drafts.set(key, editor.value);
    try {
      JSON.parse(editor.value);
      editor.classList.remove("invalid");
      hint.textContent = "";
      return true;
    } catch (e) {
      editor.classList.add("invalid");
      hint.textContent = `Not JSON: ${e.message}`;
      return false;
    }
  };
  editor.addEventListener("input", check);
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });
  fmt.addEventListener("click", () => { if (check()) editor.value = `${JSON.stringify(JSON.parse(editor.value), null, 2)}\n`; });
  const form = h("form.form", null,
    h("div.wide", null, field("Event (JSON)", editor, "Ctrl/⌘+Enter invokes"), hint),
    field("Qualifier", qual), field("Routing key", routing), h("div.actions", null, run, fmt));
  form.addEventListener("submit", busy(run, async () => {
    if (!check()) return;
    clear(out).append(h("div.empty", null, "Running…"));
    const params = { Namespace: t.ns, FunctionName: t.name, Qualifier: qual.value, LogType: "Tail", ClientContext: editor.value };
    if (routing.value.trim()) params.RoutingKey = routing.value.trim();
    try {
      const r = (await call("Invoke", params)).Result || {};
      const failed = r.InvokeResult !== 0 || Boolean(r.ErrMsg);
      clear(out).append(h("div.card", null,
        h("div.card-head", null, h("h2", null, "Result"), chip(failed ? "InvokeFailed" : "Active", failed ? "Failed" : "Succeeded")),
        props([["Request ID", h("code", null, r.FunctionRequestId || "")], ["Duration", ms(r.Duration)],
          ["Billed", ms(r.BillDuration)], ["Memory", bytes(r.MemUsage)]]),
        h("h3", null, "Returned"), h("pre", { id: "invoke-retmsg" }, pretty(r.RetMsg || "")),
        r.ErrMsg ? [h("h3", null, "Error"), h("pre.error-text", { id: "invoke-errmsg" }, pretty(r.ErrMsg))] : null,
        h("h3", null, "Log (tail)"), h("pre", { id: "invoke-log" }, r.Log || "")));
    } catch (e) {
      clear(out).append(errorBox(e));
    }
  }));
  body.append(h("div.card", null, h("h2", null, "Test with an event"), form), out);
  qualifiers(t).then((qs) => { clear(qual).append(...qs.map((q) => h("option", { value: q }, q))); });
  check();
  editor.focus();
}

// --- Logs -------------------------------------------------------------------------------------------------------

/** A datetime-local input's value (taken as UTC) in SCF's format, or "". */
function utcInput(v) {
  return v ? `${v.replace("T", " ")}${v.length === 16 ? ":00" : ""}` : "";
}

function logs(body, t) {
  const ret = h("select", { id: "log-retcode" },
    [["", "All"], ["is0", "Succeeded"], ["not0", "Failed"], ["UserCodeException", "Code exception"],
      ["TimeLimitExceeded", "Timed out"], ["ResourceLimitExceeded", "Out of memory"]].map(([v, l]) => h("option", { value: v }, l)));
  const rid = h("input", { id: "log-request", placeholder: "request id" });
  const qual = h("input", { id: "log-qualifier", placeholder: "$LATEST, a version or alias" });
  const from = h("input", { id: "log-from", type: "datetime-local", step: 1 });
  const to = h("input", { id: "log-to", type: "datetime-local", step: 1 });
  const word = h("input", { id: "log-keyword", type: "search", placeholder: "in this page's logs" });
  const order = h("select", { id: "log-order" }, h("option", { value: "DESC" }, "Newest first"), h("option", { value: "ASC" }, "Oldest first"));
  const search = h("button.btn.btn-primary", { type: "submit" }, "Search");
  const list = h("div", { id: "log-list" });
  const pager = h("div.row.pager");
  let offset = 0;
  const limit = 20;
  let rows = [];
  let total = 0;
  const draw = () => {
    const k = word.value.trim().toLowerCase();
    const shown = k ? rows.filter((r) => `${r.Log}\n${r.RetMsg}\n${r.RequestId}`.toLowerCase().includes(k)) : rows;
    clear(list).append(table(
      [{ label: "Invocation (UTC)" }, { label: "Result" }, { label: "Duration", num: true }, { label: "Memory", num: true, narrow: true }, { label: "Log" }],
      shown.map((r) => [[h("div", null, r.StartTime, r.RetryNum ? ` · retry ${r.RetryNum}` : ""), h("code.mono.request", null, r.RequestId)],
        r.RetCode === 0 ? chip("Active", "OK") : chip("Failed", String(r.RetCode)),
        ms(r.Duration), bytes(r.MemUsage),
        h("details.log", null, h("summary", null, "Show"), h("pre", null, r.Log || ""), r.RetMsg ? h("pre", null, pretty(r.RetMsg)) : null)]),
      "No invocation matches."));
    const prev = h("button.btn.btn-sm", { type: "button", disabled: offset === 0 }, "Previous");
    const next = h("button.btn.btn-sm", { type: "button", disabled: offset + rows.length >= total }, "Next");
    prev.addEventListener("click", () => { offset = Math.max(0, offset - limit); load(); });
    next.addEventListener("click", () => { offset += rows.length || limit; load(); });
    clear(pager).append(prev, next, h("span.muted", null, total ? `${offset + 1}–${offset + rows.length} of ${total}` : ""));
  };
  let latest = 0;
  const load = async () => {
    const seq = ++latest; // only the last search's answer is shown, whatever order the answers arrive in
    const params = { Namespace: t.ns, FunctionName: t.name, Offset: offset, Limit: limit, Order: order.value, OrderBy: "start_time" };
    if (ret.value) params.Filter = { RetCode: ret.value };
    if (rid.value.trim()) params.FunctionRequestId = rid.value.trim();
    if (qual.value.trim()) params.Qualifier = qual.value.trim();
    if (from.value) params.StartTime = utcInput(from.value);
    if (to.value) params.EndTime = utcInput(to.value);
    try {
      const r = await call("GetFunctionLogs", params);
      if (seq !== latest) return;
      rows = r.Data || [];
      total = r.TotalCount || 0;
      draw();
    } catch (e) {
      if (seq === latest) clear(list).append(errorBox(e));
    }
  };
  const form = h("form.form", null, field("Result", ret), field("Request ID", rid), field("Qualifier", qual),
    field("From (UTC)", from), field("To (UTC)", to), field("Keyword", word), field("Order", order),
    h("div.actions", null, search, h("span.muted", null, "Invocation records are kept 7 days by default.")));
  form.addEventListener("submit", busy(search, async () => { offset = 0; await load(); }));
  word.addEventListener("input", draw);
  body.append(h("div.card", null, h("h2", null, "Search the logs"), form), list, pager);
  load();
}

// --- Monitoring -------------------------------------------------------------------------------------------------

const RANGES = { "1h": [60, 60e3, "last hour, per minute"], "6h": [72, 5 * 60e3, "last 6 hours, per 5 minutes"], "24h": [48, 30 * 60e3, "last 24 hours, per 30 minutes"] };
const MAX_RECORDS = 2000;

function monitoring(body, t) {
  const range = h("select", { id: "mon-range", "aria-label": "Range" }, Object.entries(RANGES).map(([k, [, , l]]) => h("option", { value: k }, l)));
  const refresh = h("button.btn", { type: "button" }, "Refresh");
  const charts = h("div.charts", { id: "charts" }, h("div.empty", null, "Loading…"));
  const note = h("p.muted");
  let latest = 0;
  const load = async () => {
    const seq = ++latest;
    const [n, step] = RANGES[range.value];
    const end = new Date(Math.ceil(Date.now() / step) * step);
    const start = new Date(end.getTime() - n * step);
    const records = [];
    let total = 0;
    try {
      for (let offset = 0; offset < MAX_RECORDS;) {
        const r = await call("GetFunctionLogs", {
          Namespace: t.ns, FunctionName: t.name, Offset: offset, Limit: 100, Order: "DESC", OrderBy: "start_time",
          StartTime: scfTime(start), EndTime: scfTime(end),
        });
        const data = r.Data || [];
        total = r.TotalCount || 0;
        records.push(...data);
        offset += data.length;
        if (!data.length || offset >= total) break;
      }
    } catch (e) {
      if (seq === latest) clear(charts).append(errorBox(e));
      return;
    }
    if (seq !== latest) return;
    const b = bucket(records, end, n, step);
    const errors = b.reduce((a, x) => a + x.errors, 0);
    clear(charts).append(
      barChart("Invocations", b, (x) => x.count),
      barChart("Errors", b, (x) => x.errors, { bad: true, total: errors }),
      durationChart("Duration (ms, average; dashed: maximum)", b));
    note.textContent = `${records.length} invocation record${records.length === 1 ? "" : "s"}${total > records.length ? ` (of ${total})` : ""}, times in UTC.`;
  };
  range.addEventListener("change", load);
  refresh.addEventListener("click", load);
  body.append(h("div.card-head", null, h("h2", null, "Monitoring"), range, refresh), charts, note);
  load();
}

// --- Versions and aliases ---------------------------------------------------------------------------------------

function split(alias) {
  const extra = ((alias.RoutingConfig || {}).AdditionalVersionWeights || []).map((w) => ({ version: w.Version, weight: Number(w.Weight) || 0 }));
  const rest = Math.max(0, 1 - extra.reduce((a, w) => a + w.weight, 0));
  return [{ version: alias.FunctionVersion, weight: rest }, ...extra];
}

function versions(body, t) {
  const vbox = h("div", null, h("div.empty", null, "Loading…"));
  const abox = h("div", null, h("div.empty", null, "Loading…"));
  const vdesc = h("input", { id: "version-description", placeholder: "what changed" });
  const pub = h("button.btn.btn-primary", { type: "submit" }, "Publish version");
  const form = h("form.row", null, h("div.field", null, vdesc), pub);
  // Alias editor: a main version, optionally a second one taking a share of the traffic.
  const aname = h("input", { id: "alias-name", autocomplete: "off", placeholder: "e.g. live" });
  const amain = h("select", { id: "alias-version" });
  const aextra = h("select", { id: "alias-extra" });
  const aweight = h("input", { id: "alias-weight", type: "number", min: 0, max: 100, step: 1, value: "0" });
  const save = h("button.btn.btn-primary", { type: "submit" }, "Save alias");
  const aform = h("form.form", null, field("Alias", aname, "An existing alias is updated"), field("Version", amain),
    field("Second version", aextra), field("Its share (%)", aweight), h("div.actions", null, save));
  let aliases = [];
  let latest = 0;
  const load = async () => {
    const seq = ++latest;
    try {
      const [v, a] = await Promise.all([
        call("ListVersionByFunction", { Namespace: t.ns, FunctionName: t.name, Limit: 100, Order: "DESC" }),
        call("ListAliases", { Namespace: t.ns, FunctionName: t.name, Limit: "100" }),
      ]);
      if (seq !== latest) return;
      aliases = a.Aliases || [];
      const vs = (v.Versions || []).map((x) => x.Version);
      for (const [sel, none] of [[amain, null], [aextra, "none"]]) {
        const keep = sel.value;
        clear(sel).append(...(none ? [h("option", { value: "" }, none)] : []), ...vs.map((x) => h("option", { value: x }, x)));
        if (keep && [...sel.options].some((o) => o.value === keep)) sel.value = keep;
      }
      clear(vbox).append(table([{ label: "Version" }, { label: "Status" }, { label: "Description" }, { label: "Created (UTC)", narrow: true }],
        (v.Versions || []).map((x) => [h("strong", null, x.Version), chip(x.Status), x.Description || "", x.AddTime || ""])));
      clear(abox).append(table([{ label: "Alias" }, { label: "Routes to" }, { label: "Rules", narrow: true }, { label: "Description", narrow: true }, { label: "" }],
        aliases.map((x) => {
          const del = x.Name === "$DEFAULT" ? "" : h("button.btn.btn-danger.btn-sm", { type: "button" }, "Delete");
          if (del) {
            del.addEventListener("click", busy(del, async () => {
              if (!(await t.ctx.confirm(`Delete alias ${x.Name}?`, "Calls naming it will fail.", "Delete alias"))) return;
              await call("DeleteAlias", { Namespace: t.ns, FunctionName: t.name, Name: x.Name });
              toast(`Deleted alias ${x.Name}`);
              await load();
            }));
          }
          const edit = x.Name === "$DEFAULT" ? "" : h("button.btn.btn-sm", { type: "button" }, "Edit");
          if (edit) {
            edit.addEventListener("click", () => {
              const extra = ((x.RoutingConfig || {}).AdditionalVersionWeights || [])[0];
              aname.value = x.Name;
              amain.value = x.FunctionVersion;
              aextra.value = extra ? extra.Version : "";
              aweight.value = extra ? String(Math.round(Number(extra.Weight) * 100)) : "0";
              aname.focus();
            });
          }
          return [h("strong", null, x.Name), weightBar(split(x)),
            ((x.RoutingConfig || {}).AddtionVersionMatchs || []).map((m) => h("div", null, h("code", null, `${m.Key} ${m.Method} ${m.Expression} → v${m.Version}`))),
            x.Description || "", h("div.row", null, edit, del)];
        }), "No aliases."));
    } catch (e) {
      clear(vbox).append(errorBox(e));
    }
  };
  form.addEventListener("submit", busy(pub, async () => {
    const r = await call("PublishVersion", { Namespace: t.ns, FunctionName: t.name, Description: vdesc.value });
    toast(`Publishing version ${r.FunctionVersion}…`);
    vdesc.value = "";
    await load();
  }));
  aform.addEventListener("submit", busy(save, async () => {
    const name = aname.value.trim();
    if (!name || !amain.value) throw new ApiError("MissingParameter", "Name the alias and choose its version.");
    const share = Number(aweight.value) / 100;
    if (aextra.value && !(share >= 0 && share <= 1)) throw new ApiError("InvalidParameterValue", "The share is a percentage from 0 to 100.");
    const params = {
      Namespace: t.ns, FunctionName: t.name, Name: name, FunctionVersion: amain.value,
      RoutingConfig: { AdditionalVersionWeights: aextra.value && aextra.value !== amain.value ? [{ Version: aextra.value, Weight: share }] : [] },
    };
    const exists = aliases.some((x) => x.Name === name);
    await call(exists ? "UpdateAlias" : "CreateAlias", params);
    toast(`${exists ? "Updated" : "Created"} alias ${name}`);
    await load();
  }));
  body.append(h("div.card", null, h("div.card-head", null, h("h2", null, "Versions"), form), vbox),
    h("div.card", null, h("h2", null, "Aliases and traffic weights"), abox),
    h("div.card", null, h("h2", null, "Create or update an alias"), aform));
  load();
  const timer = setInterval(load, 3000);
  return () => clearInterval(timer);
}

// --- Triggers and layers ----------------------------------------------------------------------------------------

function triggers(body, t) {
  const box = h("div", null, h("div.empty", null, "Loading…"));
  body.append(h("div.card", null, h("h2", null, "Triggers"), box));
  call("ListTriggers", { Namespace: t.ns, FunctionName: t.name, Limit: 100 }).then((r) => {
    clear(box).append(table([{ label: "Name" }, { label: "Type" }, { label: "Schedule" }, { label: "Bound to" }, { label: "Enabled" }, { label: "Argument", narrow: true }],
      (r.Triggers || []).map((x) => [h("strong", null, x.TriggerName), x.Type, h("code", null, x.TriggerDesc || ""), x.Qualifier || "",
        chip(x.Enable === "OPEN" || x.Enable === 1 ? "Active" : "", x.Enable === "OPEN" || x.Enable === 1 ? "Open" : "Closed"),
        x.CustomArgument || ""]), "No triggers."));
  }, (e) => clear(box).append(errorBox(e)));
}

function layersTab(body, t) {
  const box = h("div", null, h("div.empty", null, "Loading…"));
  const layer = h("select", { id: "bind-layer", "aria-label": "Layer" }, h("option", { value: "" }, "Choose a layer"));
  const version = h("select", { id: "bind-version", "aria-label": "Version" });
  const bind = h("button.btn.btn-primary", { type: "submit" }, "Bind");
  const form = h("form.form", null, field("Layer", layer), field("Version", version), h("div.actions", null, bind));
  const bound = () => ((t.fn && t.fn.Layers) || []).map((l) => ({ LayerName: l.LayerName, LayerVersion: l.LayerVersion }));
  const update = async (layers, what) => {
    await call("UpdateFunctionConfiguration", { Namespace: t.ns, FunctionName: t.name, Layers: layers });
    toast(what);
  };
  layer.addEventListener("change", async () => {
    clear(version);
    if (!layer.value) return;
    try {
      const r = await call("ListLayerVersions", { LayerName: layer.value });
      version.append(...(r.LayerVersions || []).map((v) => h("option", { value: String(v.LayerVersion) }, `${v.LayerVersion} · ${v.Status}`)));
    } catch (e) {
      toast(`${e.code}: ${e.message}`, true);
    }
  });
  form.addEventListener("submit", busy(bind, async () => {
    if (!layer.value || !version.value) throw new ApiError("MissingParameter", "Choose a layer and a version.");
    const rest = bound().filter((l) => l.LayerName !== layer.value);
    await update([...rest, { LayerName: layer.value, LayerVersion: Number(version.value) }], `Binding ${layer.value}…`);
  }));
  call("ListLayers", { Limit: 100 }).then((r) => {
    layer.append(...(r.Layers || []).map((l) => h("option", { value: l.LayerName }, l.LayerName)));
  }, (e) => toast(`${e.code}: ${e.message}`, true));
  body.append(h("div.card", null, h("h2", null, "Layers bound to $LATEST"), box),
    h("div.card", null, h("h2", null, "Bind a layer"), h("p.muted", null, "Layers are merged read-only at /opt, in the order bound."), form));
  t.onFunction((f) => {
    clear(box).append(table([{ label: "Layer" }, { label: "Version", num: true }, { label: "Status" }, { label: "Runtimes", narrow: true }, { label: "" }],
      (f.Layers || []).map((l) => {
        const un = h("button.btn.btn-danger.btn-sm", { type: "button" }, "Unbind");
        un.addEventListener("click", busy(un, () => update(bound().filter((x) => x.LayerName !== l.LayerName), `Unbinding ${l.LayerName}…`)));
        return [h("a", { href: "#/layers" }, l.LayerName), String(l.LayerVersion), chip(l.Status), (l.CompatibleRuntimes || []).join(", "), un];
      }),
      "No layers bound."));
  });
}
