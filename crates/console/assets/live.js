// Live statuses. Every page that shows statuses subscribes here and gets a stop function back; today the source
// polls the API about once a second (ListFunctions for a namespace, GetFunction for one function). A pushed status
// stream can replace `poller` behind the same `watchFunctions` / `watchFunction` interface without touching pages.

import { call } from "./api.js";

export const POLL_MS = 1000;

/** Calls `load` now and then every `ms` after each answer, handing results to `onData`, errors to `onError`. */
function poller(load, onData, onError, ms = POLL_MS) {
  let stopped = false;
  let timer = 0;
  let last = "";
  const tick = async () => {
    try {
      const data = await load();
      if (stopped) return;
      const key = JSON.stringify(data);
      if (key !== last) {
        last = key;
        onData(data);
      }
    } catch (err) {
      if (!stopped && onError) onError(err);
    }
    if (!stopped) timer = setTimeout(tick, document.hidden ? ms * 5 : ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** The functions of a namespace (the first `limit`, optionally filtered by name), whenever they change. */
export function watchFunctions(namespace, searchKey, onList, onError) {
  const params = { Namespace: namespace, Limit: 100, Order: "ASC", Orderby: "FunctionName" };
  if (searchKey) params.SearchKey = searchKey;
  return poller(async () => {
    const r = await call("ListFunctions", params);
    return { functions: r.Functions || [], total: r.TotalCount || 0 };
  }, onList, onError);
}

/** One function's GetFunction reply, whenever it changes; `null` once the function is gone. */
export function watchFunction(namespace, name, onFunction, onError) {
  return poller(async () => {
    try {
      return stripRequestId(await call("GetFunction", { Namespace: namespace, FunctionName: name }));
    } catch (err) {
      if (err.code && err.code.startsWith("ResourceNotFound")) return null;
      throw err;
    }
  }, onFunction, onError);
}

function stripRequestId(r) {
  const { RequestId: _ignored, ...rest } = r;
  return rest;
}
