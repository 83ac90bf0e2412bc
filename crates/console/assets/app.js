// The console's shell: sign-in gate, top bar, namespace choice and the hash router.
// Routes: #/functions, #/create?ns=, #/fn/<namespace>/<name>/<tab>, #/namespaces, #/layers, #/account.

import { call, clearCredentials, credentials } from "./api.js";
import { functionPage } from "./function.js";
import { account, createFunction, functionList, layers, namespaces, signIn } from "./pages.js";
import { clear, confirmDialog, h, toast } from "./ui.js";

const NS_KEY = "stratus.console.namespace";
const main = document.getElementById("main");
const topbar = document.getElementById("topbar");
const nsSelect = document.getElementById("namespace");
let stop = null;

const ctx = {
  get namespace() { return sessionStorage.getItem(NS_KEY) || "default"; },
  params: new URLSearchParams(),
  setNamespace(ns) {
    sessionStorage.setItem(NS_KEY, ns);
    nsSelect.value = ns;
  },
  async reloadNamespaces() {
    const r = await call("ListNamespaces", { Limit: 100 });
    const names = (r.Namespaces || []).map((n) => n.Name);
    if (!names.includes(ctx.namespace)) ctx.setNamespace(names[0] || "default");
    clear(nsSelect).append(...names.map((n) => h("option", { value: n }, n)));
    nsSelect.value = ctx.namespace;
  },
  confirm: confirmDialog,
};

function route() {
  if (stop) { stop(); stop = null; }
  if (!credentials()) {
    topbar.hidden = true;
    signIn(main, () => { start(); });
    return;
  }
  topbar.hidden = false;
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").map(decodeURIComponent);
  ctx.params = new URLSearchParams(query || "");
  const section = parts[0] || "functions";
  for (const a of document.querySelectorAll("[data-nav]")) {
    const here = a.dataset.nav === section || (a.dataset.nav === "functions" && (section === "fn" || section === "create"));
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  // Focus moves to the new content (a page may then focus its first field).
  main.focus({ preventScroll: true });
  let r;
  switch (section) {
    case "fn":
      if (parts[1] && parts[2]) {
        if (parts[1] !== ctx.namespace) ctx.setNamespace(parts[1]);
        r = functionPage(main, ctx, parts[1], parts[2], parts[3]);
        document.title = `${parts[2]} · Stratus`;
        break;
      }
    // falls through
    case "functions":
      r = functionList(main, ctx);
      document.title = "Functions · Stratus";
      break;
    case "create":
      r = createFunction(main, ctx);
      document.title = "Create function · Stratus";
      break;
    case "namespaces":
      r = namespaces(main, ctx);
      document.title = "Namespaces · Stratus";
      break;
    case "layers":
      r = layers(main, ctx);
      document.title = "Layers · Stratus";
      break;
    case "account":
      r = account(main, ctx);
      document.title = "Account · Stratus";
      break;
    default:
      location.hash = "#/functions";
      return;
  }
  if (typeof r === "function") stop = r;
}

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

async function start() {
  const c = credentials();
  document.getElementById("who").textContent = c ? c.secretId : "";
  try {
    await ctx.reloadNamespaces();
  } catch {
    // The page shows the error itself.
  }
  route();
}

nsSelect.addEventListener("change", () => {
  ctx.setNamespace(nsSelect.value);
  go("#/functions");
});
document.getElementById("signout").addEventListener("click", () => {
  clearCredentials();
  sessionStorage.removeItem(NS_KEY);
  go("#/functions");
});
window.addEventListener("hashchange", route);
window.addEventListener("stratus:signed-out", (e) => {
  if (topbar.hidden) return; // already on the sign-in page
  toast(`Signed out: ${e.detail}`, true);
  route();
});
if (credentials()) start(); else route();
