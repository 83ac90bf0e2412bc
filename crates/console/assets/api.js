// The SCF API, called from the browser: every call is a signed POST / on this origin, as an SDK would send it.
// The credentials live in this tab's sessionStorage only; they never appear in a URL and are never sent anywhere
// but in the Authorization header's SecretId (the key itself only signs).

import { authorization, available, sha256Hex } from "./tc3.js";

const STORE = "stratus.console.credentials";
const VERSION = "2018-04-16";
const CONTENT_TYPE = "application/json";
const enc = new TextEncoder();

/** An error answered by the API (`Response.Error`) or met on the way. */
export class ApiError extends Error {
  constructor(code, message, requestId) {
    super(message);
    this.code = code;
    this.requestId = requestId || "";
  }
}

export function credentials() {
  try {
    const c = JSON.parse(sessionStorage.getItem(STORE) || "null");
    return c && c.secretId && c.secretKey ? c : null;
  } catch {
    return null;
  }
}

export function saveCredentials(c) {
  sessionStorage.setItem(STORE, JSON.stringify({ secretId: c.secretId, secretKey: c.secretKey }));
}

export function clearCredentials() {
  sessionStorage.removeItem(STORE);
}

export { available as signingAvailable };

// Server clock minus ours, in seconds, learnt from the replies' Date header (signatures must be within 300 s).
let skew = 0;

function send(body, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("POST", "/");
    for (const [k, v] of Object.entries(headers)) x.setRequestHeader(k, v);
    if (onProgress) {
      x.upload.addEventListener("progress", (e) => onProgress(e.loaded, e.lengthComputable ? e.total : body.length));
    }
    x.addEventListener("load", () => {
      const date = Date.parse(x.getResponseHeader("Date") || "");
      if (!Number.isNaN(date)) skew = Math.round((date - Date.now()) / 1000);
      let json;
      try {
        json = JSON.parse(x.responseText);
      } catch {
        reject(new ApiError("InternalError", `The server answered HTTP ${x.status} without JSON.`));
        return;
      }
      resolve(json);
    });
    x.addEventListener("error", () => reject(new ApiError("NetworkError", "The server could not be reached.")));
    x.addEventListener("timeout", () => reject(new ApiError("NetworkError", "The request timed out.")));
    x.send(body);
  });
}

/**
 * Calls `action` with `params`; resolves to the inner `Response` object, rejects with an ApiError.
 * `opts.onProgress(loaded, total)` follows the upload of the request body.
 */
export async function call(action, params = {}, opts = {}) {
  const creds = opts.credentials || credentials();
  if (!creds) throw new ApiError("AuthFailure", "You are not signed in.");
  if (!available()) {
    throw new ApiError("UnsupportedBrowser", "This page needs WebCrypto: open the console over HTTPS or on 127.0.0.1.");
  }
  const body = enc.encode(JSON.stringify(params));
  const payloadHash = await sha256Hex(body);
  for (let attempt = 0; ; attempt++) {
    const timestamp = Math.floor(Date.now() / 1000) + skew;
    const auth = await authorization({
      secretId: creds.secretId, secretKey: creds.secretKey, host: location.host,
      contentType: CONTENT_TYPE, payloadHash, timestamp,
    });
    const json = await send(body, {
      "Content-Type": CONTENT_TYPE,
      "X-TC-Action": action,
      "X-TC-Version": VERSION,
      "X-TC-Timestamp": String(timestamp),
      Authorization: auth,
    }, opts.onProgress);
    const r = (json && json.Response) || {};
    if (r.Error) {
      // Our clock was off and the reply told us the server's: sign again once.
      if (r.Error.Code === "AuthFailure.SignatureExpire" && attempt === 0) continue;
      // The stored key no longer works (deleted, or another account's): back to the sign-in page.
      if (!opts.credentials && /^AuthFailure\.(SecretIdNotFound|SignatureFailure)$/.test(r.Error.Code)) {
        clearCredentials();
        window.dispatchEvent(new CustomEvent("stratus:signed-out", { detail: r.Error.Message }));
      }
      throw new ApiError(r.Error.Code, r.Error.Message, r.RequestId);
    }
    return r;
  }
}

/** Reads a File as base64 (no data: prefix), without building a binary string. */
export function fileBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.addEventListener("load", () => resolve(String(r.result).replace(/^data:[^,]*,/, "")));
    r.addEventListener("error", () => reject(new ApiError("FileError", `Could not read ${file.name}.`)));
    r.readAsDataURL(file);
  });
}
