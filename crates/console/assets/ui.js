// Small DOM helpers. Markup is always built with elements and text nodes, never parsed from strings.

const SVG = "http://www.w3.org/2000/svg";

/** h("a.btn.btn-primary", {href: "#/x"}, "text", child...) */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  apply(el, attrs);
  append(el, children);
  return el;
}

/** Same as h, in the SVG namespace (attributes only, no properties). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

function apply(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** The status colour class of an SCF status. */
export function statusClass(status) {
  if (!status) return "";
  if (status === "Active" || status === "Available") return "ok";
  if (/Failed$/.test(status)) return "bad";
  if (/ing$/.test(status)) return "busy";
  return "";
}

export function chip(status, label) {
  return h(`span.chip${statusClass(status) ? "." + statusClass(status) : ""}`, { "data-status": status || "" }, label || status || "—");
}

export function toast(message, bad = false) {
  const box = document.getElementById("toasts");
  const t = h(`div.toast${bad ? ".bad" : ""}`, null, message);
  box.append(t);
  setTimeout(() => t.remove(), bad ? 8000 : 4000);
}

/** An error as a callout (code, message, request id). */
export function errorBox(err) {
  return h("div.callout.bad", { role: "alert" },
    h("h3", null, err.code || "Error"),
    h("p", null, err.message || String(err)),
    err.requestId ? h("small", null, `RequestId ${err.requestId}`) : null);
}

/** Asks a yes/no question in a modal dialog; resolves true when confirmed. */
export function confirmDialog(title, text, confirmLabel, danger = true) {
  return new Promise((resolve) => {
    const yes = h(`button.btn${danger ? ".btn-danger.solid" : ".btn-primary"}`, { type: "button" }, confirmLabel);
    const no = h("button.btn", { type: "button" }, "Cancel");
    const d = h("dialog", { "aria-labelledby": "dlg-title" },
      h("h2", { id: "dlg-title" }, title), h("p", null, text), h("div.actions", null, no, yes));
    const done = (v) => { d.close(); d.remove(); resolve(v); };
    yes.addEventListener("click", () => done(true));
    no.addEventListener("click", () => done(false));
    d.addEventListener("cancel", (e) => { e.preventDefault(); done(false); });
    document.body.append(d);
    d.showModal();
    no.focus();
  });
}

export function field(label, control, hint) {
  return h("label.field", null, h("span", null, label), control, hint ? h("small", null, hint) : null);
}

/** A table: columns [{label, num?, narrow?}], rows of cells (nodes or text). */
export function table(columns, rows, empty = "Nothing here yet.") {
  if (!rows.length) return h("div.table-wrap", null, h("div.empty", null, empty));
  const cls = (c) => [c.num ? "num" : "", c.narrow ? "hide-narrow" : ""].filter(Boolean).join(" ") || null;
  return h("div.table-wrap", null, h("table", null,
    h("thead", null, h("tr", null, columns.map((c) => h("th", { class: cls(c), scope: "col" }, c.label)))),
    h("tbody", null, rows.map((r) => h("tr", null, r.map((cell, i) => h("td", { class: cls(columns[i]) }, cell)))))));
}

export function props(pairs) {
  return h("dl.props", null, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h("dt", null, k), h("dd", null, v === "" || v === null ? "—" : v)]));
}

export function bytes(n) {
  if (n === undefined || n === null) return "—";
  const u = ["B", "KB", "MB", "GB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i && v < 10 ? 1 : 0)} ${u[i]}`;
}

export function ms(n) {
  if (n === undefined || n === null) return "—";
  return n < 10 ? `${Number(n).toFixed(2)} ms` : `${Math.round(n)} ms`;
}

/** SCF's "YYYY-MM-DD HH:MM:SS" (UTC) from a Date. */
export function scfTime(d) {
  return d.toISOString().slice(0, 19).replace("T", " ");
}

/** A Date from SCF's "YYYY-MM-DD HH:MM:SS[.fff]" (UTC). */
export function parseScfTime(t) {
  return new Date(`${String(t).replace(" ", "T")}Z`);
}

/** Pretty JSON when the text is JSON, else the text. */
export function pretty(text) {
  if (typeof text !== "string") return JSON.stringify(text, null, 2);
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** Runs `fn` on click with the button disabled meanwhile; errors become toasts. */
export function busy(button, fn) {
  return async (e) => {
    if (e) e.preventDefault();
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      toast(`${err.code ? err.code + ": " : ""}${err.message}`, true);
    } finally {
      button.disabled = false;
    }
  };
}

/** An upload progress bar with a readout, and its update function. */
export function progressBar(label) {
  const bar = h("progress", { max: 1, value: 0, "aria-label": label });
  const out = h("output", null, "");
  const box = h("div.progress", { hidden: true }, bar, out);
  const update = (loaded, total) => {
    box.hidden = false;
    box.dataset.loaded = String(loaded);
    bar.max = total || 1;
    bar.value = loaded;
    out.value = `${bytes(loaded)} / ${bytes(total)}`;
  };
  return { box, update, done: (text) => { bar.value = bar.max; out.value = text; } };
}
